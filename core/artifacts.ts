import { lookup } from 'mime-types'
import { Type, type Static } from 'typebox'
import { MAX_FILE_PATH_BYTES } from './job-spec.js'

/**
 * Artifacts: files a job leaves in ARTIFACTS_DIR come back with its result, byte for
 * byte, listed in the job and read one at a time (GET /v1/jobs/{id}/artifacts/{path}).
 */

/** Where a job writes the files it wants back. */
export const ARTIFACTS_DIR = '/workspace/out'

/**
 * Entries (files and directories) a job may make there: the directory's own inode bound,
 * so every file it could write comes back.
 */
export const MAX_ARTIFACT_ENTRIES = 128

/**
 * What the record's list and the keys of a job's artifacts hold besides their bytes, at
 * most: a path is a file path (MAX_FILE_PATH_BYTES, no control characters, so JSON at
 * most doubles it), plus its size, type and key. Counted in the storage quota too.
 */
export const ARTIFACT_ENTRY_OVERHEAD_BYTES = 128
export const MAX_ARTIFACT_LIST_BYTES = MAX_ARTIFACT_ENTRIES * (2 * MAX_FILE_PATH_BYTES + ARTIFACT_ENTRY_OVERHEAD_BYTES)

/** What a job's artifacts hold in Redis: their bytes, the record's list of them, and a key each. */
export function artifactStoredBytes(files: readonly ArtifactFile[], listJson: string): number {
  return files.reduce((n, f) => n + f.content.length + ARTIFACT_ENTRY_OVERHEAD_BYTES, 0) + Buffer.byteLength(listJson)
}

export const ArtifactSchema = Type.Object(
  {
    path: Type.String({ description: `Relative to ${ARTIFACTS_DIR}; fetch with GET /v1/jobs/{id}/artifacts/{path}` }),
    bytes: Type.Integer({ minimum: 0 }),
    contentType: Type.String({ description: 'Told from the file name; application/octet-stream when unknown' }),
  },
  { title: 'Artifact' },
)
export type Artifact = Static<typeof ArtifactSchema>

/** A file a job left, as the executor read it. */
export interface ArtifactFile {
  path: string
  content: Buffer
}

/** The files in path order (by code unit): the order of the job's list and of its artifact keys. */
export function byPath(files: readonly ArtifactFile[]): ArtifactFile[] {
  return [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

export function contentTypeOf(path: string): string {
  const type = lookup(path)
  return type === false ? 'application/octet-stream' : type
}

/** What the job's record lists: every file in path order, with its size and type. Pure. */
export function artifactList(files: readonly ArtifactFile[]): Artifact[] {
  return byPath(files).map((f) => ({ path: f.path, bytes: f.content.length, contentType: contentTypeOf(f.path) }))
}
