/**
 * The keys this tab holds. Session storage only: gone when the tab closes, never in a
 * URL, a cookie or local storage, and sent only in the Authorization header.
 */
const TENANT_KEY = 'airlock.apiKey'
const ADMIN_KEY = 'airlock.adminKey'

export type KeyKind = 'tenant' | 'admin'

const slot = (kind: KeyKind) => (kind === 'tenant' ? TENANT_KEY : ADMIN_KEY)

export function readKey(kind: KeyKind): string | null {
  return sessionStorage.getItem(slot(kind))
}

export function storeKey(kind: KeyKind, key: string): void {
  sessionStorage.setItem(slot(kind), key.trim())
}

export function forgetKey(kind: KeyKind): void {
  sessionStorage.removeItem(slot(kind))
}
