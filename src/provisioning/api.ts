import type { FastifyInstance } from 'fastify';
import { mountRoute } from '../http/index.js';
import { deliver, referral } from '../protocol/provisioning.js';
import type { ProvisioningProcessor } from './processor.js';

export function mountProvisioningApi(app: FastifyInstance, processor: ProvisioningProcessor): void {
  mountRoute(app, referral, ({ body }) => processor.acceptReferral(body));
  mountRoute(app, deliver, ({ body }) => processor.deliver(body));
}
