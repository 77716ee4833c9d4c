import { SETTINGS } from './config.js'

/** The README's settings table, made from the settings themselves so it cannot drift. */
export function settingsTable(): string {
  const rows = Object.values(SETTINGS).map((s) => {
    const def = s.default === '' ? '(none)' : `\`${String(s.default)}\``
    return `| \`${s.name}\` | ${def} | ${s.doc.replaceAll('|', '\\|')} |`
  })
  return [
    '| Variable | Default | Meaning |',
    '|---|---|---|',
    '| `AIRLOCK_CONFIG_FILE` | (none) | Optional file of `NAME=value` lines; the environment wins over it |',
    '| `NAME_FILE` | (none) | Any setting below read from a file (a key of a mounted Secret, say), one newline at its end dropped; `NAME` itself wins |',
    ...rows,
  ].join('\n')
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(`${settingsTable()}\n`)
