import { AirlockError } from '../../../../core/errors.js'
import { JOB_ID_PATTERN, type JobHead, type JobStore } from '../../../../core/job-store.js'

/**
 * The tenant's job (its head: the step results are read only under the output budget,
 * when an answer carries them), or 404: another tenant's job and a job that never
 * existed look the same.
 */
export async function ownJob(store: JobStore, id: string, tenant: string): Promise<JobHead> {
  const view = JOB_ID_PATTERN.test(id) ? await store.headForTenant(id, tenant) : undefined
  if (!view) throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `job ${id} not found`)
  return view
}
