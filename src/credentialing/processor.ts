import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { SimcredError, isSimcredError } from '../errors/index.js';
import type { BodyOf, QueryOf, ResponseOf } from '../protocol/route.js';
import {
  stateOfEvent,
  type deviceEvents,
  type deleteDevice,
  type deviceState,
  type openSession,
  type proveSession,
  type resumeDevice,
  type revokeRegistration,
  type suspendDevice,
} from '../protocol/credentialing.js';
import { longPoll, type FeedSignal } from '../storage/index.js';
import type { RegistrationExpiry } from './expiry.js';
import type { AuthenticationSubsystem } from './authentication-subsystem.js';
import type { PeerActionSender } from './peer-actions.js';
import type { CredentialingSubsystem } from './credentialing-subsystem.js';
import type { RegistrationSubsystem } from './registration-subsystem.js';
import type { CredentialingStore } from './store.js';
import type { ReprovisionPolicy } from './order-store.js';
import { transferredError } from './transfers.js';
import { systemClock, type Clock } from '../time/clock.js';

/**
 * The credentialing server's work, knowing nothing of HTTP: its three subsystems in order, the
 * operator's view and revocation, and the rule that a failed step leaves no half-done state.
 */
export class CredentialingProcessor {
  constructor(
    readonly registration: RegistrationSubsystem,
    readonly authentication: AuthenticationSubsystem,
    readonly credentialing: CredentialingSubsystem,
    private readonly store: CredentialingStore,
    private readonly peerActions: PeerActionSender,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
    /** Wakes the feed's long polls when an audit event is committed; expires what is due before a read. */
    private readonly feed?: { signal: FeedSignal; expiry: RegistrationExpiry },
  ) {}

  /** Steps 0a–0b: an NDJSON body in, NDJSON progress out. */
  registerDevices(
    body: AsyncIterable<Buffer | string>,
    order?: {
      placedBy: string;
      label: string | null;
      appendTo?: string | undefined;
      reprovisionPolicy?: ReprovisionPolicy | undefined;
    },
  ): Readable {
    const lines = this.registration.registerStream(body, order);
    return Readable.from(
      (async function* () {
        for await (const line of lines) yield `${JSON.stringify(line)}\n`;
      })(),
    );
  }

  openSession(body: BodyOf<typeof openSession>): Promise<ResponseOf<typeof openSession>> {
    return this.authentication.openSession(body).catch(async (err: unknown) => {
      // A wrong session nonce fails the device's attempt (it holds the wrong registration nonce);
      // the other refusals of step 3 change nothing: a replay, a session already open, or a
      // registration that is unknown, used, revoked or expired (that one is its own event).
      const failed = isSimcredError(err) && err.code === 'SIMCRED_SESSION_NONCE_INVALID';
      await this.auditFailure(body.dsimId, failed ? 'failed' : 'session-refused', err);
      throw err;
    });
  }

  /**
   * Steps 4–6. Any failure ends the session: the device starts over at step 3 with a fresh nonce,
   * and the HSS's idempotency makes the retry land on the same subscriber.
   */
  async proveSession(
    sessionId: string,
    body: BodyOf<typeof proveSession>,
  ): Promise<ResponseOf<typeof proveSession>> {
    const device = await this.authentication.authenticate(sessionId, body).catch(async (err: unknown) => {
      const registration = await this.store.findBySession(sessionId);
      if (registration) await this.failSession(registration.dsimId, sessionId, err);
      throw err;
    });
    // The plan the operator's hook chose is kept in the audit trail (and so in the feed).
    const detail = device.plan === null ? null : `plan:${device.plan}`;
    await this.store.audit(device.registration.dsimId, 'authenticated', detail, this.clock());
    try {
      return await this.credentialing.issueAndRefer(device);
    } catch (err) {
      await this.failSession(device.registration.dsimId, sessionId, err);
      throw dependencyError(err);
    }
  }

  /**
   * The session ends in 'failed' with the refusal's code (the device's own answer may be a retryable
   * 503 that hides a peer's bad answer; the operator sees the code). Nothing is written when the
   * session had already ended otherwise: revoked or expired meanwhile (those are their own events), or
   * undone with its failed referral.
   */
  private async failSession(dsimId: string, sessionId: string, err: unknown): Promise<void> {
    const code = isSimcredError(err) ? err.code : 'SIMCRED_INTERNAL';
    if (!isSimcredError(err)) this.log.error({ err, dsimId }, 'session failed');
    await this.store.failSession(dsimId, sessionId, code, this.clock()).catch(() => undefined);
  }

  async deviceState(dsimId: string): Promise<ResponseOf<typeof deviceState>> {
    const registration = await this.store.find(dsimId);
    if (!registration)
      throw new SimcredError('SIMCRED_REGISTRATION_UNKNOWN', 'no registration for this device');
    const audit = await this.store.auditTrail(dsimId);
    const expired = registration.state === 'registered' && registration.expiresAt <= this.clock();
    return {
      dsimId,
      state: expired ? 'expired' : registration.state,
      registrationServer: registration.registrationServer,
      expiresAt: registration.expiresAt.toISOString(),
      provisioningServer: registration.provisioningServer,
      imsi: registration.imsi,
      audit: audit.map((e) => ({ at: e.at.toISOString(), event: e.event, detail: e.detail })),
    };
  }

  /**
   * The operator's feed: audit events after the cursor, each with the state it moves its device to.
   * Expiries due by now are written first, so the feed never shows an expired registration as live.
   */
  async deviceEvents(query: QueryOf<typeof deviceEvents>): Promise<ResponseOf<typeof deviceEvents>> {
    if (!this.feed) throw new SimcredError('SIMCRED_INTERNAL', 'the event feed is not wired');
    const { signal, expiry } = this.feed;
    const events = await longPoll(
      async () => {
        await expiry.sweep();
        return this.store.auditEventsAfter(query.after, query.limit);
      },
      (found) => found.length > 0,
      query.waitSeconds,
      signal,
    );
    return {
      events: events.map((e) => ({
        id: e.id,
        dsimId: e.dsimId,
        at: e.at.toISOString(),
        event: e.event,
        state: stateOfEvent(e.event),
        detail: e.detail,
        orderId: e.orderId,
      })),
      next: events.at(-1)?.id ?? query.after,
    };
  }

  async revoke(
    dsimId: string,
    body: BodyOf<typeof revokeRegistration>,
  ): Promise<ResponseOf<typeof revokeRegistration>> {
    const registration = await this.store.find(dsimId);
    if (!registration)
      throw new SimcredError('SIMCRED_REGISTRATION_UNKNOWN', 'no registration for this device');
    if (registration.state === 'revoked') return { dsimId, state: 'revoked' };
    if (registration.state === 'deleted') throw ended();
    if (registration.state === 'transferred') throw transferredError();
    // The audit event, the withdrawal from the registration server and the release of any subscriber
    // the HSS allocated are written with the revocation; the sender delivers them, retrying while a
    // peer is down (the revoked state refuses the device meanwhile).
    if (
      !(await this.store.revoke(registration, body.reason ?? null, this.credentialing.hssUrl, this.clock()))
    ) {
      // Moved meanwhile: answer from the state it moved to (revoked or deleted by another call).
      return this.revoke(dsimId, body);
    }
    this.peerActions.kick();
    return { dsimId, state: 'revoked' };
  }

  /**
   * The subscription's life after delivery. Each decision is a conditional state change written with
   * its audit event and the HSS call it owes (the outbox, src/credentialing/peer-actions.ts), so the
   * operator's answer never waits on the HSS and an HSS that is down gets the change once it is back.
   * Idempotent: suspending a suspended device, resuming an active one, deleting a deleted one answer
   * as if done now.
   */
  async suspend(
    dsimId: string,
    body: BodyOf<typeof suspendDevice>,
  ): Promise<ResponseOf<typeof suspendDevice>> {
    const registration = await this.lifecycleTarget(dsimId);
    if (registration.state === 'suspended') return { dsimId, state: 'suspended' };
    if (!(await this.store.suspend(dsimId, body.reason ?? null, this.credentialing.hssUrl, this.clock()))) {
      return this.suspend(dsimId, body);
    }
    this.peerActions.kick();
    return { dsimId, state: 'suspended' };
  }

  async resume(dsimId: string, body: BodyOf<typeof resumeDevice>): Promise<ResponseOf<typeof resumeDevice>> {
    const registration = await this.lifecycleTarget(dsimId);
    if (registration.state === 'delivered' || registration.state === 'completed') {
      return { dsimId, state: registration.state };
    }
    if (!(await this.store.resume(dsimId, body.reason ?? null, this.credentialing.hssUrl, this.clock()))) {
      return this.resume(dsimId, body);
    }
    this.peerActions.kick();
    const resumed = await this.store.find(dsimId);
    return { dsimId, state: resumed?.state === 'delivered' ? 'delivered' : 'completed' };
  }

  async delete(dsimId: string, body: BodyOf<typeof deleteDevice>): Promise<ResponseOf<typeof deleteDevice>> {
    const registration = await this.store.find(dsimId);
    if (!registration)
      throw new SimcredError('SIMCRED_REGISTRATION_UNKNOWN', 'no registration for this device');
    if (registration.state === 'transferred') throw transferredError();
    if (registration.state !== 'deleted') {
      // False only if another call deleted it meanwhile: deleted either way.
      await this.store.delete(registration, body.reason ?? null, this.credentialing.hssUrl, this.clock());
      this.peerActions.kick();
    }
    return { dsimId, state: 'deleted' };
  }

  /** The registration a suspend or resume acts on: one whose subscription exists and has not ended. */
  private async lifecycleTarget(dsimId: string) {
    const registration = await this.store.find(dsimId);
    if (!registration)
      throw new SimcredError('SIMCRED_REGISTRATION_UNKNOWN', 'no registration for this device');
    switch (registration.state) {
      case 'delivered':
      case 'completed':
      case 'suspended':
        return registration;
      case 'deleted':
        throw ended();
      case 'transferring':
        throw new SimcredError(
          'SIMCRED_TRANSFER_IN_PROGRESS',
          'the device is being transferred to another operator',
        );
      case 'transferred':
        throw transferredError();
      case 'revoked':
        // Revoked after delivery, its subscriber was released; before, it never had one.
        if (registration.packageId)
          throw new SimcredError('SIMCRED_SUBSCRIPTION_ENDED', 'the subscription was revoked');
        break;
    }
    throw new SimcredError(
      'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
      `the device has no subscription yet (${registration.state})`,
    );
  }

  private async auditFailure(dsimId: string, event: string, err: unknown): Promise<void> {
    const code = isSimcredError(err) ? err.code : 'SIMCRED_INTERNAL';
    if (!isSimcredError(err)) this.log.error({ err, dsimId }, event);
    await this.store.audit(dsimId, event, code, this.clock()).catch(() => undefined);
  }
}

function ended(): SimcredError {
  return new SimcredError('SIMCRED_SUBSCRIPTION_ENDED', 'the operator deleted this subscription');
}

/**
 * A peer's 4xx surprise (our request was refused) is still our dependency failing: a retryable 503
 * for the device. Errors of our own making pass through as they are.
 */
const PASSED_THROUGH = new Set([
  'SIMCRED_REGISTRATION_REVOKED',
  'SIMCRED_SUBSCRIPTION_ENDED',
  'SIMCRED_SESSION_UNKNOWN',
  'SIMCRED_DEPENDENCY_UNAVAILABLE',
  'SIMCRED_IMSI_EXHAUSTED',
  'SIMCRED_DEVICE_KEY_MISMATCH',
  // The device opens no format this deployment seals: final, not a dependency's hiccup.
  'SIMCRED_PACKAGE_FORMAT_UNSUPPORTED',
]);

function dependencyError(err: unknown): unknown {
  if (!isSimcredError(err) || PASSED_THROUGH.has(err.code)) return err;
  return new SimcredError(
    'SIMCRED_DEPENDENCY_UNAVAILABLE',
    `a dependency refused the request (${err.code})`,
    {
      retryAfter: err.retryAfter ?? 2,
    },
  );
}
