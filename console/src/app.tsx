import type { JSX } from 'preact'
import { useEffect, useMemo, useState } from 'preact/hooks'
import { AuthenticationError } from '../../sdk/src/errors.js'
import { AdminClient, tenantClient } from './api.js'
import { toAirlockError } from './live-job.js'
import { JobPage } from './pages/job-page.js'
import { Jobs } from './pages/jobs.js'
import { Operations } from './pages/operations.js'
import { forgetDraft, Playground } from './pages/playground.js'
import { SignIn } from './pages/sign-in.js'
import { parseRoute, routeHref, type Route } from './route.js'
import { forgetKey, readKey, storeKey } from './session.js'

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash))
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash))
    window.addEventListener('hashchange', onChange)
    return () => window.removeEventListener('hashchange', onChange)
  }, [])
  return route
}

/** Answers a sign-in check: null when the key works, else why not. */
async function problemWith(call: () => Promise<unknown>): Promise<string | null> {
  try {
    await call()
    return null
  } catch (err) {
    if (err instanceof AuthenticationError) return 'that key is not accepted'
    const e = toAirlockError(err)
    return `${e.code}: ${e.message}`
  }
}

export function App() {
  const route = useRoute()
  const [tenantKey, setTenantKey] = useState(() => readKey('tenant'))
  const [adminKey, setAdminKey] = useState(() => readKey('admin'))
  const client = useMemo(() => (tenantKey ? tenantClient(tenantKey) : null), [tenantKey])
  const admin = useMemo(() => (adminKey ? new AdminClient(adminKey) : null), [adminKey])

  const signOut = () => {
    forgetKey('tenant')
    forgetKey('admin')
    forgetDraft()
    setTenantKey(null)
    setAdminKey(null)
  }

  const nav: { route: Route; label: string }[] = [
    { route: { page: 'playground' }, label: 'Playground' },
    { route: { page: 'jobs', status: null }, label: 'Jobs' },
    { route: { page: 'operations' }, label: 'Operations' },
  ]

  let body: JSX.Element
  if (route.page === 'operations') {
    body = admin ? (
      <Operations
        admin={admin}
        onUnauthorized={() => {
          forgetKey('admin')
          setAdminKey(null)
        }}
      />
    ) : (
      <SignIn
        kind="admin"
        check={(key) => problemWith(() => new AdminClient(key).queue())}
        onSignedIn={(key) => {
          storeKey('admin', key)
          setAdminKey(key)
        }}
      />
    )
  } else if (!client) {
    body = (
      <SignIn
        kind="tenant"
        check={(key) => problemWith(() => tenantClient(key).runtimes())}
        onSignedIn={(key) => {
          storeKey('tenant', key)
          setTenantKey(key)
        }}
      />
    )
  } else if (route.page === 'jobs') body = <Jobs key={route.status ?? ''} client={client} status={route.status} />
  else if (route.page === 'job') body = <JobPage key={route.id} client={client} id={route.id} />
  else body = <Playground client={client} />

  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          Airlock
        </a>
        <nav>
          {nav.map((n) => (
            <a
              key={n.label}
              href={routeHref(n.route)}
              class={n.route.page === route.page || (n.route.page === 'jobs' && route.page === 'job') ? 'current' : ''}
              data-testid={`nav-${n.route.page}`}
            >
              {n.label}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        <a class="small" href="/docs" target="_blank" rel="noopener">
          API docs
        </a>
        {tenantKey || adminKey ? (
          <button type="button" class="small" onClick={signOut} data-testid="sign-out">
            Sign out
          </button>
        ) : null}
      </header>
      <main>{body}</main>
    </>
  )
}
