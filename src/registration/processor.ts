import type { KeyObject } from 'node:crypto';
import type * as x509 from '../crypto/x509.js';
import type { Logger } from 'pino';
import { lookupProofMessage } from '../crypto/lookup-proof.js';
import { verifyDeviceMessage } from '../crypto/device-signature.js';
import { SimcredError } from '../errors/index.js';
import { requireDsimBinding } from '../pki/device-identity.js';
import { parseDeviceChain, verifyDeviceChain } from '../pki/device-chain.js';
import { verifyGrant } from '../phlr/grant.js';
import type {
  lookup,
  lookupChallenge,
  pushRegistrations,
  withdrawRegistrations,
} from '../protocol/registration.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { LookupChallenges } from './challenge.js';
import type { RegistrationStore } from './store.js';
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
}

/** Registration server work (role 14): keep pushed records; give a device its nonce once it proves itself (step 2). */
export class RegistrationProcessor {
  constructor(private readonly options: RegistrationProcessorOptions) {}

  async push(
    body: BodyOf<typeof pushRegistrations>,
    pushedBy: string,
  ): Promise<ResponseOf<typeof pushRegistrations>> {
    const stored = await this.options.store.upsert(
      body.registrations.map((r) => ({ ...r, expiresAt: new Date(r.expiresAt) })),
      pushedBy,
    );
    return { stored };
  }

  async withdraw(
    body: BodyOf<typeof withdrawRegistrations>,
  ): Promise<ResponseOf<typeof withdrawRegistrations>> {
    return { withdrawn: await this.options.store.withdraw(body.dsimIds) };
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
    await verifyGrant(body.grant, {
      keys: this.options.phlrKeys,
      dsimId: body.dsimId,
      clockSkewSeconds: this.options.grantClockSkewSeconds,
      now,
    });
    const challenge = this.options.challenges.check(body.dsimId, body.challenge, now);
    const chain = parseDeviceChain(body.certificateChain);
    if (!verifyDeviceMessage(chain[0]!, lookupProofMessage({ challenge, dsimId: body.dsimId }), body)) {
      throw new SimcredError('SIMCRED_PROOF_INVALID', 'the signature over the challenge does not verify');
    }
    const { leaf } = await verifyDeviceChain(chain, { roots: this.options.manufacturerRoots, now });
    requireDsimBinding(leaf, body.dsimId);
    const registration = await this.options.store.find(body.dsimId);
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
}
