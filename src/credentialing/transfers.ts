import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { verifyDeviceMessage } from '../crypto/device-signature.js';
import { publicKeyOfCertificateDer } from '../crypto/certificates.js';
import * as x509 from '../crypto/x509.js';
import { transferConfirmationMessage } from '../crypto/transfer-statement.js';
import { SimcredError, isSimcredError } from '../errors/index.js';
import type { authoriseTransfer, confirmTransfer } from '../protocol/credentialing.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { CredentialingConsumers } from './consumers.js';
import type { PeerActionSender } from './peer-actions.js';
import type { CredentialingStore, Registration } from './store.js';
import { systemClock, type Clock } from '../time/clock.js';

export interface TransferOptions {
  store: CredentialingStore;
  peerActions: PeerActionSender;
  /** The HSS signs the statements: it holds the package signer (docs/architecture.md). */
  consumers: CredentialingConsumers;
  /** This server's URL: where the device confirms. */
  credentialingUrl: () => string;
  hssUrl: string;
  /** Lifetime of a transfer statement (default 7 days). */
  ttlSeconds?: number;
  log: Logger;
  clock?: Clock;
}

/** Default lifetime of a transfer statement: a device switched off for a few days still follows it. */
export const DEFAULT_TRANSFER_TTL_SECONDS = 7 * 24 * 3600;

/**
 * Operator change at the current operator (A), knowing nothing of HTTP: A authorises a transfer of a
 * delivered device to operator B (a statement the HSS signs with A's package signer, bound to the
 * device key it holds, pushed to the device's registration server through the outbox), and the device's signed confirmation that B's credential
 * is installed ends A's subscription (the HSS subscriber deleted through the outbox, final state
 * 'transferred').
 *
 * @example
 *   const transfers = new Transfers({ store, peerActions, consumers, credentialingUrl, hssUrl, log });
 *   await transfers.authorise(dsimId, { toOperatorRoot: bRootPem, toRegistrationServers: [url], toServers });
 */
export class Transfers {
  private readonly clock: Clock;

  constructor(private readonly options: TransferOptions) {
    this.clock = options.clock ?? systemClock;
  }

  async authorise(
    dsimId: string,
    body: BodyOf<typeof authoriseTransfer>,
  ): Promise<ResponseOf<typeof authoriseTransfer>> {
    const { store } = this.options;
    const registration = await this.transferable(dsimId);
    const target = transferTarget(body);
    if (registration.state === 'transferring') {
      const current = await store.findTransfer(dsimId);
      if (current && current.target === target) {
        return {
          dsimId,
          state: 'transferring',
          transferId: current.transferId,
          expiresAt: current.expiresAt.toISOString(),
        };
      }
      throw new SimcredError(
        'SIMCRED_TRANSFER_IN_PROGRESS',
        'the device is being transferred to another operator already',
      );
    }
    const now = this.clock();
    const transferId = `trf_${randomBytes(16).toString('base64url')}`;
    const ttlSeconds = this.options.ttlSeconds ?? DEFAULT_TRANSFER_TTL_SECONDS;
    const { statement } = await this.options.consumers
      .signTransferStatement(this.options.hssUrl, {
        transferId,
        dsimId,
        newOperatorRoot: body.toOperatorRoot,
        newRegistrationServers: body.toRegistrationServers,
        newServers: body.toServers,
        confirmUrl: this.options.credentialingUrl(),
        ttlSeconds,
      })
      .catch((err: unknown) => {
        throw hssRefusal(err);
      });
    const expiresAt = new Date(Math.floor(now.getTime() / 1000) * 1000 + ttlSeconds * 1000);
    if (!(await store.authoriseTransfer(registration, { transferId, statement, target, expiresAt }, now))) {
      // Moved meanwhile (deleted, suspended, or another call's transfer): answer from where it is now.
      return this.authorise(dsimId, body);
    }
    this.options.peerActions.kick();
    this.options.log.info({ dsimId, transferId }, 'transfer authorised');
    return { dsimId, state: 'transferring', transferId, expiresAt: expiresAt.toISOString() };
  }

  /**
   * The device says, signed with its key, that the new operator's package is installed. The
   * signature is checked against the device certificate this server holds from step 4.
   */
  async confirm(body: BodyOf<typeof confirmTransfer>): Promise<ResponseOf<typeof confirmTransfer>> {
    const { store } = this.options;
    const registration = await store.find(body.dsimId);
    if (!registration)
      throw new SimcredError('SIMCRED_REGISTRATION_UNKNOWN', 'no registration for this device');
    const transfer = await store.findTransfer(body.dsimId);
    if (!transfer || transfer.transferId !== body.transferId || !registration.deviceCertificate) {
      throw new SimcredError('SIMCRED_TRANSFER_UNKNOWN', 'no such transfer for this device');
    }
    const signed = verifyDeviceMessage(
      publicKeyOfCertificateDer(Buffer.from(registration.deviceCertificate, 'base64')),
      transferConfirmationMessage(body),
      body,
    );
    if (!signed) {
      throw new SimcredError(
        'SIMCRED_TRANSFER_CONFIRMATION_INVALID',
        "the confirmation does not verify with the device's certificate",
      );
    }
    if (registration.state === 'transferred') return { dsimId: body.dsimId, state: 'transferred' };
    if (registration.state !== 'transferring') {
      throw new SimcredError('SIMCRED_TRANSFER_UNKNOWN', `the transfer ended (${registration.state})`);
    }
    const now = this.clock();
    if (
      !(await store.completeTransfer(registration, body.transferId, body.packageId, this.options.hssUrl, now))
    ) {
      return this.confirm(body);
    }
    this.options.peerActions.kick();
    this.options.log.info({ dsimId: body.dsimId, transferId: body.transferId }, 'transfer confirmed');
    return { dsimId: body.dsimId, state: 'transferred' };
  }

  /** A registration that may be handed over (or is being, to be answered again). */
  private async transferable(dsimId: string): Promise<Registration> {
    const registration = await this.options.store.find(dsimId);
    if (!registration)
      throw new SimcredError('SIMCRED_REGISTRATION_UNKNOWN', 'no registration for this device');
    switch (registration.state) {
      case 'delivered':
      case 'completed':
      case 'transferring':
        if (registration.deviceCertificate) return registration;
        break;
      case 'transferred':
        throw transferredError();
      case 'suspended':
        throw new SimcredError(
          'SIMCRED_SUBSCRIPTION_SUSPENDED',
          'resume the subscription before transferring the device',
        );
      case 'deleted':
        throw new SimcredError('SIMCRED_SUBSCRIPTION_ENDED', 'the operator deleted this subscription');
      case 'revoked':
        if (registration.packageId)
          throw new SimcredError('SIMCRED_SUBSCRIPTION_ENDED', 'the subscription was revoked');
        break;
    }
    throw new SimcredError(
      'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
      `the device has no subscription to transfer (${registration.state})`,
    );
  }
}

/** SIMCRED_DEVICE_TRANSFERRED: the refusal of every request about a device gone to another operator. */
export function transferredError(): SimcredError {
  return new SimcredError(
    'SIMCRED_DEVICE_TRANSFERRED',
    'the device moved to another operator; it is never credentialed here again',
  );
}

/**
 * The HSS's answers about the device pass through (no subscriber there, suspended there, a root it
 * cannot read); anything else is the HSS failing us: retryable.
 */
function hssRefusal(err: unknown): unknown {
  if (
    isSimcredError(err) &&
    [
      'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
      'SIMCRED_SUBSCRIPTION_SUSPENDED',
      'SIMCRED_BAD_REQUEST',
    ].includes(err.code)
  ) {
    return err;
  }
  if (isSimcredError(err) && err.code === 'SIMCRED_DEPENDENCY_UNAVAILABLE') return err;
  return new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', 'the HSS could not sign the transfer statement', {
    retryAfter: 2,
    cause: err,
  });
}

/** What a transfer request asks for, canonical: a repeated request for the same target is the same transfer. */
function transferTarget(body: BodyOf<typeof authoriseTransfer>): string {
  let rootSha256: string;
  try {
    const root = new x509.X509Certificate(body.toOperatorRoot);
    rootSha256 = createHash('sha256').update(Buffer.from(root.rawData)).digest('hex');
  } catch (cause) {
    throw new SimcredError('SIMCRED_BAD_REQUEST', 'toOperatorRoot is not a readable PEM certificate', {
      cause,
    });
  }
  return JSON.stringify({
    rootSha256,
    registrationServers: body.toRegistrationServers,
    servers: body.toServers,
  });
}
