import type { FastifyInstance } from 'fastify';
import { identifyCaller, mountRoute, parse } from '../http/index.js';
import {
  deviceState,
  fetchPackage,
  openSession,
  proveSession,
  registerDevices,
  revokeRegistration,
  submitReceipt,
} from '../protocol/credentialing.js';
import type { CredentialingProcessor } from './processor.js';

export function mountCredentialingApi(app: FastifyInstance, processor: CredentialingProcessor): void {
  // NDJSON batches are streamed to the registration subsystem, never buffered whole.
  app.addContentTypeParser('application/x-ndjson', (_request, payload, done) => done(null, payload));
  app.route({
    method: registerDevices.method,
    url: registerDevices.path,
    handler: async (request, reply) => {
      identifyCaller(request, registerDevices);
      const body = request.body as AsyncIterable<Buffer> | undefined;
      if (!body || typeof (body as AsyncIterable<Buffer>)[Symbol.asyncIterator] !== 'function') {
        parse(registerDevices.body!, undefined, 'body');
      }
      return reply.type('application/x-ndjson').send(processor.registerDevices(body!));
    },
  });
  mountRoute(app, deviceState, ({ params }) => processor.deviceState(params.dsimId));
  mountRoute(app, revokeRegistration, ({ params, body }) => processor.revoke(params.dsimId, body));
  mountRoute(app, openSession, ({ body }) => processor.openSession(body));
  mountRoute(app, proveSession, ({ params, body }) => processor.proveSession(params.sessionId, body));
  mountRoute(app, submitReceipt, ({ body }) => processor.credentialing.acceptReceipt(body));
  mountRoute(app, fetchPackage, ({ body }) => processor.credentialing.handOver(body));
}
