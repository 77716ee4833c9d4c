#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { AirlockClient } from '../cli/client.js'
import { renderTable, runProbes, selectProbes } from '../cli/verify/verify.js'

const USAGE = `usage: airlock <command> [options]

commands:
  verify     run the hostile-workload probes against a running Airlock as an
             ordinary tenant; exit 0 only when every probe passes
             --url URL     Airlock base URL (env AIRLOCK_URL, default http://127.0.0.1:8080)
             --key KEY     API key (env AIRLOCK_API_KEY)
             --only NAME   run only this probe or group (repeatable), e.g. network
             --json        print results as JSON
`

async function verify(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      url: { type: 'string' },
      key: { type: 'string' },
      only: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
    },
  })
  const baseUrl = values.url ?? process.env.AIRLOCK_URL ?? 'http://127.0.0.1:8080'
  const apiKey = values.key ?? process.env.AIRLOCK_API_KEY
  if (!apiKey) {
    process.stderr.write('airlock verify: an API key is required (--key or AIRLOCK_API_KEY)\n')
    return 2
  }
  const probes = selectProbes(values.only)
  const client = new AirlockClient({ baseUrl, apiKey })
  const outcomes = await runProbes(client, probes, (o) => {
    if (!values.json) process.stderr.write(`${o.pass ? 'pass' : 'FAIL'} ${o.name} (${(o.durationMs / 1000).toFixed(1)} s)\n`)
  })
  const passed = outcomes.every((o) => o.pass)
  if (values.json) process.stdout.write(`${JSON.stringify({ url: baseUrl, passed, probes: outcomes }, null, 2)}\n`)
  else process.stdout.write(`${renderTable(outcomes, process.stdout.columns ?? 160)}\n`)
  return passed ? 0 : 1
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'verify':
      return verify(rest)
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(USAGE)
      return command === undefined ? 2 : 0
    default:
      process.stderr.write(`airlock: unknown command ${JSON.stringify(command)}\n${USAGE}`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`airlock: ${(err as Error).message}\n`)
    process.exit(2)
  },
)
