import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import * as x509 from '../crypto/x509.js';
import { computeSessionNonce, fromBase64url, toBase64url } from '../crypto/index.js';
import { SimcredError, isSimcredError } from '../errors/index.js';
import type { PeerClient } from '../http/index.js';
import { ocspStatusChecker, type CertificateStatusChecker } from '../ocsp/checker.js';
import { deviceEndpoints, type LoadedFactoryImage } from '../pki/index.js';
import { openSession, proveSession, submitReceipt } from '../protocol/credentialing.js';
import { attachChallenge, attachResponse, attachResync } from '../protocol/hss.js';
import { phlrChallenge, phlrResponse, phlrResync } from '../protocol/phlr.js';
import { deliver } from '../protocol/provisioning.js';
import { lookup, lookupChallenge } from '../protocol/registration.js';
import type { ResponseOf } from '../protocol/route.js';
import { systemClock, type Clock } from '../time/clock.js';
import { runDmSession, type DmSessionOptions } from './omadm-client.js';
import {
  TrustedModule,
  type AkaCredentials,
  type DeviceModule,
  type InstalledSubscription,
} from './trusted-module.js';
import { followTransfer, type CurrentOperator, type TransferOutcome } from './transfer.js';

/** The steps a device goes through, as timed in the demo and the benchmark. */
export const DEVICE_STEPS = [
  'access',
  'lookup',
  'session',
  'proof',
  'delivery',
  'install',
  'receipt',
  'attach',
] as const;
export type DeviceStep = (typeof DEVICE_STEPS)[number];

export interface DeviceAgentOptions {
  /** The trusted module: software (TrustedModule) or TPM (TpmModule); see openDeviceModule. */
  module: DeviceModule;
  /** Device-side HTTPS client: trusts the operator root, presents no client certificate. */
  client: PeerClient;
  /** From the factory image (DeviceAgent.fromFactoryImage takes every URL from there). */
  registrationServer: string;
  /**
   * Every registration server the factory image lists, in the order the device tries them at step 2
   * (the first that knows it answers); `[registrationServer]` when omitted.
   */
  registrationServers?: string[];
  /**
   * The preliminary HLR the device reaches on its preliminary credentials (step 1): in the field, the
   * network its radio finds; here, the factory image's servers.phlr.
   */
  phlrUrl: string;
  /** The home network's HSS/HLR the device attaches to with the downloaded credentials (step 12): servers.hss. */
  hssUrl: string;
  operatorRoots: x509.X509Certificate[];
  /** Checks the operator signer's certificate at the OCSP responder (step 11). */
  ocsp: CertificateStatusChecker;
  /** Attempts of steps 3–12 when a dependency is down (503), each after its Retry-After. */
  maxAttempts?: number;
  /** Upper bound on one wait, ms (the demo keeps retries short). */
  maxRetryDelayMs?: number;
  /** The device's clock, for renewing its access grant in time; the real clock when omitted. */
  clock?: Clock;
  /** For the OCSP checker of an operator the device is transferred to. */
  ocspOptions?: { clockSkewSeconds?: number; timeoutMs?: number };
  /**
   * How the package is collected at steps 7–10: the provisioning server's JSON route (default) or an
   * OMA DM 1.2 management session (src/device/omadm-client.ts, docs/omadm.md).
   */
  delivery?: Delivery;
  /** Sees every DM message of an omadm delivery (tests validate them against the SyncML DTD). */
  onDmMessage?: DmSessionOptions['onMessage'];
}

/** The ways a device collects its package from the provisioning server. */
export const DELIVERIES = ['json', 'omadm'] as const;
export type Delivery = (typeof DELIVERIES)[number];

export interface OnboardingResult {
  subscription: InstalledSubscription;
  attempts: number;
  /**
   * Times the device went over steps again: after a retryable refusal (503, a session still open),
   * the attach included, or from step 3 when its ticket died. 0 on the straight path.
   */
  retries: number;
  /** Milliseconds per step of the last attempt. */
  timings: Partial<Record<DeviceStep, number>>;
}

/** What DeviceAgent.fromFactoryImage needs besides the image: the rest it reads from the image. */
export type DeviceAgentFromImageOptions = Pick<
  DeviceAgentOptions,
  'client' | 'maxAttempts' | 'maxRetryDelayMs' | 'delivery' | 'onDmMessage'
> &
  Partial<Pick<DeviceAgentOptions, 'module' | 'operatorRoots' | 'ocsp' | 'clock'>> & {
    /** For the OCSP checker made from the image's servers.ocsp (when `ocsp` is not given). */
    ocspOptions?: { clockSkewSeconds?: number; timeoutMs?: number };
  };

/** A grant is renewed when it has less than this left (ms). */
const GRANT_RENEW_MARGIN_MS = 15_000;

/**
 * The device side of DESIGN §2 steps 1–12. Every message the device sends is signed by its trusted
 * module, and AKA runs inside it; the agent itself never sees a key. A dependency outage (503) makes
 * it wait Retry-After and try again: from step 1 while it holds no referral, else from where it
 * stopped, with the same ticket and device nonce.
 *
 * @example
 *   const result = await DeviceAgent.fromFactoryImage(await loadFactoryImage(pkiDir, dsimId), { client }).onboard();
 */
export class DeviceAgent {
  private grant: { grant: string; expiresAt: number } | undefined;
  private retries = 0;
  /** The OCSP checker of the operator the module was transferred to (made once per transfer). */
  private transferred: { transferId: string; ocsp: CertificateStatusChecker } | undefined;

  constructor(private readonly options: DeviceAgentOptions) {}

  /**
   * A device as it leaves the factory: its registration server, PHLR, OCSP responder and HSS, and
   * the operator root it trusts, all from its factory image (docs/device.md). `module`,
   * `operatorRoots` and `ocsp` may be given to share them (a fleet parses the root once).
   *
   * @example
   *   const agent = DeviceAgent.fromFactoryImage(await loadFactoryImage(pkiDir, dsimId), { client });
   *   await agent.onboard();
   */
  static fromFactoryImage(image: LoadedFactoryImage, options: DeviceAgentFromImageOptions): DeviceAgent {
    const endpoints = deviceEndpoints(image.image);
    if (!options.module && image.module === 'tpm') {
      // A TPM module opens asynchronously (its TPM unseals the storage key): the caller opens it.
      throw new SimcredError(
        'SIMCRED_PKI_INCONSISTENT',
        `${image.image.dsimId} has a TPM module: pass module: await openDeviceModule(image)`,
      );
    }
    return new DeviceAgent({
      module: options.module ?? TrustedModule.fromFactoryImage(image),
      client: options.client,
      registrationServer: endpoints.registrationServer,
      registrationServers: endpoints.registrationServers,
      phlrUrl: endpoints.phlrUrl,
      hssUrl: endpoints.hssUrl,
      operatorRoots: options.operatorRoots ?? [new x509.X509Certificate(image.image.trustRoots.operator)],
      ocsp: options.ocsp ?? ocspStatusChecker({ urls: [endpoints.ocspUrl], ...options.ocspOptions }),
      maxAttempts: options.maxAttempts,
      maxRetryDelayMs: options.maxRetryDelayMs,
      ...(options.delivery ? { delivery: options.delivery } : {}),
      ...(options.onDmMessage ? { onDmMessage: options.onDmMessage } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.ocspOptions ? { ocspOptions: options.ocspOptions } : {}),
    });
  }

  /**
   * What a device that holds a credential does from time to time (or when told to): finish an
   * onboarding under way, else ask its registration server whether a fresh registration waits for it
   * (the operator re-provisioned it). If one does, it goes through steps 3–12 again and its new
   * credential replaces the old one; if not ('up-to-date'), nothing changes. A device without a
   * credential onboards (after a factory reset, asking for re-provisioning on the way).
   */
  async checkIn(): Promise<OnboardingResult | 'up-to-date'> {
    const module = this.options.module;
    if (!module.subscription || module.loadProgress() !== undefined) return this.onboard();
    try {
      await this.lookupRegistration();
    } catch (err) {
      // No fresh registration waits (its own was used, or withdrawn when the operator ended it):
      // the device carries on with the credential it holds.
      if (isSimcredError(err) && NOTHING_NEW.has(err.code)) return 'up-to-date';
      throw err;
    }
    return this.onboard();
  }

  /**
   * Steps 1–12: access grant, download, receipt, then attach with the new credentials. A module that
   * already holds a credential (re-provisioning) keeps it until the new one is installed, which
   * replaces it in one atomic write.
   */
  async onboard(): Promise<OnboardingResult> {
    let attempts = 0;
    let timings: OnboardingResult['timings'] = {};
    const module = this.options.module;
    const progress: Progress = restoreProgress(module.loadProgress<StoredProgress>());
    // A module that restarted after installing this onboarding's package (stored before its receipt)
    // only owes the receipt: neither the ticket nor the package is needed again. (The credential it
    // held before this onboarding, if any, is not that package.)
    if (
      progress.referral &&
      module.subscription &&
      module.subscription.packageId !== progress.previousPackageId
    ) {
      progress.subscription = module.subscription;
    }
    const subscription = await this.withRetries(async () => {
      attempts += 1;
      timings = {};
      try {
        return await this.attempt(timings, progress);
      } catch (err) {
        // A ticket that died (expired, or superseded) sends the device back to step 3.
        if (
          isSimcredError(err) &&
          err.code === 'SIMCRED_TICKET_INVALID' &&
          progress.referral &&
          attempts === 1
        ) {
          delete progress.referral;
          delete progress.pkg;
          this.retries += 1;
          return this.attempt(timings, progress);
        }
        throw err;
      }
    });
    await this.withRetries(() => timed(timings, 'attach', () => this.attach()));
    return { subscription, attempts, retries: this.retries, timings };
  }

  /**
   * Runs `work` again after Retry-After while a dependency is down (503) or a rate limit refuses the
   * device (429), up to maxAttempts times.
   */
  private async withRetries<T>(work: () => Promise<T>): Promise<T> {
    const maxAttempts = this.options.maxAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (err) {
        if (!retryable(err) || attempt >= maxAttempts) throw err;
        const delayMs = Math.min((err.retryAfter ?? 1) * 1000, this.options.maxRetryDelayMs ?? 30_000);
        this.retries += 1;
        await sleep(delayMs);
      }
    }
  }

  /**
   * One pass through steps 1–12 (up to the receipt), each step timed. What a previous pass achieved
   * is kept: once referred, a retry re-uses the same ticket and device nonce (the registration may
   * already be used at the credentialing server, so a new session would be refused), a package in
   * hand is installed again rather than fetched again, and an installed one only owes its receipt.
   */
  private async attempt(
    timings: OnboardingResult['timings'],
    progress: Progress,
  ): Promise<InstalledSubscription> {
    const time = <T>(step: DeviceStep, work: () => Promise<T>): Promise<T> => timed(timings, step, work);
    const module = this.options.module;
    if (!progress.referral) {
      const resumed = progress.opening !== undefined;
      try {
        progress.referral = await this.openAndProve(progress, time);
      } catch (err) {
        // The session this pass resumed is gone (lapsed, or taken by a proof whose answer was lost,
        // which moved the registration on): one fresh pass from step 2, with a new device nonce.
        if (!resumed || !isSimcredError(err) || !SESSION_GONE.has(err.code)) throw err;
        delete progress.opening;
        this.retries += 1;
        progress.referral = await this.openAndProve(progress, time);
      }
      delete progress.opening;
      progress.previousPackageId = module.subscription?.packageId;
      // Persist point: the referral (ticket, device nonce, route) before step 7. From step 9 on the
      // registration is used, so a device that lost its referral could never start a session again.
      module.saveProgress(storeProgress(progress));
    }
    const { registration, session, referral } = progress.referral;
    if (!progress.subscription) {
      if (!progress.pkg) {
        progress.pkg = await time('delivery', () => this.collectPackage(referral));
        // Persist point: the package before it is installed. From step 9 on only the ticket can fetch
        // it again, and the ticket lapses: a module that crashes during a slow install (OCSP down,
        // say) and comes back later must still hold it.
        module.saveProgress(storeProgress(progress));
      }
      const pkg = progress.pkg;
      progress.subscription = await time('install', () => this.install(pkg, session.deviceNonce));
    }
    await time('receipt', () => this.sendReceipt(registration, session.deviceNonce));
    // Persist point: done; nothing to resume (the subscription itself was stored by the install).
    module.saveProgress(undefined);
    return progress.subscription;
  }

  /**
   * Steps 1–6 of one pass. What a pass that was cut short achieved is kept in `progress.opening`: the
   * registration looked up and the device nonce sent at step 3, and the session once opened. So a
   * retry after a lost answer sends the same device nonce (the server answers with the session it
   * already opened for it, rather than refusing a second one until the first lapses) and proves the
   * session it holds rather than opening another.
   */
  private async openAndProve(
    progress: Progress,
    time: <T>(step: DeviceStep, work: () => Promise<T>) => Promise<T>,
  ): Promise<NonNullable<Progress['referral']>> {
    if (!progress.opening) {
      const grant = await time('access', () => this.accessGrant());
      const registration = await time('lookup', () => this.lookupRegistration(grant));
      progress.opening = { registration, deviceNonce: randomBytes(32) };
    }
    const opening = progress.opening;
    opening.session ??= await time('session', () =>
      this.openSession(opening.registration, opening.deviceNonce),
    );
    const session = opening.session;
    const referral = await time('proof', () => this.proveSession(opening.registration, session));
    return { registration: opening.registration, session, referral };
  }

  /**
   * Step 1: Milenage AKA with the preliminary HLR on PIMSI/K_PIMSI, inside the module; a sync
   * failure is answered with AUTS and the fresh challenge tried once more. Returns the access grant.
   */
  async attachPreliminary(): Promise<ResponseOf<typeof phlrResponse>> {
    const { client, module, phlrUrl } = this.options;
    const pimsi = module.pimsi;
    const res = await this.runAka('preliminary', {
      challenge: () => client.call(phlrUrl, phlrChallenge, { body: { pimsi } }),
      resync: (rand, auts) => client.call(phlrUrl, phlrResync, { body: { pimsi, rand, auts } }),
    });
    const granted = await client.call(phlrUrl, phlrResponse, { body: { pimsi, res } });
    this.grant = { grant: granted.grant, expiresAt: Date.parse(granted.expiresAt) };
    return granted;
  }

  /** The access grant in hand while it has some life left, else a new one (step 1). */
  async accessGrant(): Promise<string> {
    const now = (this.options.clock ?? systemClock)().getTime();
    if (this.grant && this.grant.expiresAt - GRANT_RENEW_MARGIN_MS > now) return this.grant.grant;
    return (await this.attachPreliminary()).grant;
  }

  /**
   * Step 2: show the access grant, prove possession of SK_dsim to the registration server, get the
   * nonce and the route. Without a grant given, the one in hand (or a new one) is used. The image's
   * registration servers are tried in order: one that does not know the device, or does not answer,
   * passes it to the next; when none knows it, the last refusal is thrown — a 503 if any was down,
   * so the onboarding waits its Retry-After and tries the list again (the backoff).
   */
  async lookupRegistration(grant?: string): Promise<ResponseOf<typeof lookup>> {
    const servers = this.current().registrationServers;
    const accessGrant = grant ?? (await this.accessGrant());
    let down: unknown;
    let unknown: unknown;
    for (const server of servers) {
      try {
        return await this.lookupAt(server, accessGrant);
      } catch (err) {
        if (retryable(err) && !down) down = err;
        else if (isSimcredError(err) && err.code === 'SIMCRED_REGISTRATION_UNKNOWN') unknown = err;
        else if (!retryable(err)) throw err;
      }
    }
    throw down ?? unknown;
  }

  /** Step 2 at one registration server. */
  private async lookupAt(
    registrationServer: string,
    accessGrant: string,
  ): Promise<ResponseOf<typeof lookup>> {
    const { client, module } = this.options;
    const dsimId = module.dsimId;
    const { challenge } = await client.call(registrationServer, lookupChallenge, { body: { dsimId } });
    const proof = await module.signLookup(fromBase64url(challenge, 'challenge'));
    return client.call(registrationServer, lookup, {
      body: {
        dsimId,
        grant: accessGrant,
        challenge,
        certificateChain: module.certificateChain,
        ...proof,
        // Holding no credential (new, or factory-reset): a used registration may be renewed for it.
        ...(module.subscription ? {} : { reprovision: true }),
      },
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
    const proof = await module.signProof({
      challenge: fromBase64url(session.challenge, 'challenge'),
      sessionNonce: session.sessionNonce,
    });
    return client.call(registration.credentialingUrl, proveSession, {
      params: { sessionId: session.sessionId },
      body: {
        certificateChain: module.certificateChain,
        // The formats the factory image declares; an image without them gets JOSE, as before.
        ...(module.packageFormats ? { packageFormats: module.packageFormats } : {}),
        ...proof,
      },
    });
  }

  /**
   * Steps 7 and 10: the ticket buys the still-encrypted package, over the JSON route or in an OMA DM
   * session (`notified`: the session a Package 0 asked for).
   */
  async collectPackage(
    referral: ResponseOf<typeof proveSession>,
    notified?: { sessionId: number },
  ): Promise<string> {
    const dsimId = this.options.module.dsimId;
    if (this.options.delivery === 'omadm' || notified) {
      return runDmSession({
        client: this.options.client,
        provisioningUrl: referral.provisioningUrl,
        dsimId,
        ticket: referral.ticket,
        ...(notified ? { notified } : {}),
        ...(this.options.onDmMessage ? { onMessage: this.options.onDmMessage } : {}),
      });
    }
    const delivered = await this.options.client.call(referral.provisioningUrl, deliver, {
      body: { dsimId, ticket: referral.ticket },
    });
    return delivered.package;
  }

  /** Steps 11–12: the module verifies, checks the operator signer's status, decrypts and stores. */
  install(pkg: string, deviceNonce: Buffer): Promise<InstalledSubscription> {
    return this.options.module.installPackage(pkg, {
      deviceNonce,
      operatorRoots: this.current().operatorRoots,
      checkSigner: (signer, issuer) => this.current().ocsp.requireGood(signer, issuer),
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

  /**
   * Step 12, the proof that the download worked: Milenage AKA with the home HSS on the downloaded
   * IMSI/K/OPc, inside the module (resync once on a sync failure). Afterwards the HSS holds the
   * subscriber as 'active'.
   */
  async attach(): Promise<void> {
    const { client, module } = this.options;
    const { hssUrl } = this.current();
    const imsi = module.subscription?.imsi;
    if (!imsi) throw new Error('no package installed');
    const res = await this.runAka('subscription', {
      challenge: () => client.call(hssUrl, attachChallenge, { body: { imsi } }),
      resync: (rand, auts) => client.call(hssUrl, attachResync, { body: { imsi, rand, auts } }),
    });
    await client.call(hssUrl, attachResponse, { body: { imsi, res } });
  }

  /**
   * Operator change: fetch the transfer statement the current operator left at the registration
   * server, have the module take it, onboard at the new operator and confirm to the old one
   * (src/device/transfer.ts).
   */
  followTransfer(): Promise<TransferOutcome> {
    return followTransfer(this, this.options.module, this.options.client, {
      current: () => this.current(),
      accessGrant: () => this.accessGrant(),
    });
  }

  /**
   * Where the device turns and whom it trusts now: after an operator change, what the module stored
   * (the new operator's registration server, home network, OCSP responder and root); else the
   * factory image's.
   */
  private current(): CurrentOperator {
    const trust = this.options.module.transferTrust;
    if (!trust) {
      const { registrationServer, hssUrl, operatorRoots, ocsp } = this.options;
      const registrationServers = this.options.registrationServers ?? [registrationServer];
      return { registrationServers, hssUrl, operatorRoots, ocsp };
    }
    if (this.transferred?.transferId !== trust.transferId) {
      this.transferred = {
        transferId: trust.transferId,
        ocsp: ocspStatusChecker({ urls: [trust.servers.ocsp], ...this.options.ocspOptions }),
      };
    }
    return {
      registrationServers: trust.registrationServers,
      // The old credential, until the new operator's is installed, still attaches where it belongs.
      hssUrl: this.options.module.holdsTransferredCredential
        ? trust.servers.hss
        : (trust.previousHss ?? this.options.hssUrl),
      operatorRoots: [trust.operatorRoot],
      ocsp: this.transferred.ocsp,
    };
  }

  /**
   * Challenge → the module's answer; on a sync failure, AUTS → a fresh challenge → the module again,
   * once. Returns RES (hex) to send; throws SIMCRED_AKA_MAC_FAILURE (not our network, or wrong K) or
   * SIMCRED_AKA_SYNC_FAILURE (still not fresh after a resync).
   */
  private async runAka(
    credentials: AkaCredentials,
    network: {
      challenge(): Promise<{ rand: string; autn: string }>;
      resync(rand: string, auts: string): Promise<{ rand: string; autn: string }>;
    },
  ): Promise<string> {
    let challenge = await network.challenge();
    for (let resynchronised = false; ; resynchronised = true) {
      const answer = this.options.module.authenticate(
        credentials,
        Buffer.from(challenge.rand, 'hex'),
        Buffer.from(challenge.autn, 'hex'),
      );
      if (answer.kind === 'success') return answer.res.toString('hex');
      if (resynchronised) {
        throw new SimcredError(
          'SIMCRED_AKA_SYNC_FAILURE',
          'the SQN is still not fresh after a resynchronisation',
        );
      }
      challenge = await network.resync(challenge.rand, answer.auts.toString('hex'));
    }
  }
}

async function timed<T>(
  timings: OnboardingResult['timings'],
  step: DeviceStep,
  work: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    timings[step] = performance.now() - started;
  }
}

/** What an onboarding has achieved so far, kept across retries. */
interface Progress {
  /** Steps 2–3 of a pass not yet referred (kept in memory only: a restarted module starts over). */
  opening?: {
    registration: ResponseOf<typeof lookup>;
    deviceNonce: Buffer;
    session?: OpenedSession;
  };
  referral?: {
    registration: ResponseOf<typeof lookup>;
    session: OpenedSession;
    referral: ResponseOf<typeof proveSession>;
  };
  pkg?: string;
  subscription?: InstalledSubscription;
  /** The onboarding went back to step 3 once already because its ticket died. */
  restarted?: boolean;
  /** The package id of the credential the module held when this onboarding was referred (if any). */
  previousPackageId?: string | undefined;
}

/** Progress as the module stores it (nonces as base64url). */
interface StoredProgress {
  referral?: Omit<NonNullable<Progress['referral']>, 'session'> & {
    session: Omit<OpenedSession, 'deviceNonce' | 'sessionNonce'> & {
      deviceNonce: string;
      sessionNonce: string;
    };
  };
  pkg?: string;
  previousPackageId?: string;
}

function storeProgress(progress: Progress): StoredProgress {
  const referral = progress.referral;
  return {
    ...(referral
      ? {
          referral: {
            ...referral,
            session: {
              ...referral.session,
              deviceNonce: toBase64url(referral.session.deviceNonce),
              sessionNonce: toBase64url(referral.session.sessionNonce),
            },
          },
        }
      : {}),
    ...(progress.pkg ? { pkg: progress.pkg } : {}),
    ...(progress.previousPackageId ? { previousPackageId: progress.previousPackageId } : {}),
  };
}

function restoreProgress(stored: StoredProgress | undefined): Progress {
  const referral = stored?.referral;
  return {
    ...(referral
      ? {
          referral: {
            ...referral,
            session: {
              ...referral.session,
              deviceNonce: fromBase64url(referral.session.deviceNonce),
              sessionNonce: fromBase64url(referral.session.sessionNonce),
            },
          },
        }
      : {}),
    ...(stored?.pkg ? { pkg: stored.pkg } : {}),
    ...(stored?.previousPackageId ? { previousPackageId: stored.previousPackageId } : {}),
  };
}

/** An open session as the device keeps it: the server's answer and its own nonces. */
export interface OpenedSession extends ResponseOf<typeof openSession> {
  deviceNonce: Buffer;
  sessionNonce: Buffer;
}

/** A check-in's lookup answers that mean "no fresh registration for you". */
const NOTHING_NEW = new Set([
  'SIMCRED_REGISTRATION_USED',
  'SIMCRED_REGISTRATION_UNKNOWN',
  'SIMCRED_REGISTRATION_EXPIRED',
]);

/** Dependency outages, and a session of its own still open (its earlier request timed out), pass with time. */
/** A resumed session that no longer exists: the pass starts again from step 2. */
const SESSION_GONE = new Set(['SIMCRED_SESSION_UNKNOWN', 'SIMCRED_DEVICE_NONCE_REUSED']);

function retryable(err: unknown): err is SimcredError {
  // 429: an abuse limit (docs/abuse-limits.md) refused the device for now; like a 503, it waits
  // Retry-After and tries again.
  return (
    isSimcredError(err) &&
    (err.status === 503 || err.status === 429 || err.code === 'SIMCRED_SESSION_IN_PROGRESS')
  );
}
