import type { FastifyInstance } from 'fastify'

/** The piston adapter (being written). */
export default async function pistonAdapter(_scope: FastifyInstance): Promise<void> {}
