import type { KeyObject } from 'node:crypto';
import type * as x509 from '../crypto/x509.js';
import type { Logger } from 'pino';
import { lookupProofMessage, transferFetchProofMessage } from '../crypto/lookup-proof.js';
import { verifyDeviceMessage } from '../crypto/device-signature.js';
import { createHash } from 'node:crypto';
import { SimcredError, isSimcredError } from '../errors/index.js';
import type { admitGroupDevice, requestReprovision } from '../protocol/credentialing.js';
import { matchesDsimPattern } from '../protocol/dsim-pattern.js';
import { requireDsimBinding } from '../pki/device-identity.js';
import { parseDeviceChain, verifyDeviceChain } from '../pki/device-chain.js';
import { verifyGrant } from '../phlr/grant.js';
import type {
  fetchTransferStatement,
  lookup,
  lookupChallenge,
  pushGroups,
  pushRegistrations,
  pushTransferStatements,
  withdrawRegistrations,
} from '../protocol/registration.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { LookupChallenges } from './challenge.js';
import type { RegistrationStore, StoredRegistration, Writer } from './store.js';
import type { Clock } from '../time/clock.js';

export interface RegistrationProcessorOptions {
  store: RegistrationStore;
  challenges: LookupChallenges;
  /** Manufacturer roots whose devices this server serves. */
  manufacturerRoots: x509.X509Certificate[];
  /** Preliminary HLR keys whose access grants are accepted (step 1 → 2). */
  phlrKeys: KeyObject[];
  grantClockSkewSeconds: number;
  log: Logger;
  /** Time for grants, challenges and registration expiry. */
  clock: Clock;
  /** Asks a group's credentialing server to admit an unlisted device (credentialing.admitGroupDevice). */
  admit: (
    credentialingUrl: string,
    groupId: string,
    body: BodyOf<typeof admitGroupDevice>,
  ) => Promise<ResponseOf<typeof admitGroupDevice>>;
  /** Asks a used registration's credentialing server to re-provision a factory-reset device. */
  reprovision: (
    credentialingUrl: string,
    body: BodyOf<typeof requestReprovision>,
  ) => Promise<ResponseOf<typeof requestReprovision>>;
  /** This server's URL as enrollment groups name it. */
  url: () => string;
}

/** Registration server work (role 14): keep pushed records; give a device its nonce once it proves itself (step 2). */
export class RegistrationProcessor {
  constructor(private readonly options: RegistrationProcessorOptions) {}

  /** Step 0b: records stored, each owned by the server that first pushed it (the rest are `refused`). */
  async push(
    body: BodyOf<typeof pushRegistrations>,
    writer: Writer,
  ): Promise<ResponseOf<typeof pushRegistrations>> {
    const { stored, refused } = await this.options.store.upsert(
      body.registrations.map((r) => ({ ...r, expiresAt: new Date(r.expiresAt) })),
      writer,
    );
    this.logRefused(refused, 'push');
    return refused.length ? { stored, refused } : { stored };
  }

  async pushGroups(body: BodyOf<typeof pushGroups>, writer: Writer): Promise<ResponseOf<typeof pushGroups>> {
    const { stored, refused } = await this.options.store.upsertGroups(body.groups, writer);
    this.logRefused(refused, 'group push');
    return refused.length ? { stored, refused } : { stored };
  }

  async withdraw(
    body: BodyOf<typeof withdrawRegistrations>,
    writer: Writer,
  ): Promise<ResponseOf<typeof withdrawRegistrations>> {
    const { withdrawn, refused } = await this.options.store.withdraw(body.dsimIds, writer, body);
    this.logRefused(refused, 'withdrawal');
    return refused.length ? { withdrawn, refused } : { withdrawn };
  }

  /** A write that touched another server's records is worth an operator's look: it is logged (ids only). */
  private logRefused(refused: string[], what: string): void {
    if (refused.length === 0) return;
    this.options.log.warn(
      { refused: refused.slice(0, 20), count: refused.length },
      `${what} left records of another credentialing server alone`,
    );
  }

  challenge(body: BodyOf<typeof lookupChallenge>): ResponseOf<typeof lookupChallenge> {
    const { challenge, expiresAt } = this.options.challenges.issue(body.dsimId, this.options.clock());
    return { challenge, expiresAt: expiresAt.toISOString() };
  }

  /**
   * Step 2: the PHLR's access grant for this DSIM_ID, challenge, proof of possession, chain to a
   * manufacturer root, DSIM_ID binding; then the nonce.
   */
  async lookup(body: BodyOf<typeof lookup>, now = this.options.clock()): Promise<ResponseOf<typeof lookup>> {
    const { issuer } = await this.authenticateDevice(body, lookupProofMessage, now);
    let registration = await this.options.store.find(body.dsimId);
    if (registration?.used) {
      if (!body.reprovision) {
        throw new SimcredError('SIMCRED_REGISTRATION_USED', 'the registration was already used');
      }
      registration = await this.reprovisioned(body, registration);
    }
    if (!registration || registration.expiresAt <= now) {
      // Not listed (or its listing expired): a device of an enrolled CA is admitted by its group.
      registration = (await this.admitted(body, issuer, now)) ?? registration;
    }
    if (!registration)
      throw new SimcredError('SIMCRED_REGISTRATION_UNKNOWN', 'no registration for this device');
    if (registration.expiresAt <= now) {
      throw new SimcredError('SIMCRED_REGISTRATION_EXPIRED', 'the registration has expired');
    }
    this.options.log.debug({ dsimId: body.dsimId }, 'registration looked up');
    return {
      registrationNonce: registration.registrationNonce,
      credentialingUrl: registration.credentialingUrl,
      expiresAt: registration.expiresAt.toISOString(),
    };
  }

  /**
   * Operator change: the device proves itself as at step 2 (under the transfer label) and gets the
   * transfer statement its operator pushed for it.
   */
  async fetchTransferStatement(
    body: BodyOf<typeof fetchTransferStatement>,
    now = this.options.clock(),
  ): Promise<ResponseOf<typeof fetchTransferStatement>> {
    await this.authenticateDevice(body, transferFetchProofMessage, now);
    const found = await this.options.store.findTransferStatement(body.dsimId);
    if (!found) throw new SimcredError('SIMCRED_TRANSFER_UNKNOWN', 'no transfer statement for this device');
    return found;
  }

  async pushTransferStatements(
    body: BodyOf<typeof pushTransferStatements>,
    writer: Writer,
  ): Promise<ResponseOf<typeof pushTransferStatements>> {
    return {
      stored: await this.options.store.upsertTransferStatements(
        body.statements,
        writer,
        this.options.clock(),
      ),
    };
  }

  /**
   * Who the device is, as step 2 proves it — each check failing closed with its own code: the PHLR's
   * access grant for this DSIM_ID, the challenge (fresh, for this DSIM_ID), the signature over
   * `proofMessage` with the key of the presented certificate, the chain to a manufacturer root, and
   * the DSIM_ID bound in the certificate.
   */
  private async authenticateDevice(
    body: {
      dsimId: string;
      grant: string;
      challenge: string;
      certificateChain: string[];
      alg: string;
      signature: string;
    },
    proofMessage: (input: { challenge: Uint8Array; dsimId: string }) => Buffer,
    now: Date,
  ): Promise<{ leaf: x509.X509Certificate; issuer: x509.X509Certificate }> {
    await verifyGrant(body.grant, {
      keys: this.options.phlrKeys,
      dsimId: body.dsimId,
      clockSkewSeconds: this.options.grantClockSkewSeconds,
      now,
    });
    const challenge = this.options.challenges.check(body.dsimId, body.challenge, now);
    const chain = parseDeviceChain(body.certificateChain);
    if (!verifyDeviceMessage(chain[0]!, proofMessage({ challenge, dsimId: body.dsimId }), body)) {
      throw new SimcredError('SIMCRED_PROOF_INVALID', 'the signature over the challenge does not verify');
    }
    const { leaf, issuer } = await verifyDeviceChain(chain, { roots: this.options.manufacturerRoots, now });
    requireDsimBinding(leaf, body.dsimId);
    return { leaf, issuer };
  }

  /**
   * A factory-reset device whose registration was used: its credentialing server decides (the order's
   * policy) and, if it agrees, answers a fresh registration, kept here as a pushed one is.
   */
  private async reprovisioned(
    body: BodyOf<typeof lookup>,
    used: StoredRegistration,
  ): Promise<StoredRegistration> {
    let record: ResponseOf<typeof requestReprovision>;
    try {
      record = await this.options.reprovision(used.credentialingUrl, {
        dsimId: body.dsimId,
        certificateChain: body.certificateChain,
        registrationServer: this.options.url(),
      });
    } catch (err) {
      throw passedOn(err, 'the credentialing server could not re-provision the device');
    }
    const stored = { ...record, expiresAt: new Date(record.expiresAt) };
    // Owned as the record it replaces: by the credentialing server that pushed it.
    await this.options.store.upsert([stored], { owner: used.pushedBy ?? '' });
    this.options.log.debug(
      { dsimId: body.dsimId, generation: record.generation },
      're-provisioned on request',
    );
    return stored;
  }

  /**
   * The registration an enrollment group gives a device that proved itself: undefined when no open
   * group has its issuing CA; SIMCRED_GROUP_PATTERN_MISMATCH when groups of its CA exist but none
   * takes its DSIM_ID; SIMCRED_GROUP_CAP_REACHED when every open one that takes it is full.
   * The record is kept as a pushed one is, owned by the credentialing server that pushed the group.
   */
  private async admitted(
    body: BodyOf<typeof lookup>,
    issuer: x509.X509Certificate,
    now: Date,
  ): Promise<StoredRegistration | undefined> {
    const caSha256 = createHash('sha256').update(Buffer.from(issuer.rawData)).digest('hex');
    const groups = await this.options.store.groupsOfCa(caSha256);
    if (groups.length === 0) return undefined;
    const matching = groups.filter((g) => matchesDsimPattern(g.dsimPattern, body.dsimId));
    if (matching.length === 0) {
      throw new SimcredError(
        'SIMCRED_GROUP_PATTERN_MISMATCH',
        `${body.dsimId} is outside the DSIM_ID pattern of every enrollment group of its CA`,
      );
    }
    let full: unknown;
    for (const group of matching) {
      try {
        const record = await this.options.admit(group.credentialingUrl, group.groupId, {
          dsimId: body.dsimId,
          certificateChain: body.certificateChain,
          registrationServer: this.options.url(),
        });
        const stored = { ...record, expiresAt: new Date(record.expiresAt) };
        await this.options.store.upsert([stored], { owner: group.pushedBy });
        this.options.log.debug({ dsimId: body.dsimId, groupId: group.groupId }, 'admitted by its group');
        return stored.expiresAt > now ? stored : undefined;
      } catch (err) {
        // A full group (or one closed meanwhile) leaves the next one to try.
        if (isSimcredError(err) && err.code === 'SIMCRED_GROUP_CAP_REACHED') {
          full = err;
          continue;
        }
        // Closed at the credentialing server, its close not yet here: as if it were not.
        if (isSimcredError(err) && err.code === 'SIMCRED_GROUP_UNKNOWN') continue;
        throw passedOn(err, 'the enrollment group could not admit the device');
      }
    }
    if (full) throw full;
    return undefined;
  }
}
/** The credentialing server's answers about the device itself, passed on to it as they are. */
const DEVICE_REFUSALS = new Set([
  'SIMCRED_GROUP_PATTERN_MISMATCH',
  'SIMCRED_REGISTRATION_REVOKED',
  'SIMCRED_REGISTRATION_USED',
  'SIMCRED_SUBSCRIPTION_ENDED',
  'SIMCRED_REPROVISION_NOT_ALLOWED',
  'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
  'SIMCRED_SUBSCRIPTION_SUSPENDED',
  'SIMCRED_DEVICE_KEY_MISMATCH',
  'SIMCRED_DEVICE_TRANSFERRED',
]);

/**
 * A credentialing server's refusal about the device goes to the device as it is; anything else is
 * that server failing us (down, or refusing this server): a retryable 503.
 */
function passedOn(err: unknown, message: string): SimcredError {
  if (
    isSimcredError(err) &&
    (DEVICE_REFUSALS.has(err.code) || err.code === 'SIMCRED_DEPENDENCY_UNAVAILABLE')
  ) {
    return err;
  }
  return new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', message, { retryAfter: 2, cause: err });
}
