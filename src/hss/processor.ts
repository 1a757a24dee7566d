import { createHash, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import type { SigningKey } from '../keys/signing-key.js';
import * as x509 from '../crypto/x509.js';
import type { Logger } from 'pino';
import { computeOpc } from '../aka/milenage.js';
import {
  certificatePublicKey,
  keyKind,
  parseCertificateBase64,
  sealPackageAs,
  DEFAULT_PACKAGE_FORMAT,
  type PackageFormat,
} from '../crypto/index.js';
import { SimcredError } from '../errors/index.js';
import { signTransferStatement as signTransferStatementJws } from '../crypto/transfer-statement.js';
import { requireDsimBinding } from '../pki/device-identity.js';
import type {
  deleteSubscribers,
  issueCredentials,
  releaseSubscribers,
  resumeSubscribers,
  signTransferStatement,
  suspendSubscribers,
} from '../protocol/hss.js';
import { systemClock, type Clock } from '../time/clock.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { KeyEncryptionKey } from '../keys/key-encryption.js';
import type { HssStore, Subscriber } from './store.js';

/** The operator's subscription parameters (DESIGN §1: the HSS allocates from the operator's range). */
export interface SubscriptionProfile {
  /** MCC+MNC, e.g. "00102"; IMSIs are the PLMN followed by MSIN digits. */
  plmn: string;
  /** First MSIN index and how many IMSIs the range holds. */
  firstMsin: number;
  capacity: number;
  /** Operator variant key OP (16 bytes): OPc = f(K, OP) per subscriber, TS 35.206. */
  op: Buffer;
  amf: string;
  packageTtlSeconds: number;
  /** How long a released IMSI waits before a new subscriber may get it (30 days when omitted). */
  imsiQuarantineSeconds?: number;
}

/** The default quarantine of a released IMSI: 30 days. */
export const DEFAULT_IMSI_QUARANTINE_SECONDS = 30 * 24 * 3600;

export interface HssProcessorOptions {
  store: HssStore;
  profile: SubscriptionProfile;
  /** Key-encryption key for K/OPc at rest (in memory or in a PKCS#11 token). */
  kek: KeyEncryptionKey;
  /** The package signer: a file's key or a PKCS#11 token's (which signs in the token). */
  operatorSigningKey: KeyObject | SigningKey;
  /** Package signer certificate first, then the operator CA (PEM). */
  operatorChainPem: string[];
  log: Logger;
  /** Time of releases and of the quarantine decision (tests move it); the real clock when omitted. */
  clock?: Clock;
}

/**
 * DESIGN §2 step 5: credentials for a DSIM_ID, bound to CERT_dsim's key and the device nonce.
 * Idempotent per DSIM_ID and generation: a retry never allocates a second IMSI; a new device nonce
 * re-seals the same IMSI/K/OPc; another device key for the same DSIM_ID is refused. A re-provisioning
 * asks for the next generation and gets a new subscriber (new IMSI, K, OPc) beside the old one.
 */
export class HssProcessor {
  private readonly clock: Clock;

  constructor(private readonly options: HssProcessorOptions) {
    this.clock = options.clock ?? systemClock;
  }

  async issue(body: BodyOf<typeof issueCredentials>): Promise<ResponseOf<typeof issueCredentials>> {
    const { store, profile, kek } = this.options;
    const certificate = parseCertificate(body.deviceCertificate);
    requireDsimBinding(certificate, body.dsimId);
    const deviceKey = certificatePublicKey(certificate);
    // A key no package can be sealed to is refused before an IMSI is allocated and bound to it.
    keyKind(deviceKey);
    const deviceKeyDigest = createHash('sha256')
      .update(deviceKey.export({ format: 'der', type: 'spki' }))
      .digest('base64url');

    const msinDigits = 15 - profile.plmn.length;
    const quarantineMs = (profile.imsiQuarantineSeconds ?? DEFAULT_IMSI_QUARANTINE_SECONDS) * 1000;
    const allocation = {
      capacity: profile.capacity,
      imsiOf: (index: number) => profile.plmn + String(profile.firstMsin + index).padStart(msinDigits, '0'),
      reusableBefore: new Date(this.clock().getTime() - quarantineMs),
    };
    // Sealed inside the allocating transaction: a token that fails here (503) rolls the IMSI back.
    const result = await store.createSubscriber(body.dsimId, body.generation, allocation, (imsi) => {
      const k = randomBytes(16);
      const opc = computeOpc(k, profile.op);
      return {
        imsi,
        dsimId: body.dsimId,
        generation: body.generation,
        deviceKeyDigest,
        kSealed: kek.seal(k, `k:${imsi}`),
        opcSealed: kek.seal(opc, `opc:${imsi}`),
        amf: profile.amf,
        sqn: 0,
        state: 'provisioned',
        suspended: false,
        packageId: '',
        deviceNonce: '',
        package: '',
      };
    });
    if (result === 'exhausted')
      throw new SimcredError('SIMCRED_IMSI_EXHAUSTED', 'the IMSI range is exhausted');
    const subscriber = result.subscriber;
    if (subscriber.deviceKeyDigest !== deviceKeyDigest) {
      throw new SimcredError('SIMCRED_DEVICE_KEY_MISMATCH', 'this DSIM_ID is bound to another device key');
    }
    if (subscriber.package && subscriber.deviceNonce === body.deviceNonce) {
      return { imsi: subscriber.imsi, packageId: subscriber.packageId, package: subscriber.package };
    }
    const sealedId = randomUUID();
    const sealed = await this.seal(subscriber, certificate, body.deviceNonce, sealedId, body.packageFormat);
    // A concurrent request for the same session may have stored its package first: that one is the answer.
    const stored = await store.replacePackage(subscriber.imsi, sealedId, body.deviceNonce, sealed);
    this.options.log.debug(
      { dsimId: body.dsimId, generation: body.generation, imsi: subscriber.imsi, created: result.created },
      'package sealed',
    );
    return { imsi: subscriber.imsi, packageId: stored.packageId, package: stored.package };
  }

  /** Revoked: release each subscriber, attached or not (see HssStore.releaseSubscriber). */
  async release(body: BodyOf<typeof releaseSubscribers>): Promise<ResponseOf<typeof releaseSubscribers>> {
    return this.end(body, body.reason ?? 'revoked', 'subscriber released');
  }

  /** Deleted by the operator: the subscription ends as a release does, for good. */
  async delete(body: BodyOf<typeof deleteSubscribers>): Promise<ResponseOf<typeof deleteSubscribers>> {
    return this.end(body, body.reason ?? 'deleted', 'subscriber deleted');
  }

  async suspend(body: BodyOf<typeof suspendSubscribers>): Promise<ResponseOf<typeof suspendSubscribers>> {
    const results: ResponseOf<typeof suspendSubscribers>['results'] = [];
    for (const dsimId of new Set(body.dsimIds)) {
      const { outcome, imsi } = await this.options.store.setSuspended(dsimId, true, this.clock());
      if (outcome === 'absent') results.push({ dsimId, outcome, imsi });
      else {
        this.options.log.info({ dsimId, imsi }, 'subscriber suspended');
        results.push({ dsimId, outcome: 'suspended', imsi });
      }
    }
    return { results };
  }

  async resume(body: BodyOf<typeof resumeSubscribers>): Promise<ResponseOf<typeof resumeSubscribers>> {
    const results: ResponseOf<typeof resumeSubscribers>['results'] = [];
    for (const dsimId of new Set(body.dsimIds)) {
      const { outcome, imsi } = await this.options.store.setSuspended(dsimId, false, this.clock());
      if (outcome === 'absent') results.push({ dsimId, outcome, imsi });
      else {
        this.options.log.info({ dsimId, imsi }, 'subscriber resumed');
        results.push({ dsimId, outcome: 'resumed', imsi });
      }
    }
    return { results };
  }

  private async end(
    body: { dsimIds: string[]; upToGeneration?: Record<string, number> | undefined },
    reason: string,
    message: string,
  ): Promise<ResponseOf<typeof releaseSubscribers>> {
    const results: ResponseOf<typeof releaseSubscribers>['results'] = [];
    for (const dsimId of new Set(body.dsimIds)) {
      const { outcome, imsi } = await this.options.store.releaseSubscriber(
        dsimId,
        reason,
        this.clock(),
        body.upToGeneration?.[dsimId],
      );
      if (outcome === 'released') this.options.log.info({ dsimId, imsi }, message);
      results.push({ dsimId, outcome, imsi });
    }
    return { results };
  }

  private seal(
    subscriber: Subscriber,
    certificate: x509.X509Certificate,
    deviceNonce: string,
    packageId: string,
    format: PackageFormat = DEFAULT_PACKAGE_FORMAT,
  ): Promise<string> {
    const { kek, profile } = this.options;
    const k = kek.open(subscriber.kSealed, `k:${subscriber.imsi}`);
    const opc = kek.open(subscriber.opcSealed, `opc:${subscriber.imsi}`);
    return sealPackageAs(format, {
      credentials: {
        imsi: subscriber.imsi,
        k: k.toString('hex'),
        opc: opc.toString('hex'),
        amf: subscriber.amf,
        sqn: subscriber.sqn.toString(16).padStart(12, '0'),
        plmn: profile.plmn,
      },
      dsimId: subscriber.dsimId,
      deviceNonce: Buffer.from(deviceNonce, 'base64url'),
      devicePublicKey: certificate,
      operatorSigningKey: this.options.operatorSigningKey,
      operatorChainPem: this.options.operatorChainPem,
      ttlSeconds: profile.packageTtlSeconds,
      packageId,
    });
  }

  /**
   * Operator change: a transfer statement signed with the package signer, bound to the device key
   * this HSS sealed the subscriber's packages to (never a key the caller names). Refused for a
   * DSIM_ID without a subscriber (SIMCRED_SUBSCRIPTION_NOT_PROVISIONED) or a suspended one.
   */
  async signTransfer(
    body: BodyOf<typeof signTransferStatement>,
  ): Promise<ResponseOf<typeof signTransferStatement>> {
    const subscriber = await this.options.store.findByDsimId(body.dsimId);
    if (!subscriber) {
      throw new SimcredError('SIMCRED_SUBSCRIPTION_NOT_PROVISIONED', 'no subscriber for this DSIM_ID');
    }
    if (subscriber.suspended) {
      throw new SimcredError('SIMCRED_SUBSCRIPTION_SUSPENDED', 'the operator suspended this subscription');
    }
    const statement = await signTransferStatementJws({
      transferId: body.transferId,
      dsimId: body.dsimId,
      deviceKeySha256: Buffer.from(subscriber.deviceKeyDigest, 'base64url').toString('hex'),
      newOperatorRoot: body.newOperatorRoot,
      newRegistrationServers: body.newRegistrationServers,
      newServers: body.newServers,
      confirmUrl: body.confirmUrl,
      signingKey: this.options.operatorSigningKey,
      signerChainPem: this.options.operatorChainPem,
      ttlSeconds: body.ttlSeconds,
      now: this.clock(),
    });
    this.options.log.info({ dsimId: body.dsimId, transferId: body.transferId }, 'transfer statement signed');
    return { statement };
  }
}

function parseCertificate(base64Der: string): x509.X509Certificate {
  return parseCertificateBase64(base64Der, 'SIMCRED_CERT_INVALID');
}
