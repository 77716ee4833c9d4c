import { addressGroup } from './address-group.js'

/** Key lookups that found no key an address group may cause in a second before its unknown keys are refused unasked. */
export const FAILED_KEYS_PER_SECOND = 20
/** Address groups counted in one second; past it, a new group goes uncounted that second. */
const MAX_GROUPS = 10_000
/** Keys (digests) remembered as found lately; the set starts over when full. */
const MAX_KNOWN = 10_000

/**
 * A made-up API key or stream token costs Redis a lookup, on the connection tenants'
 * reads use, and any caller may send one (found by review 25). An address group that has
 * sent `FAILED_KEYS_PER_SECOND` keys nothing was found for this second has its next
 * unknown ones refused without a lookup. A key found lately is still looked up (a
 * revocation holds at once): one tenant behind a NAT with a guesser keeps working.
 */
export class FailedKeys {
  private second = -1
  private readonly byGroup = new Map<string, number>()
  private readonly known = new Set<string>()

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Whether a lookup of `digest` for a client at `address` may ask Redis. */
  mayLookUp(address: string, digest: string): boolean {
    if (this.known.has(digest)) return true
    this.roll()
    return (this.byGroup.get(addressGroup(address)) ?? 0) < FAILED_KEYS_PER_SECOND
  }

  /** `digest` opened nothing: a key revoked since it was found is forgotten as found. */
  failed(address: string, digest: string): void {
    this.known.delete(digest)
    this.roll()
    const group = addressGroup(address)
    const n = this.byGroup.get(group)
    if (n === undefined && this.byGroup.size >= MAX_GROUPS) return
    this.byGroup.set(group, (n ?? 0) + 1)
  }

  found(digest: string): void {
    if (this.known.size >= MAX_KNOWN) this.known.clear()
    this.known.add(digest)
  }

  private roll(): void {
    const second = Math.floor(this.now() / 1000)
    if (second === this.second) return
    this.second = second
    this.byGroup.clear()
  }
}
