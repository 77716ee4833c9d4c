import { isIPv4, isIPv6 } from 'node:net'

/**
 * The client a per-address cap counts: an IPv4 address, or an IPv6 /64. A host is given a
 * whole /64 as a rule (SLAAC, most providers' servers), so its 2^64 addresses are one
 * client's; counted one by one, a single machine would open a cap's worth of
 * connections from each. An IPv4 address in IPv6 form (`::ffff:a.b.c.d`, a dual-stack
 * listener) is that IPv4 address.
 */
export function addressGroup(address: string): string {
  const bare = address.replace(/%.*$/, '')
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare)
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!
  if (!isIPv6(bare)) return address
  const [head = '', tail] = bare.toLowerCase().split('::')
  const groups = (part: string) => (part === '' ? [] : part.split(':'))
  // A trailing dotted quad is two groups; only the first four groups matter here.
  const left = groups(head)
  const right = tail === undefined ? [] : groups(tail)
  const missing = 8 - left.length - right.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0)
  const full = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, missing)).fill('0'), ...right]
  return `${full
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`
}

/**
 * What a per-address cap counts a tenant's connections or streams from a group under: a
 * tenant's are counted apart from the group's others, so one tenant at its cap from a NAT
 * or a proxy does not lock the others there out.
 */
export function tenantAtGroup(group: string, tenant: string): string {
  return `${group}\u0000${tenant}`
}
