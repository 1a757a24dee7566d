import type { FastifyInstance } from 'fastify';
import { mountRoute } from '../http/index.js';
import { issueCredentials } from '../protocol/hss.js';
import type { HssProcessor } from './processor.js';

export function mountHssApi(app: FastifyInstance, processor: HssProcessor): void {
  mountRoute(app, issueCredentials, ({ body }) => processor.issue(body));
}
