import type { PackageFormat } from '../crypto/package-format.js';
import { randomUUID } from 'node:crypto';
import type * as x509 from '../crypto/x509.js';
import type { Logger } from 'pino';
import { fromBase64url, verifyProofOfPossession, verifySessionNonce } from '../crypto/index.js';
import { randomToken } from '../crypto/digest.js';
import { SimcredError } from '../errors/index.js';
import { requireDsimBinding } from '../pki/device-identity.js';
import { parseDeviceChain, verifyDeviceChain } from '../pki/device-chain.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { openSession, proveSession } from '../protocol/credentialing.js';
import type { CertificateStatusChecker } from '../ocsp/checker.js';
import type { AuthorisationHook } from './authorisation-hook.js';
import { transferredError } from './transfers.js';
import type { CredentialingStore, Registration } from './store.js';
import type { Clock } from '../time/clock.js';

export interface AuthenticationSubsystemOptions {
  store: CredentialingStore;
  /** Trusted manufacturer roots: device chains must end at one of them. */
  manufacturerRoots: x509.X509Certificate[];
  ocsp: CertificateStatusChecker;
  /** How long a device has to answer its challenge. */
  sessionTtlSeconds: number;
  log: Logger;
  /** Time for registration and session expiry. */
  clock: Clock;
  /** The operator's authorisation hook, asked last (none: every device that passed is allowed). */
  hook?: AuthorisationHook;
}

/** A device that passed every check of step 4. */
export interface AuthenticatedDevice {
  registration: Registration;
  certificate: x509.X509Certificate;
  deviceNonce: Buffer;
  /** The plan the authorisation hook chose (null: none chosen, or no hook). */
  plan: string | null;
  /** The package formats the device said it opens (absent: jose only). */
  packageFormats?: PackageFormat[];
}

/**
 * DESIGN §2 steps 3–4, the authentication subsystem (18): a pipeline of small named checks, each
 * throwing its own error. No step is skipped and nothing short of all of them passing counts.
 */
export class AuthenticationSubsystem {
  constructor(private readonly options: AuthenticationSubsystemOptions) {}

  /** Step 3 → challenge: live registration, correct session nonce, no other live session. */
  async openSession(
    body: BodyOf<typeof openSession>,
    now = this.options.clock(),
  ): Promise<ResponseOf<typeof openSession>> {
    const { store } = this.options;
    const registration = await store.find(body.dsimId);
    await checkRegistrationLive(store, registration, now);
    checkSessionNonce(registration!, body.deviceNonce, body.sessionNonce);
    const resent = sessionOpenedFor(registration!, body.deviceNonce, now);
    if (resent) return resent;
    const session = {
      sessionId: randomUUID(),
      deviceNonce: body.deviceNonce,
      sessionNonce: body.sessionNonce,
      challenge: randomToken(32),
      expiresAt: new Date(now.getTime() + this.options.sessionTtlSeconds * 1000),
    };
    const opened = await store.openSession(body.dsimId, session, now);
    if (opened === 'nonce-reused') {
      throw new SimcredError(
        'SIMCRED_DEVICE_NONCE_REUSED',
        'this device nonce already opened a session; a device opens each session with a fresh one',
      );
    }
    if (opened === 'busy') {
      // Tell the device when the other session lapses (a request of its own that timed out, say).
      const lapses =
        registration!.sessionExpiresAt?.getTime() ?? now.getTime() + this.options.sessionTtlSeconds * 1000;
      throw new SimcredError('SIMCRED_SESSION_IN_PROGRESS', 'another session for this device is open', {
        retryAfter: Math.max(1, Math.ceil((lapses - now.getTime()) / 1000)),
      });
    }
    return {
      sessionId: session.sessionId,
      challenge: session.challenge,
      expiresAt: session.expiresAt.toISOString(),
    };
  }

  /**
   * Step 4: proof of possession, chain to a manufacturer CA, DSIM_ID binding, OCSP "good", then the
   * operator's authorisation hook if configured (last: it is asked only about a device proven genuine).
   */
  async authenticate(
    sessionId: string,
    proof: BodyOf<typeof proveSession>,
    now = this.options.clock(),
  ): Promise<AuthenticatedDevice> {
    const registration = await this.liveSession(sessionId, now);
    const chain = parseDeviceChain(proof.certificateChain);
    checkProofOfPossession(registration, chain[0]!, proof);
    const { leaf, issuer } = await verifyDeviceChain(chain, { roots: this.options.manufacturerRoots, now });
    requireDsimBinding(leaf, registration.dsimId);
    await this.options.ocsp.requireGood(leaf, issuer);
    const authorised = this.options.hook
      ? await this.options.hook.authorise(registration, leaf)
      : { plan: null };
    return {
      registration,
      certificate: leaf,
      deviceNonce: fromBase64url(registration.deviceNonce!, 'deviceNonce'),
      plan: authorised.plan,
      ...(proof.packageFormats ? { packageFormats: proof.packageFormats } : {}),
    };
  }

  private async liveSession(sessionId: string, now: Date): Promise<Registration> {
    const registration = await this.options.store.findBySession(sessionId);
    if (registration?.state === 'expired') {
      throw new SimcredError('SIMCRED_REGISTRATION_EXPIRED', 'the registration has expired');
    }
    if (
      !registration ||
      registration.state !== 'authenticating' ||
      !registration.sessionExpiresAt ||
      registration.sessionExpiresAt <= now
    ) {
      throw new SimcredError('SIMCRED_SESSION_UNKNOWN', 'no open session with this id');
    }
    if (registration.expiresAt <= now) {
      await this.options.store.markExpired(registration.dsimId, now);
      throw new SimcredError('SIMCRED_REGISTRATION_EXPIRED', 'the registration has expired');
    }
    return registration;
  }
}

/**
 * The session already open for this device nonce, if any: the device sends step 3 again with the same
 * nonce when the answer was lost (a connection cut, a server that died after its commit), and gets
 * the same session rather than SIMCRED_SESSION_IN_PROGRESS until it lapses. Only the device can
 * compute the session nonce checked before this, so no one else learns the challenge.
 */
function sessionOpenedFor(
  registration: Registration,
  deviceNonce: string,
  now: Date,
): ResponseOf<typeof openSession> | undefined {
  const { sessionId, challenge, sessionExpiresAt } = registration;
  if (
    registration.state !== 'authenticating' ||
    registration.deviceNonce !== deviceNonce ||
    !sessionId ||
    !challenge ||
    !sessionExpiresAt ||
    sessionExpiresAt <= now
  ) {
    return undefined;
  }
  return { sessionId, challenge, expiresAt: sessionExpiresAt.toISOString() };
}

/** The registration exists, is not revoked, used or expired. */
async function checkRegistrationLive(
  store: CredentialingStore,
  registration: Registration | undefined,
  now: Date,
): Promise<void> {
  if (!registration)
    throw new SimcredError('SIMCRED_REGISTRATION_UNKNOWN', 'no registration for this device');
  switch (registration.state) {
    case 'revoked':
      throw new SimcredError('SIMCRED_REGISTRATION_REVOKED', 'the registration was revoked');
    case 'delivered':
    case 'completed':
    case 'suspended':
      throw new SimcredError('SIMCRED_REGISTRATION_USED', 'the registration was already used');
    case 'deleted':
      throw new SimcredError('SIMCRED_SUBSCRIPTION_ENDED', 'the operator deleted this subscription');
    case 'transferring':
      throw new SimcredError('SIMCRED_REGISTRATION_USED', 'the registration was already used');
    case 'transferred':
      throw transferredError();
    case 'expired':
      throw new SimcredError('SIMCRED_REGISTRATION_EXPIRED', 'the registration has expired');
  }
  if (registration.expiresAt <= now) {
    await store.markExpired(registration.dsimId, now);
    throw new SimcredError('SIMCRED_REGISTRATION_EXPIRED', 'the registration has expired');
  }
}

/** Recompute HMAC-SHA-256(registration nonce, label ‖ DSIM_ID ‖ device nonce), compare in constant time. */
function checkSessionNonce(registration: Registration, deviceNonce: string, sessionNonce: string): void {
  const ok = verifySessionNonce({
    registrationNonce: fromBase64url(registration.registrationNonce, 'registrationNonce'),
    dsimId: registration.dsimId,
    deviceNonce: fromBase64url(deviceNonce, 'deviceNonce'),
    sessionNonce: fromBase64url(sessionNonce, 'sessionNonce'),
  });
  if (!ok) throw new SimcredError('SIMCRED_SESSION_NONCE_INVALID', 'the session nonce does not match');
}

/** The device signed (challenge ‖ session nonce ‖ DSIM_ID) with the key in its certificate. */
function checkProofOfPossession(
  registration: Registration,
  certificate: x509.X509Certificate,
  proof: BodyOf<typeof proveSession>,
): void {
  const ok = verifyProofOfPossession(
    certificate,
    {
      challenge: fromBase64url(registration.challenge!, 'challenge'),
      sessionNonce: fromBase64url(registration.sessionNonce!, 'sessionNonce'),
      dsimId: registration.dsimId,
    },
    { alg: proof.alg, signature: fromBase64url(proof.signature, 'signature') },
  );
  if (!ok)
    throw new SimcredError('SIMCRED_PROOF_INVALID', 'the proof-of-possession signature does not verify');
}
