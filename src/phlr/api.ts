import type { FastifyInstance } from 'fastify';
import { mountRoute } from '../http/index.js';
import { importSubscribers, phlrChallenge, phlrResponse, phlrResync } from '../protocol/phlr.js';
import type { PhlrProcessor } from './processor.js';

export function mountPhlrApi(app: FastifyInstance, processor: PhlrProcessor): void {
  mountRoute(app, phlrChallenge, ({ body }) => processor.challenge(body));
  mountRoute(app, phlrResponse, ({ body }) => processor.respond(body));
  mountRoute(app, phlrResync, ({ body }) => processor.resync(body));
  mountRoute(app, importSubscribers, ({ body }) => processor.importNow(body));
}
