import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { identifyCaller, mountRoute, parse } from '../http/index.js';
import {
  admitGroupDevice,
  authoriseTransfer,
  closeGroup,
  confirmTransfer,
  createGroup,
  listGroups,
  deleteDevice,
  deviceEvents,
  deviceState,
  fetchPackage,
  openSession,
  proveSession,
  registerDevices,
  reprovisionDevice,
  requestReprovision,
  resumeDevice,
  revokeRegistration,
  submitReceipt,
  suspendDevice,
} from '../protocol/credentialing.js';
import type { EnrollmentGroups } from './enrollment-groups.js';
import type { CredentialingProcessor } from './processor.js';
import type { Reprovisioning } from './reprovisioning.js';
import type { Transfers } from './transfers.js';

export function mountCredentialingApi(
  app: FastifyInstance,
  processor: CredentialingProcessor,
  groups: EnrollmentGroups,
  reprovisioning: Reprovisioning,
  transfers: Transfers,
): void {
  // NDJSON batches are streamed to the registration subsystem, never buffered whole.
  app.addContentTypeParser('application/x-ndjson', (_request, payload, done) => done(null, payload));
  app.route({
    method: registerDevices.method,
    url: registerDevices.path,
    handler: async (request, reply) => {
      const caller = identifyCaller(request, registerDevices);
      const query = parse(registerDevices.query!, request.query ?? {}, 'query');
      const body = request.body as Readable | undefined;
      if (!body || typeof body.iterator !== 'function') {
        parse(registerDevices.body!, undefined, 'body');
      }
      const progress = processor.registerDevices(body!.iterator({ destroyOnReturn: false }), {
        placedBy: caller.kind === 'peer' ? caller.subject : 'unknown',
        label: query.label ?? null,
        appendTo: query.order,
        reprovisionPolicy: query.reprovision,
      });
      // A batch that stops early (a registration server down) has not read the whole request: the
      // rest is read and dropped, so the client finishes sending and reads the summary instead of
      // having its connection torn down mid-upload.
      progress.once('close', () => body!.resume());
      return reply.type('application/x-ndjson').send(progress);
    },
  });
  mountRoute(app, deviceState, ({ params }) => processor.deviceState(params.dsimId));
  mountRoute(app, deviceEvents, ({ query }) => processor.deviceEvents(query));
  mountRoute(app, revokeRegistration, ({ params, body }) => processor.revoke(params.dsimId, body));
  mountRoute(app, suspendDevice, ({ params, body }) => processor.suspend(params.dsimId, body));
  mountRoute(app, resumeDevice, ({ params, body }) => processor.resume(params.dsimId, body));
  mountRoute(app, deleteDevice, ({ params, body }) => processor.delete(params.dsimId, body));
  mountRoute(app, reprovisionDevice, ({ params, body }) => reprovisioning.byOperator(params.dsimId, body));
  mountRoute(app, requestReprovision, ({ body }) => reprovisioning.byDevice(body));
  mountRoute(app, openSession, ({ body }) => processor.openSession(body));
  mountRoute(app, proveSession, ({ params, body }) => processor.proveSession(params.sessionId, body));
  mountRoute(app, submitReceipt, ({ body }) => processor.credentialing.acceptReceipt(body));
  mountRoute(app, fetchPackage, ({ body }) => processor.credentialing.handOver(body));
  mountRoute(app, createGroup, ({ body }) => groups.create(body));
  mountRoute(app, listGroups, async () => ({ groups: await groups.list() }));
  mountRoute(app, closeGroup, ({ params }) => groups.close(params.groupId));
  mountRoute(app, admitGroupDevice, ({ params, body }) => groups.admit(params.groupId, body));
  mountRoute(app, authoriseTransfer, ({ params, body }) => transfers.authorise(params.dsimId, body));
  mountRoute(app, confirmTransfer, ({ body }) => transfers.confirm(body));
}
