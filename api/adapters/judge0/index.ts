import type { FastifyInstance } from 'fastify'

/** The judge0 adapter (being written). */
export default async function judge0Adapter(_scope: FastifyInstance): Promise<void> {}
