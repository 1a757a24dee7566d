import type { FastifyInstance } from 'fastify';
import { mountRoute } from '../http/index.js';
import {
  attachChallenge,
  attachResponse,
  attachResync,
  issueCredentials,
  releaseSubscribers,
  subscriberEvents,
  suspendSubscribers,
  resumeSubscribers,
  deleteSubscribers,
  signTransferStatement,
} from '../protocol/hss.js';
import type { HssAttach } from './attach.js';
import type { HssProcessor } from './processor.js';
import type { AttachFeed } from './attach-feed.js';

export function mountHssApi(
  app: FastifyInstance,
  processor: HssProcessor,
  attach: HssAttach,
  feed: AttachFeed,
): void {
  mountRoute(app, issueCredentials, ({ body }) => processor.issue(body));
  mountRoute(app, releaseSubscribers, ({ body }) => processor.release(body));
  mountRoute(app, subscriberEvents, ({ query }) => feed.events(query));
  // The operator's lifecycle decisions, sent by the credentialing server's outbox.
  mountRoute(app, suspendSubscribers, ({ body }) => processor.suspend(body));
  mountRoute(app, resumeSubscribers, ({ body }) => processor.resume(body));
  mountRoute(app, deleteSubscribers, ({ body }) => processor.delete(body));
  mountRoute(app, signTransferStatement, ({ body }) => processor.signTransfer(body));
  // Long polls waiting on the feed answer at once, so closing does not wait out their wait.
  app.addHook('preClose', (done) => {
    feed.close();
    done();
  });
  // Device-facing (step 12): the device attaches to the network with its downloaded credentials.
  mountRoute(app, attachChallenge, ({ body }) => attach.challenge(body));
  mountRoute(app, attachResponse, ({ body }) => attach.respond(body));
  mountRoute(app, attachResync, ({ body }) => attach.resync(body));
}
