/**
 * Text that reaches callers (a job's `reason`, a 503's message, /readyz) comes from
 * runtimes, kubelets and our own errors, which name host paths (/run/airlock/<pid>/...,
 * /var/lib/kubelet/pods/...). Absolute paths are taken out and the text is bounded;
 * the worker's log keeps the original. Pure.
 */
export function withoutHostPaths(message: string): string {
  return message.replace(/(^|[\s"'(=:,;[])\/[^\s"'(),:;\]]+/g, '$1…')
}

/** A message for callers: no host paths, at most `max` characters. */
export function publicText(message: string, max = 300): string {
  const clean = withoutHostPaths(message)
  return clean.length > max ? `${clean.slice(0, max)}…` : clean
}
