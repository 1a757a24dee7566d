import type { Logger } from 'pino';
import { SimcredError } from '../errors/index.js';
import { sameToken, tokenDigest } from '../crypto/digest.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { deliver, referral } from '../protocol/provisioning.js';
import type { CredentialingConsumer } from './consumer.js';
import type { ProvisioningStore, Referral } from './store.js';

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
    const pkg = await this.fetchForTicket(body.dsimId, body.ticket, now);
    await this.markDelivered(body.dsimId, now);
    return { package: pkg };
  }

  /**
   * Step 7: the ticket against the referral's digest. One error for every ticket failure: a prober
   * learns nothing about which devices are referred.
   */
  async checkTicket(dsimId: string, ticket: string, now = new Date()): Promise<Referral> {
    const referral = await this.store.findReferral(dsimId);
    if (!referral || referral.expiresAt <= now || !sameToken(tokenDigest(ticket), referral.ticketDigest)) {
      throw new SimcredError('SIMCRED_TICKET_INVALID', 'ticket not valid for this device here');
    }
    return referral;
  }

  /** Steps 7–9: a valid ticket buys the still-encrypted package from the credentialing server. */
  async fetchForTicket(dsimId: string, ticket: string, now = new Date()): Promise<string> {
    const referral = await this.checkTicket(dsimId, ticket, now);
    const { package: pkg } = await this.credentialing.fetchPackage(referral.credentialingUrl, {
      dsimId,
      ticket,
    });
    return pkg;
  }

  /** Step 10 done: the device has the package (the JSON answer sent, or its DM Status 200 received). */
  async markDelivered(dsimId: string, now = new Date()): Promise<void> {
    await this.store.markDelivered(dsimId, now);
    this.log.info({ dsimId }, 'package delivered');
  }

  /** The referral of a device, for the DM Package 0 secret (docs/omadm.md). */
  findReferral(dsimId: string): Promise<Referral | undefined> {
    return this.store.findReferral(dsimId);
  }
}
