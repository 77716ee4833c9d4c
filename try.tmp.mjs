import { LocalExecutor } from '/work/main/dist/worker/executors/local/local-executor.js'
import pino from 'pino'
const [runscPath, platform, code] = process.argv.slice(2)
const ex = new LocalExecutor({ runscPath, runcPath: 'runc', platform, network: 'none', imagesDir: '/var/lib/airlock/images', stateDir: '/run/airlock-try', cgroupParent: 'airlock-try', sandboxOverheadMb: 64, workspaceMb: 64, logger: pino({level:'warn'}) })
const r = await ex.run({ jobId: 'try', tenant: 't', spec: { runtime: 'bash', files: [{ path: 'main.sh', content: code }], entrypoint: 'main.sh', args: [], stdin: '', env: {}, limits: { timeoutMs: 30000, memoryMb: 256, cpus: 1, pids: 64, outputBytes: 100000 } }, signal: new AbortController().signal })
console.log(r.status, r.exitCode, r.stdout, r.stderr)
await ex.close()
