import type { FastifyInstance } from 'fastify';
import { SimcredError } from '../errors/index.js';
import { identifyCaller, mountRoute, parseInput } from '../http/index.js';
import { deliver, omadm, omadmNotify, referral } from '../protocol/provisioning.js';
import { SYNCML_DM_XML } from '../protocol/omadm/syncml.js';
import type { DmServer } from './omadm/session.js';
import type { ProvisioningProcessor } from './processor.js';

export function mountProvisioningApi(
  app: FastifyInstance,
  processor: ProvisioningProcessor,
  dm: DmServer,
): void {
  mountRoute(app, referral, ({ body }) => processor.acceptReferral(body));
  mountRoute(app, deliver, ({ body }) => processor.deliver(body));
  mountRoute(app, omadmNotify, ({ body }) => dm.notify(body.dsimId, body.smsAddress));
  // SyncML DM in its XML representation: the text goes to the DM server as it came.
  app.addContentTypeParser(SYNCML_DM_XML, { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.route({
    method: 'POST',
    url: omadm.path,
    config: { route: omadm },
    handler: async (request, reply) => {
      identifyCaller(request, omadm);
      const { query } = parseInput(omadm, request) as { query: { session?: string } };
      if (typeof request.body !== 'string') {
        throw new SimcredError('SIMCRED_UNSUPPORTED_MEDIA_TYPE', `a DM message is ${SYNCML_DM_XML}`);
      }
      const answer = await dm.handle(request.body, {
        sessionToken: query.session,
        serverUri: `${request.protocol}://${request.host}${omadm.path}`,
      });
      return reply.type(SYNCML_DM_XML).send(answer);
    },
  });
}
