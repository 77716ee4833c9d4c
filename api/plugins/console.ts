import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { AirlockError } from '../../core/errors.js'

/** Where the console is served; the page itself uses hash routes, so this is the only path it needs. */
export const CONSOLE_PATH = '/console/'

/**
 * The console's policy: its own files and its own origin only (the API and the stream's
 * WebSocket), no inline script, never framed. What it loads is what the package holds, so
 * nothing comes from a CDN and nothing runs that the build did not make. The editor adds
 * its own style element, which carries the response's nonce; its style attributes (tab
 * size, gutter heights) cannot load or run anything, so they are allowed.
 */
export function consoleCsp(nonce: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${nonce}'`,
    "style-src-attr 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
}

/** Where the page finds its nonce (console/index.html has the placeholder; main.tsx reads it). */
const NONCE_PLACEHOLDER = '__AIRLOCK_STYLE_NONCE__'

/**
 * What every page Airlock serves to a browser sends (the console's and the API docs',
 * which share the origin that holds the keys): no sniffing, no referrer, never framed, no
 * window handle across origins.
 */
export function pageHeaders(reply: { setHeader(name: string, value: string): unknown }): void {
  reply.setHeader('x-content-type-options', 'nosniff')
  // The key is never in a URL, but a job id in a shared link should not leave either.
  reply.setHeader('referrer-policy', 'no-referrer')
  reply.setHeader('x-frame-options', 'DENY')
  // No other window (a page the console opened, or one that opened it) gets a handle on the tab that holds the keys.
  reply.setHeader('cross-origin-opener-policy', 'same-origin')
}

/** The package root: the nearest folder above this file with a package.json (source or dist). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir)
  return dir
}

/** The built console (`npm run build` puts it in dist/console). */
export function consoleDir(): string {
  return join(packageRoot(), 'dist', 'console')
}

/**
 * Serves the web console's built files at /console/, and sends `/` there. The files are
 * public (the page asks for a key and keeps it in the tab's session storage); every call
 * the page makes goes through the same authenticated routes as any other client. The page
 * itself is made per response, to carry a fresh style nonce.
 */
export async function registerConsole(app: FastifyInstance, dir = consoleDir()): Promise<void> {
  app.get('/', { schema: { hide: true } }, async (_request, reply: FastifyReply) => reply.redirect(CONSOLE_PATH, 302))
  app.get('/console', { schema: { hide: true } }, async (_request, reply: FastifyReply) =>
    reply.redirect(CONSOLE_PATH, 301),
  )
  if (!existsSync(join(dir, 'index.html'))) {
    // Fail visibly rather than serve a blank page: a checkout that was never built.
    app.get(`${CONSOLE_PATH}*`, { schema: { hide: true } }, async () => {
      throw new AirlockError('AIRLOCK_ERR_CONSOLE_UNAVAILABLE', 'the console is not built: run npm run build')
    })
    return
  }
  const page = readFileSync(join(dir, 'index.html'), 'utf8')
  if (!page.includes(NONCE_PLACEHOLDER))
    throw new Error(`${dir}/index.html has no ${NONCE_PLACEHOLDER}: rebuild the console`)
  const sendPage = async (_request: unknown, reply: FastifyReply) => {
    const nonce = randomBytes(18).toString('base64')
    pageHeaders(reply.raw)
    return reply
      .header('content-security-policy', consoleCsp(nonce))
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(page.replaceAll(NONCE_PLACEHOLDER, nonce))
  }
  app.get(CONSOLE_PATH, { schema: { hide: true } }, sendPage)
  app.get(`${CONSOLE_PATH}index.html`, { schema: { hide: true } }, sendPage)
  await app.register(fastifyStatic, {
    root: dir,
    prefix: CONSOLE_PATH,
    decorateReply: false,
    wildcard: true,
    index: false,
    dotfiles: 'deny',
    // Anyone may ask for these files: a Range of thousands of ranges was parsed, sorted and
    // merged on every ask (found by review 25), and nothing here is big enough to resume.
    acceptRanges: false,
    cacheControl: false,
    // Hashed asset names never change their content.
    setHeaders: (res) => {
      pageHeaders(res)
      res.setHeader('content-security-policy', "default-src 'none'; frame-ancestors 'none'")
      res.setHeader('cache-control', 'public, max-age=31536000, immutable')
    },
  })
}
