import { AirlockError } from '../../../../core/errors.js'
import { JOB_ID_PATTERN, type JobStore, type JobView } from '../../../../core/job-store.js'

/** The tenant's job, or 404: another tenant's job and a job that never existed look the same. */
export async function ownJob(store: JobStore, id: string, tenant: string): Promise<JobView> {
  const view = JOB_ID_PATTERN.test(id) ? await store.viewForTenant(id, tenant) : undefined
  if (!view) throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `job ${id} not found`)
  return view
}
