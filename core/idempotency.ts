import { createHash } from 'node:crypto'
import { Type } from 'typebox'

/**
 * Idempotency keys for submissions (the IETF httpapi draft's `Idempotency-Key` header,
 * as Stripe takes it): a client that did not hear its answer sends the same request
 * again with the same key and gets the job it already has, never a second one.
 *
 * The key chooses the job's id (a digest of tenant and key), so nothing is stored beside
 * the job: the record is the key's memory and lives as long as it does, and the create
 * script that refuses a taken id is what makes two racing retries one job.
 */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key'
/** Tells a client its answer is the one an earlier request with its key had. */
export const IDEMPOTENT_REPLAYED_HEADER = 'idempotent-replayed'
export const IDEMPOTENCY_KEY_MAX_LENGTH = 255

/** The header as a route declares it: visible ASCII (a UUID, a hash, an order id). */
const idempotencyKeyHeader = (description: string) =>
  Type.Object({
    [IDEMPOTENCY_KEY_HEADER]: Type.Optional(
      Type.String({ minLength: 1, maxLength: IDEMPOTENCY_KEY_MAX_LENGTH, pattern: '^[\\x21-\\x7e]+$', description }),
    ),
  })

const KEY_OF_CALLERS_CHOOSING = "A key of the caller's choosing (a UUID is usual)."

/** POST /v1/jobs's. */
export const IdempotencyKeyHeaderSchema = idempotencyKeyHeader(
  `${KEY_OF_CALLERS_CHOOSING} The same request sent again with it gets the job the first made (202, Idempotent-Replayed: true), for as long as that job is kept; another request with it gets 409 AIRLOCK_ERR_IDEMPOTENCY_KEY_REUSED. A batch's keys are its own (POST /v1/jobs/batch)`,
)

/** POST /v1/jobs/batch's: the job at each place has a key of its own from it (batchItemKey). */
export const BatchIdempotencyKeyHeaderSchema = idempotencyKeyHeader(
  `${KEY_OF_CALLERS_CHOOSING} The job at each place of the batch has a key of its own from it: the batch sent again answers, in \`items\`, each job it made (\`replayed: true\`) and makes the ones it did not; a job at a place whose key made another job is refused there with 409 AIRLOCK_ERR_IDEMPOTENCY_KEY_REUSED. The same key on POST /v1/jobs names another job`,
)

const digest = (...parts: string[]) => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 32)

/** The id a tenant's key gives its job: the same key, the same id; another tenant's, another. */
export function keyedJobId(tenant: string, key: string): string {
  return `job_${digest('airlock-idempotency', tenant, key)}`
}

/** A batch's key stands for each of its jobs by place: the job at `index` has its own. */
export function batchItemKey(key: string, index: number): string {
  return `${key}\0${index}`
}

/**
 * What "the same request" means: the same JSON, whitespace aside (a retry sends the same
 * bytes; a parse and a stringify keep the order of their keys).
 */
export function requestDigest(request: unknown): string {
  return digest(JSON.stringify(request))
}
