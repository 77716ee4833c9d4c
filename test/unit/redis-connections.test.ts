import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t from 'tap'
import { createRedis, isRedisRefusingForNow } from '../../core/redis.js'
import { startRedis } from '../processes.js'

t.test('a connection whose primary was demoted is made anew', async (t) => {
  // Found by review 19: behind one address (managed Redis's failover), a connection to a
  // primary demoted to a replica answers every write READONLY for as long as it stays
  // open, so a worker's finish was refused for its five minutes of tries and dropped.
  // Two real redis-servers: the first is made a replica of the second, as a failover does.
  const [first, second] = [await startRedis(), await startRedis()]
  const admin = new Redis(first.url)
  // The replica loads its primary's data from the socket, writing no file here.
  await admin.config('SET', 'repl-diskless-load', 'swapdb')
  t.teardown(() => {
    admin.disconnect()
    first.process.kill()
    second.process.kill()
  })
  for (const kind of ['command', 'blocking'] as const) {
    const redis = createRedis(first.url, kind)
    redis.on('error', () => undefined)
    await redis.connect()
    let connections = 1
    redis.on('ready', () => connections++)
    await admin.replicaof('127.0.0.1', second.port)
    const refused = await redis.set('k', 'v').catch((err: Error) => err)
    t.ok(refused instanceof Error && isRedisRefusingForNow(refused), `${kind}: the write is refused for now`)
    await admin.replicaof('NO', 'ONE')
    for (let i = 0; i < 100 && connections < 2; i++) await sleep(50)
    t.equal(connections, 2, `${kind}: the connection is made anew, once`)
    t.equal(await redis.set('k', 'v'), 'OK', `${kind}: and the next write is taken`)
    redis.disconnect()
  }
})
