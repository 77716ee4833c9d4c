import t from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseCatalog, RUNTIMES } from '../../core/runtimes.js'

const IMAGES = new URL('../../sandbox-images/', import.meta.url).pathname

t.test('every catalog entry has its Dockerfile, and every Dockerfile a catalog entry', async (t) => {
  const withDockerfile = readdirSync(IMAGES, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(IMAGES, d.name, 'Dockerfile')))
    .map((d) => d.name)
    .sort()
  t.same([...new Set(RUNTIMES.map((r) => r.image))].sort(), withDockerfile)
  for (const image of withDockerfile) {
    t.ok(existsSync(join(IMAGES, image, 'packages')), `${image} has its package list`)
    t.match(
      readFileSync(join(IMAGES, image, 'Dockerfile'), 'utf8'),
      /^USER 10001:10001$/m,
      `${image} runs as the non-root sandbox user`,
    )
  }
  for (const r of RUNTIMES)
    t.ok(existsSync(join(IMAGES, r.localImage, 'packages')), `${r.name}'s local image ${r.localImage} has a definition`)
})

t.test(
  "the catalog's versions are the ones the built images report (scripts/test.sh builds every image)",
  async (t) => {
    const images = process.env.AIRLOCK_IMAGES_DIR ?? '/var/lib/airlock/images'
    for (const r of RUNTIMES) {
      const manifest = JSON.parse(readFileSync(join(images, r.localImage, 'manifest.json'), 'utf8')) as {
        versions: Record<string, string>
      }
      t.ok(
        manifest.versions[r.name]?.startsWith(`${r.version}.`),
        `${r.name}: catalog ${r.version}, image ${r.localImage} ${manifest.versions[r.name]}`,
      )
    }
  },
)

t.test('catalog entries -> how a file is run; malformed catalogs are refused', async (t) => {
  const [python] = parseCatalog(
    JSON.stringify({
      runtimes: [
        {
          name: 'python',
          description: 'd',
          version: '3',
          image: 'python',
          localImage: 'default',
          defaultEntrypoint: 'main.py',
          command: ['python3', '-u', '{entrypoint}', '{args}'],
        },
      ],
    }),
  )
  t.same(python!.command('a.py', ['x', 'y']), ['python3', '-u', 'a.py', 'x', 'y'])
  t.same(python!.command('a.py', []), ['python3', '-u', 'a.py'])
  t.throws(() => parseCatalog('{"runtimes": []}'), /non-empty/)
  const entry = { description: 'd', version: '1', image: 'x', localImage: 'x' }
  const [java] = parseCatalog(
    JSON.stringify({
      runtimes: [
        {
          ...entry,
          name: 'java',
          defaultEntrypoint: 'Main.java',
          compile: ['javac', '-d', '/tmp/c', '{entrypoint}'],
          command: ['java', '-cp', '/tmp/c', '{class}', '{args}'],
        },
      ],
    }),
  )
  t.same(
    java!.compile!('app/Main.java'),
    ['javac', '-d', '/tmp/c', 'app/Main.java'],
    'a compiled runtime compiles its entrypoint',
  )
  t.same(
    java!.command('app/Main.java', ['a']),
    ['java', '-cp', '/tmp/c', 'app.Main', 'a'],
    '{class} is the entrypoint as a class name',
  )
  t.equal(python!.compile, undefined, 'an interpreter has no compile step')
  t.throws(
    () =>
      parseCatalog(
        JSON.stringify({
          runtimes: [
            {
              ...entry,
              name: 'x',
              defaultEntrypoint: 'm',
              compile: ['cc', '{args}', '{entrypoint}'],
              command: ['/tmp/m'],
            },
          ],
        }),
      ),
    /compile must/,
  )
  t.throws(
    () =>
      parseCatalog(
        JSON.stringify({
          runtimes: [{ ...entry, name: 'x', defaultEntrypoint: 'm', compile: ['cc', 'main.c'], command: ['/tmp/m'] }],
        }),
      ),
    /compile must/,
  )
  t.throws(
    () =>
      parseCatalog(
        JSON.stringify({
          runtimes: [
            {
              name: 'x',
              description: 'd',
              version: '1',
              image: 'x',
              localImage: 'x',
              defaultEntrypoint: 'm',
              command: ['run'],
            },
          ],
        }),
      ),
    /\{entrypoint\}/,
  )
  t.throws(
    () =>
      parseCatalog(
        JSON.stringify({
          runtimes: [
            {
              name: 'X Y',
              description: 'd',
              version: '1',
              image: 'x',
              localImage: 'x',
              defaultEntrypoint: 'm',
              command: ['{entrypoint}'],
            },
          ],
        }),
      ),
    /bad or duplicate name/,
  )
  t.throws(
    () =>
      parseCatalog(
        JSON.stringify({
          runtimes: [
            { name: 'x', version: '1', image: 'x', localImage: 'x', defaultEntrypoint: 'm', command: ['{entrypoint}'] },
          ],
        }),
      ),
    /description/,
  )
})
