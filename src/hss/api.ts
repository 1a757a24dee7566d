import type { FastifyInstance } from 'fastify';
import { mountRoute } from '../http/index.js';
import {
  attachChallenge,
  attachResponse,
  attachResync,
  issueCredentials,
  releaseSubscribers,
} from '../protocol/hss.js';
import type { HssAttach } from './attach.js';
import type { HssProcessor } from './processor.js';

export function mountHssApi(app: FastifyInstance, processor: HssProcessor, attach: HssAttach): void {
  mountRoute(app, issueCredentials, ({ body }) => processor.issue(body));
  mountRoute(app, releaseSubscribers, ({ body }) => processor.release(body));
  // Device-facing (step 12): the device attaches to the network with its downloaded credentials.
  mountRoute(app, attachChallenge, ({ body }) => attach.challenge(body));
  mountRoute(app, attachResponse, ({ body }) => attach.respond(body));
  mountRoute(app, attachResync, ({ body }) => attach.resync(body));
}
