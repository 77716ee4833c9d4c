import { Airlock } from '../../sdk/src/client.js'
import { DEFAULT_MAX_ANSWER_BYTES, Http } from '../../sdk/src/http.js'
import type { AuditList, MetricsSnapshot, QueueState, UsageReport } from '../../sdk/src/admin-types.js'

const SILENT = { debug: () => undefined, warn: () => undefined }

/** A tenant's client: the same SDK as `sdk/`, against the origin that served the page. */
export function tenantClient(apiKey: string): Airlock {
  return new Airlock({ baseUrl: location.origin, apiKey, maxRetries: 1, logger: SILENT })
}

/** The operator's calls, with the admin key, through the SDK's HTTP layer (one error mapping). */
export class AdminClient {
  private readonly http: Http

  constructor(adminKey: string) {
    this.http = new Http({
      baseUrl: location.origin,
      apiKey: adminKey,
      requestTimeoutMs: 10_000,
      maxRetries: 0,
      maxAnswerBytes: DEFAULT_MAX_ANSWER_BYTES,
      logger: SILENT,
    })
  }

  private async get<T>(path: string, signal?: AbortSignal, query?: Record<string, number>): Promise<T> {
    return (await this.http.request<T>({ method: 'GET', path, query, idempotent: true, signal })).body
  }

  queue(signal?: AbortSignal): Promise<QueueState> {
    return this.get('/v1/admin/queue', signal)
  }

  usage(signal?: AbortSignal): Promise<UsageReport> {
    return this.get('/v1/admin/usage', signal)
  }

  metrics(signal?: AbortSignal): Promise<MetricsSnapshot> {
    return this.get('/v1/admin/metrics', signal)
  }

  audit(tenant: string, limit: number, signal?: AbortSignal): Promise<AuditList> {
    return this.get(`/v1/admin/tenants/${encodeURIComponent(tenant)}/audit`, signal, { limit })
  }
}
