import { useState } from 'preact/hooks'
import type { KeyKind } from '../session.js'

export interface SignInProps {
  kind: KeyKind
  /** Checks the key against the API; resolves with an error message, or null when it works. */
  check(key: string): Promise<string | null>
  onSignedIn(key: string): void
}

/** Asks for a key; it is checked with one call, then kept in this tab's session storage only. */
export function SignIn({ kind, check, onSignedIn }: SignInProps) {
  const [key, setKey] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const label = kind === 'tenant' ? 'API key' : 'Admin key'
  return (
    <form
      class="panel sign-in"
      data-testid={`sign-in-${kind}`}
      onSubmit={async (e) => {
        // Never a form submission: that could put the key in a URL.
        e.preventDefault()
        if (!key.trim()) return setError(`enter the ${label.toLowerCase()}`)
        setBusy(true)
        const problem = await check(key.trim())
        setBusy(false)
        if (problem) setError(problem)
        else onSignedIn(key.trim())
      }}
    >
      <h2>{kind === 'tenant' ? 'Sign in with your API key' : 'Operations need the admin key'}</h2>
      <p class="muted">
        {kind === 'tenant'
          ? 'The key stays in this tab (session storage) and is sent only in the Authorization header.'
          : 'The AIRLOCK_ADMIN_KEY of this deployment. It stays in this tab and is sent only in the Authorization header.'}
      </p>
      <label>
        {label}
        <input
          type="password"
          name={`${kind}-key`}
          autocomplete="off"
          spellcheck={false}
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
          data-testid={`${kind}-key-input`}
        />
      </label>
      {error ? (
        <p class="field-error" role="alert" data-testid="sign-in-error">
          {error}
        </p>
      ) : null}
      <button type="submit" class="primary" disabled={busy}>
        {busy ? 'Checking…' : 'Sign in'}
      </button>
    </form>
  )
}
