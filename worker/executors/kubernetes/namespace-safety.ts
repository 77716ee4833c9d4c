import type { V1Namespace, V1NetworkPolicy, V1RuntimeClass } from '@kubernetes/client-node'

export interface SafetyInput {
  namespaceName: string
  namespace: V1Namespace | undefined
  runtimeClassName: string
  runtimeClass: V1RuntimeClass | undefined
  networkPolicies: V1NetworkPolicy[]
  /** Labels every sandbox pod carries. */
  podLabels: Record<string, string>
}

/** Handlers that are gVisor: ours on containerd (runsc), and GKE Sandbox's (gvisor). */
const GVISOR_HANDLERS = new Set(['runsc', 'gvisor'])

function selects(policy: V1NetworkPolicy, labels: Record<string, string>): boolean {
  const selector = policy.spec?.podSelector
  if (!selector) return false
  const matchLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v)
  const expressions = (selector.matchExpressions ?? []).every((e) => {
    const value = labels[e.key]
    switch (e.operator) {
      case 'In':
        return value !== undefined && (e.values ?? []).includes(value)
      case 'NotIn':
        return value === undefined || !(e.values ?? []).includes(value)
      case 'Exists':
        return value !== undefined
      case 'DoesNotExist':
        return value === undefined
      default:
        return false
    }
  })
  return matchLabels && expressions
}

function policyTypes(policy: V1NetworkPolicy): string[] {
  // Without policyTypes, Egress applies only when egress rules are present.
  return policy.spec?.policyTypes ?? ['Ingress', ...(policy.spec?.egress ? ['Egress'] : [])]
}

/**
 * Whether the namespace can hold sandboxes: what is missing, in words an operator can
 * act on; empty when it is safe. Pure. NetworkPolicies add up, so deny-all is not
 * enough: no policy selecting sandbox pods may allow any traffic either.
 */
export function namespaceProblems(input: SafetyInput): string[] {
  const problems: string[] = []
  const ns = input.namespaceName
  if (!input.namespace) {
    problems.push(`namespace ${ns} does not exist`)
  } else {
    const enforce = input.namespace.metadata?.labels?.['pod-security.kubernetes.io/enforce']
    if (enforce !== 'restricted') {
      problems.push(
        `namespace ${ns} does not enforce Pod Security "restricted" (label pod-security.kubernetes.io/enforce is ${enforce === undefined ? 'missing' : JSON.stringify(enforce)})`,
      )
    }
  }
  if (!input.runtimeClass) {
    problems.push(`RuntimeClass ${input.runtimeClassName} does not exist`)
  } else if (!GVISOR_HANDLERS.has(input.runtimeClass.handler)) {
    problems.push(
      `RuntimeClass ${input.runtimeClassName} has handler ${JSON.stringify(input.runtimeClass.handler)}, not gVisor (${[...GVISOR_HANDLERS].join(' or ')})`,
    )
  }
  const selecting = input.networkPolicies.filter((p) => selects(p, input.podLabels))
  const allowing = selecting.filter((p) => (p.spec?.ingress?.length ?? 0) > 0 || (p.spec?.egress?.length ?? 0) > 0)
  for (const p of allowing)
    problems.push(`NetworkPolicy ${p.metadata?.name ?? '?'} in ${ns} allows traffic to or from sandbox pods`)
  const denies = (type: string) => selecting.some((p) => policyTypes(p).includes(type))
  if (!denies('Ingress') || !denies('Egress')) {
    const missing = ['Ingress', 'Egress'].filter((t) => !denies(t)).join(' and ')
    problems.push(`no NetworkPolicy in ${ns} denies all ${missing} for sandbox pods`)
  }
  return problems
}
