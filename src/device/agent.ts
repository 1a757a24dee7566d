import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as x509 from '../crypto/x509.js';
import { computeSessionNonce, fromBase64url, toBase64url } from '../crypto/index.js';
import { SimcredError, isSimcredError } from '../errors/index.js';
import type { PeerClient } from '../http/index.js';
import type { CertificateStatusChecker } from '../ocsp/checker.js';
import { openSession, proveSession, submitReceipt } from '../protocol/credentialing.js';
import { deliver } from '../protocol/provisioning.js';
import { lookup, lookupChallenge } from '../protocol/registration.js';
import type { ResponseOf } from '../protocol/route.js';
import type { InstalledSubscription, TrustedModule } from './trusted-module.js';

/** The steps a device goes through, as timed in the demo and the benchmark. */
export const DEVICE_STEPS = ['lookup', 'session', 'proof', 'delivery', 'install', 'receipt'] as const;
export type DeviceStep = (typeof DEVICE_STEPS)[number];

export interface DeviceAgentOptions {
  module: TrustedModule;
  /** Device-side HTTPS client: trusts the operator root, presents no client certificate. */
  client: PeerClient;
  /** From the factory image. */
  registrationServer: string;
  operatorRoots: x509.X509Certificate[];
  /** Checks the operator signer's certificate at the OCSP responder (step 11). */
  ocsp: CertificateStatusChecker;
  /** Attempts of steps 3–12 when a dependency is down (503), each after its Retry-After. */
  maxAttempts?: number;
  /** Upper bound on one wait, ms (the demo keeps retries short). */
  maxRetryDelayMs?: number;
}

export interface OnboardingResult {
  subscription: InstalledSubscription;
  attempts: number;
  /** Milliseconds per step of the last attempt. */
  timings: Partial<Record<DeviceStep, number>>;
}

/**
 * The device side of DESIGN §2 steps 2–12. Every message the device sends is signed by its trusted
 * module; the agent itself never sees a key. A dependency outage (503) makes it wait Retry-After
 * and start again at step 3 with a fresh device nonce.
 *
 * @example
 *   const result = await new DeviceAgent({ module, client, registrationServer, operatorRoots, ocsp }).onboard();
 */
export class DeviceAgent {
  constructor(private readonly options: DeviceAgentOptions) {}

  async onboard(): Promise<OnboardingResult> {
    const maxAttempts = this.options.maxAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      const timings: OnboardingResult['timings'] = {};
      try {
        const subscription = await this.attempt(timings);
        return { subscription, attempts: attempt, timings };
      } catch (err) {
        if (!retryable(err) || attempt >= maxAttempts) throw err;
        const delayMs = Math.min((err.retryAfter ?? 1) * 1000, this.options.maxRetryDelayMs ?? 30_000);
        await sleep(delayMs);
      }
    }
  }

  /** One pass through steps 2–12, each step timed. */
  private async attempt(timings: OnboardingResult['timings']): Promise<InstalledSubscription> {
    const time = async <T>(step: DeviceStep, work: () => Promise<T>): Promise<T> => {
      const started = performance.now();
      try {
        return await work();
      } finally {
        timings[step] = performance.now() - started;
      }
    };
    const registration = await time('lookup', () => this.lookupRegistration());
    const session = await time('session', () => this.openSession(registration));
    const referral = await time('proof', () => this.proveSession(registration, session));
    const pkg = await time('delivery', () => this.collectPackage(referral));
    const subscription = await time('install', () => this.install(pkg, session.deviceNonce));
    await time('receipt', () => this.sendReceipt(registration, session.deviceNonce));
    return subscription;
  }

  /** Step 2: prove possession of SK_dsim to the registration server, get the nonce and the route. */
  async lookupRegistration(): Promise<ResponseOf<typeof lookup>> {
    const { client, module, registrationServer } = this.options;
    const dsimId = module.dsimId;
    const { challenge } = await client.call(registrationServer, lookupChallenge, { body: { dsimId } });
    const proof = module.signLookup(fromBase64url(challenge, 'challenge'));
    return client.call(registrationServer, lookup, {
      body: { dsimId, challenge, certificateChain: module.certificateChain, ...proof },
    });
  }

  /** Step 3: a fresh device nonce and the session nonce derived from the registration nonce. */
  async openSession(
    registration: ResponseOf<typeof lookup>,
    deviceNonce: Buffer = randomBytes(32),
  ): Promise<OpenedSession> {
    const dsimId = this.options.module.dsimId;
    const sessionNonce = computeSessionNonce({
      registrationNonce: fromBase64url(registration.registrationNonce, 'registrationNonce'),
      dsimId,
      deviceNonce,
    });
    const opened = await this.options.client.call(registration.credentialingUrl, openSession, {
      body: { dsimId, deviceNonce: toBase64url(deviceNonce), sessionNonce: toBase64url(sessionNonce) },
    });
    return { ...opened, deviceNonce, sessionNonce };
  }

  /** Steps 4–6: sign the challenge; the server checks everything and refers us to a provisioning server. */
  async proveSession(
    registration: ResponseOf<typeof lookup>,
    session: OpenedSession,
  ): Promise<ResponseOf<typeof proveSession>> {
    const { client, module } = this.options;
    return client.call(registration.credentialingUrl, proveSession, {
      params: { sessionId: session.sessionId },
      body: {
        certificateChain: module.certificateChain,
        ...module.signProof({
          challenge: fromBase64url(session.challenge, 'challenge'),
          sessionNonce: session.sessionNonce,
        }),
      },
    });
  }

  /** Steps 7 and 10: the ticket buys the still-encrypted package. */
  async collectPackage(referral: ResponseOf<typeof proveSession>): Promise<string> {
    const dsimId = this.options.module.dsimId;
    const delivered = await this.options.client.call(referral.provisioningUrl, deliver, {
      body: { dsimId, ticket: referral.ticket },
    });
    return delivered.package;
  }

  /** Steps 11–12: the module verifies, checks the operator signer's status, decrypts and stores. */
  install(pkg: string, deviceNonce: Buffer): Promise<InstalledSubscription> {
    return this.options.module.installPackage(pkg, {
      deviceNonce,
      operatorRoots: this.options.operatorRoots,
      checkSigner: (signer, issuer) => this.options.ocsp.requireGood(signer, issuer),
    });
  }

  /** Step 12: the signed receipt closes the record at the credentialing server. */
  async sendReceipt(registration: ResponseOf<typeof lookup>, deviceNonce: Buffer): Promise<void> {
    const { client, module } = this.options;
    const receipt = await module.receipt(deviceNonce);
    await client.call(registration.credentialingUrl, submitReceipt, {
      body: { dsimId: module.dsimId, receipt },
    });
  }
}

/** An open session as the device keeps it: the server's answer and its own nonces. */
export interface OpenedSession extends ResponseOf<typeof openSession> {
  deviceNonce: Buffer;
  sessionNonce: Buffer;
}

function retryable(err: unknown): err is SimcredError {
  return isSimcredError(err) && err.status === 503;
}
