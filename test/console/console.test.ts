/// <reference lib="dom" />
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import t from 'tap'
import { consoleDir } from '../../api/plugins/console.js'
import { createLogger } from '../../core/logger.js'
import { Metrics } from '../../core/metrics.js'
import { createExecutor } from '../../worker/executors/create-executor.js'
import { WorkerService } from '../../worker/worker-service.js'
import { build, TENANTS } from '../helper.js'

// The web console driven by Debian's Chromium (puppeteer-core: no browser download)
// against the real API, worker and gVisor. Each test leaves a screenshot in SHOTS.
const CHROMIUM = process.env.AIRLOCK_CHROMIUM ?? '/usr/bin/chromium'
const SHOTS = process.env.AIRLOCK_SCREENSHOT_DIR ?? join(process.cwd(), '.airlock', 'screenshots')
const ADMIN_KEY = 'console-admin-key-0123456789'
const DESKTOP = { width: 1280, height: 800 }
// A phone's width; not isMobile, whose emulation reloads the page (and would reset what a test set up).
const PHONE = { width: 390, height: 844, deviceScaleFactor: 2 }

if (!existsSync(join(consoleDir(), 'index.html')))
  throw new Error(`the console is not built (${consoleDir()}): run npm run build`)

const h = await build(t, { listen: true, env: { AIRLOCK_ADMIN_KEY: ADMIN_KEY } })
const origin = new URL(h.baseUrl).origin
const wsOrigin = origin.replace(/^http/, 'ws')
const browser: Browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
})
t.teardown(() => browser.close())
await mkdir(SHOTS, { recursive: true })

/** Every URL any page asked for (HTTP and WebSocket), with the Authorization it sent; and what the browser refused. */
const seen: { url: string; authorization: string | undefined }[] = []
const refused: string[] = []

async function openPage(viewport = DESKTOP): Promise<Page> {
  const page = await browser.newPage()
  await page.setViewport(viewport)
  page.on('request', (r) => seen.push({ url: r.url(), authorization: r.headers().authorization }))
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) refused.push(m.text())
  })
  page.on('pageerror', (err) => refused.push(`page error: ${String(err)}`))
  const cdp = await page.createCDPSession()
  await cdp.send('Network.enable')
  cdp.on('Network.webSocketCreated', (e) => seen.push({ url: e.url, authorization: undefined }))
  return page
}

const text = (page: Page, selector: string) => page.$eval(selector, (el) => el.textContent ?? '')
const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) })

async function signIn(page: Page): Promise<void> {
  await page.goto(`${origin}/`)
  await page.waitForSelector('[data-testid="tenant-key-input"]')
  await page.type('[data-testid="tenant-key-input"]', TENANTS.alice)
  await page.click('[data-testid="sign-in-tenant"] button[type="submit"]')
  await page.waitForSelector('[data-testid="runtime"]')
}

async function replaceCode(page: Page, code: string): Promise<void> {
  await page.waitForSelector('.cm-content')
  await page.click('.cm-content')
  await page.keyboard.down('Control')
  await page.keyboard.press('a')
  await page.keyboard.up('Control')
  await page.keyboard.type(code)
}

const statusIs = (page: Page, status: string, timeout = 60_000) =>
  page.waitForFunction(
    (s) => document.querySelector('.result-panel [data-testid="status"]')?.textContent === s,
    { timeout },
    status,
  )

t.test('a wrong key is refused at sign-in, and a good one is kept in this tab only', async (t) => {
  const page = await openPage()
  await page.goto(`${origin}/console/`)
  await page.type('[data-testid="tenant-key-input"]', 'not-a-key-at-all')
  await page.click('[data-testid="sign-in-tenant"] button[type="submit"]')
  await page.waitForSelector('[data-testid="sign-in-error"]')
  t.match(await text(page, '[data-testid="sign-in-error"]'), /not accepted/)
  await page.$eval('[data-testid="tenant-key-input"]', (el) => ((el as HTMLInputElement).value = ''))
  await signIn(page)
  const stored = await page.evaluate(() => ({
    session: { ...sessionStorage },
    local: localStorage.length,
    cookie: document.cookie,
  }))
  t.same(Object.values(stored.session), [TENANTS.alice], 'the key is in session storage')
  t.equal(stored.local, 0, 'nothing in local storage')
  t.equal(stored.cookie, '', 'no cookie')
  await shot(page, 'sign-in')
  await page.close()
})

t.test(
  'a python job run from the playground shows its lines as they arrive, then its result and isolation',
  async (t) => {
    const page = await openPage()
    await signIn(page)
    const options = await page.$$eval('[data-testid="runtime"] option', (els) => els.map((e) => e.textContent ?? ''))
    t.ok(
      options.some((o) => /^python \(\d+\.\d+/.test(o)),
      `runtimes come with versions: ${options.join(', ')}`,
    )
    await page.click('[data-testid="run"]')
    // The sample prints a line every 0.4 s: the first must be on the page while the job still runs.
    await page.waitForFunction(
      () => document.querySelector('[data-testid="output"]')?.textContent?.includes('line 1'),
      { timeout: 60_000 },
    )
    const early = {
      output: await text(page, '[data-testid="output"]'),
      status: await text(page, '.result-panel [data-testid="status"]'),
    }
    t.equal(early.status, 'running', 'the first line is shown while the job runs')
    t.notMatch(early.output, /done/, 'before the program has finished')
    await statusIs(page, 'succeeded')
    t.match(await text(page, '[data-testid="output"]'), /line 1\nline 2\nline 3\nline 4\nline 5\n/)
    t.match(await text(page, '.out-stderr'), /a note on stderr/, 'stderr is shown apart from stdout')
    t.equal(await text(page, '[data-testid="exit-code"]'), '0')
    t.match(await text(page, '[data-testid="timing-run"]'), /^\d+ ms$/)
    t.match(await text(page, '[data-testid="timing-startup"]'), /^\d+ ms$/)
    t.match(await text(page, '[data-testid="sandbox-start"]'), /^(cold|warm)$/)
    t.match(await text(page, '[data-testid="isolation"]'), /gvisor/)
    await shot(page, 'playground')
    await page.setViewport(PHONE)
    await page.waitForFunction(() => (document.querySelector('.editor')?.getBoundingClientRect().height ?? 0) > 150, {
      timeout: 10_000,
    })
    await shot(page, 'playground-phone')
    const width = await page.evaluate(() => document.documentElement.scrollWidth)
    t.ok(width <= 390, `nothing is wider than a 390-pixel phone (${width})`)
    await page.close()
  },
)

t.test('an error from the API is shown with its code, next to the field it names', async (t) => {
  const page = await openPage()
  await signIn(page)
  await page.type('[data-testid="limit-timeoutMs"]', '99999999')
  await page.click('[data-testid="run"]')
  await page.waitForSelector('[data-testid="error-limits.timeoutMs"]')
  t.match(await text(page, '[data-testid="api-error"]'), /AIRLOCK_ERR_LIMIT_EXCEEDED/)
  t.match(await text(page, '[data-testid="error-limits.timeoutMs"]'), /above this server's maximum/)
  const beside = await page.$eval(
    '[data-testid="error-limits.timeoutMs"]',
    (el) => el.closest('label')?.querySelector('[data-testid="limit-timeoutMs"]') !== null,
  )
  t.ok(beside, 'the message is in the same field as the input it is about')
  t.equal(await page.$eval('[data-testid="limit-timeoutMs"]', (el) => el.getAttribute('aria-invalid')), 'true')
  await shot(page, 'validation-error')
  await page.close()
})

t.test('a long job is cancelled from the playground (run with Ctrl+Enter)', async (t) => {
  const page = await openPage()
  await signIn(page)
  await page.select('[data-testid="runtime"]', 'bash')
  await page.waitForFunction(() =>
    document.querySelector('[data-testid="file-tab-0"]')?.textContent?.startsWith('main.sh'),
  )
  await replaceCode(page, 'echo started; sleep 120; echo never')
  await page.keyboard.down('Control')
  await page.keyboard.press('Enter')
  await page.keyboard.up('Control')
  await page.waitForFunction(() => document.querySelector('[data-testid="output"]')?.textContent?.includes('started'), {
    timeout: 60_000,
  })
  await page.click('[data-testid="cancel"]')
  await statusIs(page, 'cancelled', 30_000)
  t.notMatch(await text(page, '[data-testid="output"]'), /never/)
  t.equal(await page.$('[data-testid="cancel"]'), null, 'no cancel button once it has ended')
  await shot(page, 'cancelled')
  await page.close()
})

t.test(
  'jobs are listed newest first, filtered by status, paged with the cursor, and each opens on its own page',
  async (t) => {
    for (let i = 0; i < 12; i++)
      t.equal((await h.request('POST', '/v1/jobs', { runtime: 'bash', source: `echo job ${i}` })).statusCode, 202)
    const page = await openPage()
    await signIn(page)
    await page.goto(`${origin}/console/#/jobs`)
    await page.waitForSelector('[data-testid="jobs-table"] tbody tr')
    await page.select('[data-testid="page-size"]', '10')
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="jobs-table"] tbody tr').length === 10)
    const ids = () =>
      page.$$eval('[data-testid="jobs-table"] tbody tr', (rows) => rows.map((r) => r.getAttribute('data-job') ?? ''))
    const first = await ids()
    await page.click('[data-testid="older"]')
    await page.waitForFunction(() => document.querySelector('[data-testid="page-number"]')?.textContent === 'Page 2')
    await page.waitForFunction(
      (before) => {
        const row = document.querySelector('[data-testid="jobs-table"] tbody tr')
        return row !== null && row.getAttribute('data-job') !== before
      },
      {},
      first[0],
    )
    const second = await ids()
    const total = (await h.request('GET', '/v1/jobs?limit=100')).json().items.length
    t.equal(second.length, Math.min(10, total - 10), `the second page has the older jobs (${total} in all)`)
    t.same(
      second.filter((id) => first.includes(id)),
      [],
      'no job is on both pages',
    )
    await page.click('[data-testid="newer"]')
    await page.waitForFunction(
      (before) => document.querySelector('[data-testid="jobs-table"] tbody tr')?.getAttribute('data-job') === before,
      {},
      first[0],
    )
    t.same(await ids(), first, 'back to the first page')
    await shot(page, 'jobs')

    await page.select('[data-testid="status-filter"]', 'cancelled')
    await page.waitForFunction(() => location.hash === '#/jobs?status=cancelled')
    // The list is emptied while the next page loads: wait for rows, all of them cancelled.
    await page.waitForFunction(() => {
      const statuses = Array.from(
        document.querySelectorAll('[data-testid="jobs-table"] tbody tr [data-testid="status"]'),
      )
      return statuses.length > 0 && statuses.every((s) => s.textContent === 'cancelled')
    })
    const cancelled = await ids()
    t.equal(cancelled.length, 1, 'the one cancelled job')

    // The shared link: a job's page, opened fresh, shows its source and output.
    await page.goto(`${origin}/console/#/jobs/${cancelled[0]}`)
    await page.waitForSelector('[data-testid="job-id"]')
    t.equal(await text(page, '[data-testid="job-id"]'), cancelled[0])
    await page.waitForFunction(() => document.querySelector('.cm-content')?.textContent?.includes('sleep 120'))
    await page.waitForFunction(() => document.querySelector('[data-testid="output"]')?.textContent?.includes('started'))
    t.match(await text(page, '[data-testid="job-limits"]'), /timeoutMs \d+/, 'the limits it ran with')
    await page.setViewport(PHONE)
    await shot(page, 'job-phone')
    await page.close()
  },
)

t.test(
  'the operations view, with the admin key, shows the queue, tenants, audit, charts and a worker that cannot isolate',
  async (t) => {
    // A second worker on the same Redis whose runsc cannot run: it reports why and takes nothing.
    const config = { ...h.config, runscPath: '/nonexistent/runsc', stateDir: join(h.config.stateDir, 'broken-worker') }
    const logger = createLogger('silent')
    const metrics = new Metrics()
    const broken = new WorkerService(config, createExecutor(config, logger, { metrics }), logger, metrics)
    await broken.start()
    t.teardown(() => broken.stop(1000))
    const made = await h.app.inject({
      method: 'POST',
      url: '/v1/admin/tenants',
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
      payload: { name: 'carol', quotas: { maxQueued: 50, maxRunning: 2 } },
    })
    t.equal(made.statusCode, 201)

    const page = await openPage()
    await page.goto(`${origin}/console/#/operations`)
    await page.waitForSelector('[data-testid="admin-key-input"]')
    await page.type('[data-testid="admin-key-input"]', ADMIN_KEY)
    await page.click('[data-testid="sign-in-admin"] button[type="submit"]')
    await page.waitForSelector('tr.cannot-isolate')
    t.match(await page.$eval('tr.cannot-isolate', (el) => el.textContent), /cannot isolate.*runsc cannot run/)
    t.match(await text(page, '[data-testid="isolation-warning"]'), /1 worker\(s\) cannot isolate/)
    const workers = await page.$$eval('[data-testid="workers"] tbody tr', (rows) => rows.map((r) => r.className))
    t.equal(workers.length, 2, 'both workers are listed')
    t.equal(workers.filter((c) => c === 'cannot-isolate').length, 1, 'the good one is not marked')
    await page.waitForSelector('[data-tenant="carol"]')
    t.match(
      await page.$eval('[data-tenant="carol"]', (el) => el.textContent),
      /0 \/ 50/,
      "carol's queued jobs against her quota",
    )
    t.match(await page.$eval('[data-tenant="alice"]', (el) => el.textContent), /static key/)
    await page.waitForFunction(() =>
      document.querySelector('[data-testid="audit"]')?.textContent?.includes('tenant.created'),
    )
    // Some work to chart; counters are charted as rates, so a line needs three snapshots.
    for (let i = 0; i < 3; i++)
      t.equal((await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'sleep 1' })).statusCode, 202)
    await page.waitForFunction(() => document.querySelectorAll('.chart polyline').length >= 7, { timeout: 30_000 })
    t.match(await text(page, '[data-testid="chart-Jobs submitted"] strong'), /\/s$/)
    await shot(page, 'operations')
    await page.setViewport(PHONE)
    await shot(page, 'operations-phone')
    const width = await page.evaluate(() => document.documentElement.scrollWidth)
    t.ok(width <= 390, `the operations view fits a 390-pixel phone (${width})`)
    await page.close()
  },
)

t.test(
  'no request carried a key in its URL, nothing came from outside the server, and the CSP refused nothing',
  async (t) => {
    t.ok(seen.length > 20, `requests were recorded (${seen.length})`)
    const secrets = [TENANTS.alice, ADMIN_KEY]
    for (const { url } of seen) {
      const decoded = decodeURIComponent(url)
      t.notOk(
        secrets.some((s) => decoded.includes(s)),
        `no key in ${url.slice(0, 100)}`,
      )
      t.ok(
        url.startsWith(`${origin}/`) || url.startsWith(`${wsOrigin}/`) || url.startsWith('data:'),
        `from this server: ${url.slice(0, 100)}`,
      )
    }
    const streams = seen.filter((r) => r.url.startsWith(wsOrigin))
    t.ok(streams.length >= 2, 'live output came over the WebSocket stream')
    t.ok(
      streams.every((r) => /[?&]token=/.test(r.url)),
      'each stream authenticated with a single-use token',
    )
    t.ok(
      seen.some((r) => r.authorization === `Bearer ${TENANTS.alice}`),
      'the key went in the Authorization header',
    )
    t.same(refused, [], 'no Content-Security-Policy refusals or page errors')
  },
)
