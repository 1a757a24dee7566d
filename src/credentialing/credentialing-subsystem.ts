import type { Logger } from 'pino';
import { randomToken, sameToken, tokenDigest } from '../crypto/digest.js';
import {
  choosePackageFormat,
  DEFAULT_PACKAGE_FORMAT,
  fromBase64url,
  inspectAnyPackage,
  packageFormatOf,
  publicKeyOfCertificateDer,
  verifyReceipt,
  type PackageFormat,
} from '../crypto/index.js';
import type * as x509 from '../crypto/x509.js';
import { SimcredError, isSimcredError } from '../errors/index.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { fetchPackage, proveSession, submitReceipt } from '../protocol/credentialing.js';
import type { AuthenticatedDevice } from './authentication-subsystem.js';
import type { CredentialingConsumers } from './consumers.js';
import type { PeerActionSender } from './peer-actions.js';
import { transferredError } from './transfers.js';
import type { CredentialingStore } from './store.js';
import type { Clock } from '../time/clock.js';

export interface CredentialingSubsystemOptions {
  store: CredentialingStore;
  consumers: CredentialingConsumers;
  /** Sends what a state change owes to peers (withdrawals, releases) from the store's outbox. */
  peerActions: PeerActionSender;
  hssUrl: string;
  /** Operator roots the package signer must chain to. */
  operatorRoots: x509.X509Certificate[];
  chooseProvisioningServer(dsimId: string): string;
  /** This server's URL (the route given to devices and provisioning servers). */
  credentialingUrl(): string;
  /** How long a delivery ticket stays good. */
  ticketTtlSeconds: number;
  /** The package formats this deployment seals, in its order of preference (config credentialing.packageFormats). */
  packageFormats?: readonly PackageFormat[];
  log: Logger;
  /** Time for tickets and state changes. */
  clock: Clock;
}

/**
 * DESIGN §2 steps 5–6, 8–9 and 12, the credentialing subsystem (24): the package from the HSS, the
 * referral with a one-time ticket, the hand-over of the still-encrypted package, and the receipt.
 */
export class CredentialingSubsystem {
  constructor(private readonly options: CredentialingSubsystemOptions) {}

  /** The HSS this server asks for packages (and releases revoked devices' subscribers at). */
  get hssUrl(): string {
    return this.options.hssUrl;
  }

  /**
   * Steps 5–6. The HSS is idempotent per DSIM_ID, the state moves conditionally before the referral
   * goes out, and a failed referral undoes the move: a retry after any failure here ends with the
   * same IMSI and exactly one live ticket.
   */
  async issueAndRefer(
    device: AuthenticatedDevice,
    now = this.options.clock(),
  ): Promise<ResponseOf<typeof proveSession>> {
    const { store, consumers } = this.options;
    const { registration, certificate } = device;
    const deviceCertificate = Buffer.from(certificate.rawData).toString('base64');
    const packageFormat = choosePackageFormat(this.options.packageFormats, device.packageFormats);
    const issued = await consumers.issueCredentials(this.options.hssUrl, {
      dsimId: registration.dsimId,
      generation: registration.generation,
      deviceCertificate,
      deviceNonce: registration.deviceNonce!,
      ...(packageFormat !== DEFAULT_PACKAGE_FORMAT ? { packageFormat } : {}),
    });
    // What the HSS returned must be a package from the operator's signer for this very session, in
    // the format asked for: a peer posing as the HSS cannot slip one in (the device would refuse it too).
    if (packageFormatOf(issued.package) !== packageFormat) {
      throw new SimcredError(
        'SIMCRED_PACKAGE_MALFORMED',
        `the HSS returned a package in another format than ${packageFormat}`,
      );
    }
    const info = await inspectAnyPackage(issued.package, { operatorRoots: this.options.operatorRoots });
    if (
      info.dsimId !== registration.dsimId ||
      info.deviceNonce !== registration.deviceNonce ||
      info.packageId !== issued.packageId
    ) {
      throw new SimcredError(
        'SIMCRED_PACKAGE_BINDING_MISMATCH',
        'the HSS returned a package for another session',
      );
    }
    const provisioningServer = this.options.chooseProvisioningServer(registration.dsimId);
    const ticket = randomToken(32);
    const ticketExpiresAt = new Date(now.getTime() + this.options.ticketTtlSeconds * 1000);
    // The state moves first (conditionally: of two concurrent proofs for one session, or a proof racing
    // a revocation, exactly one gets here), then the one referral goes out; if it fails, the move is undone.
    const referred = await store.markReferred(
      registration.dsimId,
      registration.sessionId!,
      {
        deviceCertificate,
        provisioningServer,
        ticketDigest: tokenDigest(ticket),
        ticketExpiresAt,
        imsi: issued.imsi,
        packageId: issued.packageId,
        package: issued.package,
      },
      now,
    );
    if (!referred) {
      const current = await store.find(registration.dsimId);
      if (current?.state === 'revoked') {
        // The revocation's release may have reached the HSS before this subscriber existed: owe another.
        await store.queuePeerActions(
          [{ kind: 'release', dsimId: registration.dsimId, target: this.options.hssUrl }],
          now,
        );
        this.options.peerActions.kick();
        throw new SimcredError(
          'SIMCRED_REGISTRATION_REVOKED',
          'the registration was revoked during the session',
        );
      }
      if (current?.state === 'deleted') {
        // As above: the deletion's call may have reached the HSS first; this subscriber must go too.
        await store.queuePeerActions(
          [{ kind: 'delete', dsimId: registration.dsimId, target: this.options.hssUrl }],
          now,
        );
        this.options.peerActions.kick();
        throw new SimcredError(
          'SIMCRED_SUBSCRIPTION_ENDED',
          'the subscription was deleted during the session',
        );
      }
      throw new SimcredError('SIMCRED_SESSION_UNKNOWN', 'the session ended while the package was being made');
    }
    try {
      await consumers.refer(provisioningServer, {
        dsimId: registration.dsimId,
        ticketDigest: tokenDigest(ticket),
        credentialingUrl: this.options.credentialingUrl(),
        expiresAt: ticketExpiresAt.toISOString(),
      });
    } catch (err) {
      const code = isSimcredError(err) ? err.code : 'SIMCRED_INTERNAL';
      await store.undoReferral(registration.dsimId, registration.sessionId!, code, this.options.clock());
      throw err;
    }
    await store.audit(registration.dsimId, 'referred', provisioningServer, now);
    return {
      status: 'credentials-ready',
      provisioningUrl: provisioningServer,
      ticket,
      expiresAt: ticketExpiresAt.toISOString(),
    };
  }

  /**
   * Steps 8–9: the referred provisioning server presents the device's ticket. The first fetch marks
   * the registration used; a repeat by the provisioning server (it crashed before handing the package
   * on) gets the same opaque package until the device's receipt closes the record.
   */
  async handOver(
    body: BodyOf<typeof fetchPackage>,
    now = this.options.clock(),
  ): Promise<ResponseOf<typeof fetchPackage>> {
    const { store } = this.options;
    const registration = await store.find(body.dsimId);
    if (!registration) throw new SimcredError('SIMCRED_TICKET_INVALID', 'ticket not valid');
    if (registration.state === 'revoked')
      throw new SimcredError('SIMCRED_REGISTRATION_REVOKED', 'registration revoked');
    if (registration.state === 'completed' || registration.state === 'suspended')
      throw new SimcredError('SIMCRED_REGISTRATION_USED', 'registration used');
    if (registration.state === 'deleted')
      throw new SimcredError('SIMCRED_SUBSCRIPTION_ENDED', 'the operator deleted this subscription');
    if (registration.state === 'transferred') throw transferredError();
    if (
      (registration.state !== 'referred' && registration.state !== 'delivered') ||
      !registration.ticketDigest ||
      !registration.package ||
      !registration.ticketExpiresAt ||
      registration.ticketExpiresAt <= now ||
      !sameToken(tokenDigest(body.ticket), registration.ticketDigest)
    ) {
      throw new SimcredError('SIMCRED_TICKET_INVALID', 'ticket not valid');
    }
    if (registration.state === 'referred') {
      if (!(await store.markDelivered(registration, registration.provisioningServer ?? null, now))) {
        throw new SimcredError('SIMCRED_REGISTRATION_USED', 'registration changed meanwhile');
      }
      // The withdrawal queued with it goes out with the sender's next poll, batched with the other
      // deliveries of that second: meanwhile the lookup may still answer, but step 3 refuses a used
      // registration, so the nonce opens nothing.
    }
    return { package: registration.package };
  }

  /** Step 12: a receipt signed by the device key, naming the delivered package, closes the record. */
  async acceptReceipt(
    body: BodyOf<typeof submitReceipt>,
    now = this.options.clock(),
  ): Promise<ResponseOf<typeof submitReceipt>> {
    const { store } = this.options;
    const registration = await store.find(body.dsimId);
    if (!registration)
      throw new SimcredError('SIMCRED_REGISTRATION_UNKNOWN', 'no registration for this device');
    if (registration.state === 'completed') return { dsimId: body.dsimId, state: 'completed' };
    if (registration.state !== 'delivered' || !registration.deviceCertificate || !registration.packageId) {
      throw new SimcredError('SIMCRED_RECEIPT_INVALID', 'no delivered package awaits a receipt');
    }
    await verifyReceipt(
      body.receipt,
      publicKeyOfCertificateDer(Buffer.from(registration.deviceCertificate, 'base64')),
      {
        dsimId: registration.dsimId,
        packageId: registration.packageId,
        deviceNonce: fromBase64url(registration.deviceNonce!, 'deviceNonce'),
      },
    );
    await store.markCompleted(body.dsimId, registration.imsi ?? null, now, this.options.hssUrl);
    return { dsimId: body.dsimId, state: 'completed' };
  }
}
