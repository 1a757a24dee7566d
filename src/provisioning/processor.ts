import type { Logger } from 'pino';
import { SimcredError } from '../errors/index.js';
import { sameToken, tokenDigest } from '../crypto/digest.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { deliver, referral } from '../protocol/provisioning.js';
import type { CredentialingConsumer } from './consumer.js';
import type { ProvisioningStore } from './store.js';

/**
 * Steps 6–10 on the provisioning server: take referrals, and deliver a package to the device that
 * presents its ticket. The package passes through opaque: this server can neither read nor alter it.
 */
export class ProvisioningProcessor {
  constructor(
    private readonly store: ProvisioningStore,
    private readonly credentialing: CredentialingConsumer,
    private readonly log: Logger,
  ) {}

  /** Step 6: the credentialing server refers a device. */
  async acceptReferral(body: BodyOf<typeof referral>): Promise<ResponseOf<typeof referral>> {
    await this.store.saveReferral({
      dsimId: body.dsimId,
      ticketDigest: body.ticketDigest,
      credentialingUrl: body.credentialingUrl,
      expiresAt: new Date(body.expiresAt),
    });
    this.log.debug({ dsimId: body.dsimId }, 'referral accepted');
    return { accepted: true };
  }

  /** Steps 7–10: check the ticket against the referral, fetch the package, hand it over. */
  async deliver(body: BodyOf<typeof deliver>, now = new Date()): Promise<ResponseOf<typeof deliver>> {
    const referral = await this.store.findReferral(body.dsimId);
    // One error for every ticket failure: a prober learns nothing about which devices are referred.
    if (
      !referral ||
      referral.expiresAt <= now ||
      !sameToken(tokenDigest(body.ticket), referral.ticketDigest)
    ) {
      throw new SimcredError('SIMCRED_TICKET_INVALID', 'ticket not valid for this device here');
    }
    const { package: pkg } = await this.credentialing.fetchPackage(referral.credentialingUrl, {
      dsimId: body.dsimId,
      ticket: body.ticket,
    });
    await this.store.markDelivered(body.dsimId, now);
    this.log.info({ dsimId: body.dsimId }, 'package delivered');
    return { package: pkg };
  }
}
