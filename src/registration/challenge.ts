import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SimcredError } from '../errors/index.js';

const TAG_BYTES = 16;
const RANDOM_BYTES = 16;

/**
 * Stateless lookup challenges: expiry ‖ random ‖ HMAC(secret, DSIM_ID ‖ expiry ‖ random), so any
 * instance holding the secret can check one without a shared table, and a challenge issued to one
 * device is useless for another.
 *
 * @example
 *   const challenges = new LookupChallenges(secret, 60);
 *   const { challenge } = challenges.issue(dsimId); challenges.check(dsimId, challenge);
 */
export class LookupChallenges {
  constructor(
    private readonly secret: Buffer,
    private readonly ttlSeconds: number,
  ) {}

  issue(dsimId: string, now = new Date()): { challenge: string; expiresAt: Date } {
    const expiresAt = new Date(now.getTime() + this.ttlSeconds * 1000);
    const expiry = Buffer.alloc(8);
    expiry.writeBigUInt64BE(BigInt(Math.floor(expiresAt.getTime() / 1000)));
    const random = randomBytes(RANDOM_BYTES);
    const challenge = Buffer.concat([expiry, random, this.tag(dsimId, expiry, random)]);
    return { challenge: challenge.toString('base64url'), expiresAt };
  }

  /** Returns the challenge bytes (what the device signed over) or throws SIMCRED_CHALLENGE_INVALID. */
  check(dsimId: string, challenge: string, now = new Date()): Buffer {
    const bytes = Buffer.from(challenge, 'base64url');
    if (bytes.length !== 8 + RANDOM_BYTES + TAG_BYTES) throw invalid();
    const expiry = bytes.subarray(0, 8);
    const random = bytes.subarray(8, 8 + RANDOM_BYTES);
    if (!timingSafeEqual(bytes.subarray(8 + RANDOM_BYTES), this.tag(dsimId, expiry, random))) throw invalid();
    if (Number(expiry.readBigUInt64BE()) * 1000 <= now.getTime()) throw invalid();
    return bytes;
  }

  private tag(dsimId: string, expiry: Buffer, random: Buffer): Buffer {
    return createHmac('sha256', this.secret)
      .update('simcred/v1/lookup-challenge')
      .update(Buffer.from(dsimId))
      .update(expiry)
      .update(random)
      .digest()
      .subarray(0, TAG_BYTES);
  }
}

function invalid(): SimcredError {
  return new SimcredError(
    'SIMCRED_CHALLENGE_INVALID',
    'the challenge is unknown, expired or for another device',
  );
}
