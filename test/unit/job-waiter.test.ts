import { Redis } from 'ioredis'
import t from 'tap'
import { JobWaiter } from '../../api/services/job-waiter.js'
import { startRedis } from '../processes.js'

// The waiter against a Redis of its own (the ACL below would refuse other tests' commands).

t.test('a wait whose signal has already aborted ends at once and leaves nothing waiting', async (t) => {
  const redis = await startRedis()
  t.teardown(() => void redis.process.kill('SIGKILL'))
  const subscriber = new Redis(redis.url)
  t.teardown(() => subscriber.disconnect())
  const waiter = new JobWaiter(subscriber, 'finished')
  await waiter.ready()
  // A client gone before its wait began: an abort listener added now would never fire.
  const { finished } = waiter.wait('job_a', 60_000, AbortSignal.abort())
  const first = await Promise.race([finished, new Promise((resolve) => setTimeout(() => resolve('held'), 2000))])
  t.equal(first, false, 'not finished, and not held to its 60 s timeout')
  const later = waiter.wait('job_b', 60_000, new AbortController().signal)
  const publisher = new Redis(redis.url)
  t.teardown(() => publisher.disconnect())
  await publisher.publish('finished', 'job_b')
  t.equal(await later.finished, true, 'a wait begun before its job ends is woken by the job')
})

t.test('a subscription Redis refused is asked for again by the next wait', async (t) => {
  const redis = await startRedis()
  t.teardown(() => void redis.process.kill('SIGKILL'))
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const subscriber = new Redis(redis.url)
  t.teardown(() => subscriber.disconnect())
  const waiter = new JobWaiter(subscriber, 'finished')
  await admin.call('ACL', 'SETUSER', 'default', '-subscribe')
  await t.rejects(waiter.ready(), 'refused while Redis refuses it')
  await admin.call('ACL', 'SETUSER', 'default', '+subscribe')
  await t.resolves(waiter.ready(), 'taken once Redis takes it again (before: the refusal was kept for every wait)')
})
