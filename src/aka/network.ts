/**
 * The network's half of an AKA exchange over HTTP, shared by the preliminary HLR (step 1) and the
 * HSS attach (step 12): challenge → RES, or challenge → AUTS → resync → challenge → RES. The caller
 * keeps the per-subscriber state (SEQ_HE, the pending challenge) in its own store.
 */
import { timingSafeEqual } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import { joinSqn, SqnGenerator } from './sqn.js';
import { generateVector, verifyAuts, verifyRes } from './vectors.js';
import type { AkaStateStore } from './state-store.js';

/** The one challenge a subscriber may answer: RAND, XRES, expiry. */
export interface PendingChallenge {
  rand: Buffer;
  xres: Buffer;
  expiresAt: Date;
}

/** Where a role keeps SEQ_HE and the pending challenge (the shared aka_state table: ./state-store.ts). */
export type AkaSequenceState = Pick<
  AkaStateStore,
  'nextChallenge' | 'currentSeq' | 'resyncSeq' | 'takePending'
>;

export interface AkaAuthenticatorOptions {
  /** K and OPc in the clear (opened from their sealed form), or undefined for an unknown subscriber. */
  keys(id: string): Promise<{ k: Buffer; opc: Buffer } | undefined>;
  state: AkaSequenceState;
  /** AMF of the vectors (TS 33.102 §6.3.2), unless a call gives the subscriber's own. */
  amf: Buffer;
  challengeTtlSeconds: number;
  /** IND slot of this serving node (TS 33.102 Annex C.1.1); 0 by default. */
  ind?: number;
}

/**
 * @example
 *   const aka = new AkaAuthenticator({ state, amf: Buffer.from('8000', 'hex'), challengeTtlSeconds: 60 });
 *   const { rand, autn } = await aka.challenge(pimsi);
 *   await aka.verify(pimsi, res); // throws SIMCRED_AKA_RES_MISMATCH
 */
export class AkaAuthenticator {
  constructor(private readonly options: AkaAuthenticatorOptions) {}

  /**
   * A fresh vector with the next SQN; the previous pending challenge, if any, is replaced. `amf`
   * overrides the default for subscribers that carry their own.
   */
  async challenge(
    id: string,
    now = new Date(),
    amf = this.options.amf,
  ): Promise<{ rand: Buffer; autn: Buffer }> {
    const { state, challengeTtlSeconds } = this.options;
    const keys = await this.keys(id);
    return state.nextChallenge(id, (seq) => {
      const vector = generateVector({ ...keys, sqn: joinSqn(seq, this.options.ind ?? 0), amf });
      return {
        pending: {
          rand: vector.rand,
          xres: vector.xres,
          expiresAt: new Date(now.getTime() + challengeTtlSeconds * 1000),
        },
        result: { rand: vector.rand, autn: vector.autn },
      };
    });
  }

  /**
   * RES against the pending XRES; the challenge is used up either way. Throws SIMCRED_AKA_NO_CHALLENGE
   * or SIMCRED_AKA_RES_MISMATCH.
   */
  async verify(id: string, res: Buffer, now = new Date()): Promise<void> {
    await this.keys(id);
    const pending = await this.options.state.takePending(id, now);
    if (!pending) throw noChallenge();
    verifyRes(pending.xres, res);
  }

  /**
   * After a sync failure (TS 33.102 §6.3.5): AUTS over the pending challenge's RAND gives SQN_MS,
   * SEQ_HE moves on from it when needed, and a fresh challenge comes back.
   */
  async resync(id: string, rand: Buffer, auts: Buffer, now = new Date(), amf = this.options.amf) {
    const { state } = this.options;
    const keys = await this.keys(id);
    const pending = await state.takePending(id, now);
    if (!pending || pending.rand.length !== rand.length || !timingSafeEqual(pending.rand, rand)) {
      throw noChallenge();
    }
    const sqnMs = verifyAuts({ ...keys, rand, auts });
    const current = await state.currentSeq(id);
    if (current === undefined) throw unknown();
    const generator = new SqnGenerator({ seqHe: current });
    generator.resync(sqnMs);
    if (generator.seqHe !== current) await state.resyncSeq(id, current, generator.seqHe);
    return this.challenge(id, now, amf);
  }

  private async keys(id: string): Promise<{ k: Buffer; opc: Buffer }> {
    const keys = await this.options.keys(id);
    if (!keys) throw unknown();
    return keys;
  }
}

function unknown(): SimcredError {
  return new SimcredError('SIMCRED_AKA_SUBSCRIBER_UNKNOWN', 'no subscriber with this identity');
}

function noChallenge(): SimcredError {
  return new SimcredError(
    'SIMCRED_AKA_NO_CHALLENGE',
    'no challenge is pending for this subscriber; ask for a new one',
  );
}
