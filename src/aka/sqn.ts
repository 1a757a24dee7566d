/**
 * Sequence numbers for AKA, as 3GPP TS 33.102 Annex C describes them (the non-time-based profile, C.1.2):
 * SQN (48 bits) = SEQ ‖ IND, IND being the low `indBits` bits (5 by default, C.1.1).
 *
 * - Network (HE/AuC) side, {@link SqnGenerator}: one counter SEQ_HE per subscriber; every new vector takes
 *   SEQ_HE + 1 and an IND slot (C.1.2). After a resynchronisation it continues from SQN_MS (§6.3.5).
 * - USIM side, {@link UsimSqnState}: an array SEQ_MS(0..2^indBits − 1) of the highest SEQ accepted per IND
 *   slot, all zero at first (C.2.1); an SQN is fresh when SEQ > SEQ_MS(IND) (C.2.2), not more than Δ ahead of
 *   the highest SEQ accepted so far (C.2.2, wrap-around protection) and, when an age limit L is set, not
 *   L or more behind it (C.2.2, optional limit on the age).
 * - Resynchronisation (§6.3.3, §6.3.5): the USIM sends AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, MAC-S = f1*(K, SQN_MS,
 *   RAND, AMF = 0x0000); the network checks MAC-S and reads SQN_MS back.
 */
import { timingSafeEqual } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import { SQN_BYTES, type Milenage } from './milenage.js';

/** SQN is 48 bits (TS 33.102 §6.3.2). */
export const SQN_BITS = 48;
/** Length in bytes of AUTS: 6 (SQN_MS ⊕ AK*) + 8 (MAC-S) (TS 33.102 §6.3.3). */
export const AUTS_BYTES = 14;
/** IND length suggested in TS 33.102 Annex C and used by osmo-auc-gen. */
export const DEFAULT_IND_BITS = 5;
/** Δ, the largest step ahead the USIM accepts; TS 33.102 Annex C suggests 2^28. */
export const DEFAULT_DELTA = 2 ** 28;
/**
 * L, how far behind the highest accepted SEQ an SQN may still be (C.2.2, optional). 2^20 leaves room for
 * any realistic number of vectors issued while one batch waits at a serving node, and still shuts out
 * arbitrarily old captured AUTNs.
 */
export const DEFAULT_AGE_LIMIT = 2 ** 20;
/** AMF used for MAC-S in AUTS (TS 33.102 §6.3.3: "the AMF assumes a dummy value of all zeros"). */
export const RESYNC_AMF: Buffer = Buffer.alloc(2);

const SQN_LIMIT = 2 ** SQN_BITS;

/** The configurable parameters of the SQN scheme (TS 33.102 Annex C). */
export interface SqnParams {
  /** Bits of IND at the low end of SQN; 0..10 (Annex C.1.1). */
  indBits: number;
  /** Δ (Annex C.2.2): SEQ − SEQ_MS_max must not exceed it. */
  delta: number;
  /** L (Annex C.2.2, optional): SEQ_MS_max − SEQ must stay below it; `null` disables the check. */
  ageLimit: number | null;
}

/** Defaults: IND 5 bits, Δ = 2^28, L = 2^20. */
export const DEFAULT_SQN_PARAMS: Readonly<SqnParams> = Object.freeze({
  indBits: DEFAULT_IND_BITS,
  delta: DEFAULT_DELTA,
  ageLimit: DEFAULT_AGE_LIMIT,
});

function checkIndBits(indBits: number): void {
  if (!Number.isInteger(indBits) || indBits < 0 || indBits > 10) {
    throw new RangeError(`IND length must be an integer from 0 to 10 bits, got ${indBits}`);
  }
}

function checkSqn(sqn: number): void {
  if (!Number.isSafeInteger(sqn) || sqn < 0 || sqn >= SQN_LIMIT) {
    throw new RangeError(`SQN must be an integer from 0 to 2^48 − 1, got ${sqn}`);
  }
}

/**
 * Splits SQN into SEQ and IND (TS 33.102 Annex C.1.1).
 *
 * @example
 *   splitSqn(0x41, 5); // { seq: 2, ind: 1 }
 */
export function splitSqn(sqn: number, indBits = DEFAULT_IND_BITS): { seq: number; ind: number } {
  checkSqn(sqn);
  checkIndBits(indBits);
  const slots = 2 ** indBits;
  return { seq: Math.floor(sqn / slots), ind: sqn % slots };
}

/**
 * Joins SEQ and IND into SQN = SEQ ‖ IND (TS 33.102 Annex C.1.1).
 *
 * @example
 *   joinSqn(2, 1, 5); // 0x41
 */
export function joinSqn(seq: number, ind: number, indBits = DEFAULT_IND_BITS): number {
  checkIndBits(indBits);
  const slots = 2 ** indBits;
  if (!Number.isInteger(ind) || ind < 0 || ind >= slots) {
    throw new RangeError(`IND must be an integer from 0 to ${slots - 1}, got ${ind}`);
  }
  const sqn = seq * slots + ind;
  checkSqn(sqn);
  return sqn;
}

/**
 * SQN as the 6 big-endian bytes that go into f1 and AUTN.
 *
 * @example
 *   sqnToBuffer(0xff9bb4d0b607).toString('hex'); // 'ff9bb4d0b607'
 */
export function sqnToBuffer(sqn: number): Buffer {
  checkSqn(sqn);
  const buf = Buffer.allocUnsafe(SQN_BYTES);
  buf.writeUIntBE(sqn, 0, SQN_BYTES);
  return buf;
}

/**
 * SQN from its 6 big-endian bytes.
 *
 * @example
 *   sqnFromBuffer(Buffer.from('000000000020', 'hex')); // 32
 */
export function sqnFromBuffer(buf: Buffer): number {
  if (buf.length !== SQN_BYTES) throw new RangeError(`SQN must be ${SQN_BYTES} bytes, got ${buf.length}`);
  return buf.readUIntBE(0, SQN_BYTES);
}

function xor6(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(SQN_BYTES);
  for (let i = 0; i < SQN_BYTES; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/**
 * USIM side of resynchronisation: AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, with AK* = f5*(RAND) and
 * MAC-S = f1*(SQN_MS, RAND, AMF = 0x0000) (TS 33.102 §6.3.3).
 *
 * @example
 *   const auts = computeAuts(milenage, rand, usimState.sqnMs); // 14 bytes
 */
export function computeAuts(milenage: Milenage, rand: Buffer, sqnMs: number): Buffer {
  const sqn = sqnToBuffer(sqnMs);
  const out = milenage.compute(rand, sqn, RESYNC_AMF);
  return Buffer.concat([xor6(sqn, out.akStar), out.macS]);
}

/**
 * Network side of resynchronisation: recovers SQN_MS = (AUTS[0..5] ⊕ AK*) and checks MAC-S over it
 * (TS 33.102 §6.3.5). Throws SIMCRED_AKA_AUTS_INVALID when AUTS is not 14 bytes or MAC-S does not verify.
 *
 * @example
 *   const sqnMs = openAuts(milenage, rand, auts);
 */
export function openAuts(milenage: Milenage, rand: Buffer, auts: Buffer): number {
  if (auts.length !== AUTS_BYTES) {
    throw new SimcredError(
      'SIMCRED_AKA_AUTS_INVALID',
      `AUTS must be ${AUTS_BYTES} bytes, got ${auts.length}`,
    );
  }
  const akStar = milenage.f5star(rand);
  const sqn = xor6(auts.subarray(0, SQN_BYTES), akStar);
  const macS = milenage.f1star(rand, sqn, RESYNC_AMF);
  if (!timingSafeEqual(macS, auts.subarray(SQN_BYTES))) {
    throw new SimcredError('SIMCRED_AKA_AUTS_INVALID', 'AUTS does not verify (MAC-S mismatch)');
  }
  return sqnFromBuffer(sqn);
}

/**
 * Network (HE/AuC) SQN counter for one subscriber (TS 33.102 Annex C.1.2): `next(ind)` returns
 * (SEQ_HE + 1) ‖ IND and keeps it; `resync(sqnMs)` applies §6.3.5 after a synchronisation failure.
 *
 * @example
 *   const gen = new SqnGenerator();
 *   gen.next(3); // 35 = SEQ 1, IND 3
 *   gen.next(); //  64 = SEQ 2, IND 0
 */
export class SqnGenerator {
  readonly indBits: number;
  readonly delta: number;
  #seqHe: number;

  constructor(options: { seqHe?: number; indBits?: number; delta?: number } = {}) {
    this.indBits = options.indBits ?? DEFAULT_IND_BITS;
    this.delta = options.delta ?? DEFAULT_DELTA;
    checkIndBits(this.indBits);
    const seqHe = options.seqHe ?? 0;
    joinSqn(seqHe, 0, this.indBits); // range check
    this.#seqHe = seqHe;
  }

  /** SEQ_HE: the SEQ of the last SQN handed out. */
  get seqHe(): number {
    return this.#seqHe;
  }

  /**
   * The next SQN: SEQ_HE + 1 in slot `ind` (Annex C.1.2). Throws RangeError when SEQ would overflow.
   *
   * @example
   *   new SqnGenerator({ seqHe: 9 }).next(1); // 10 · 32 + 1 = 321
   */
  next(ind = 0): number {
    const sqn = joinSqn(this.#seqHe + 1, ind, this.indBits);
    this.#seqHe += 1;
    return sqn;
  }

  /**
   * After a synchronisation failure the HE keeps SEQ_HE if its next SEQ would be accepted, i.e. lies in
   * (SEQ_MS, SEQ_MS + Δ]; otherwise it resets SEQ_HE to SEQ_MS (TS 33.102 §6.3.5).
   *
   * @example
   *   gen.resync(openAuts(milenage, rand, auts));
   */
  resync(sqnMs: number): void {
    const { seq: seqMs } = splitSqn(sqnMs, this.indBits);
    const nextSeq = this.#seqHe + 1;
    if (!(nextSeq > seqMs && nextSeq - seqMs <= this.delta)) this.#seqHe = seqMs;
  }

  /** State for storage: no secrets here. */
  toJSON(): { seqHe: number; indBits: number; delta: number } {
    return { seqHe: this.#seqHe, indBits: this.indBits, delta: this.delta };
  }
}

/** Why the USIM refused an SQN (TS 33.102 Annex C.2.2). */
export type SqnVerdict = 'fresh' | 'not-greater-than-slot' | 'too-far-ahead' | 'too-old';

/** Serialised {@link UsimSqnState}. */
export interface UsimSqnStateJson {
  indBits: number;
  delta: number;
  ageLimit: number | null;
  /** SEQ_MS(i), one per IND slot. */
  seqMs: number[];
}

/**
 * USIM SQN state (TS 33.102 Annex C.2): the array SEQ_MS(i) and the freshness check.
 *
 * @example
 *   const state = new UsimSqnState();
 *   state.check(33); // 'fresh' (SEQ 1, IND 1)
 *   state.accept(33);
 *   state.check(33); // 'not-greater-than-slot' — a replay
 */
export class UsimSqnState {
  readonly params: Readonly<SqnParams>;
  readonly #seqMs: number[];

  constructor(params: Partial<SqnParams> = {}, seqMs?: readonly number[]) {
    const p = { ...DEFAULT_SQN_PARAMS, ...params };
    checkIndBits(p.indBits);
    if (!Number.isSafeInteger(p.delta) || p.delta < 1) throw new RangeError(`Δ must be a positive integer`);
    if (p.ageLimit !== null && (!Number.isSafeInteger(p.ageLimit) || p.ageLimit < 1)) {
      throw new RangeError(`L must be a positive integer or null`);
    }
    this.params = Object.freeze(p);
    const slots = 2 ** p.indBits;
    const maxSeq = SQN_LIMIT / slots - 1;
    if (seqMs === undefined) {
      this.#seqMs = new Array<number>(slots).fill(0);
    } else {
      if (seqMs.length !== slots || !seqMs.every((s) => Number.isSafeInteger(s) && s >= 0 && s <= maxSeq)) {
        throw new RangeError(`SEQ_MS must hold ${slots} integers from 0 to ${maxSeq}`);
      }
      this.#seqMs = [...seqMs];
    }
  }

  /** The highest SEQ accepted in any slot, and that slot (Annex C.2.1). */
  #highest(): { seq: number; ind: number } {
    let ind = 0;
    for (let i = 1; i < this.#seqMs.length; i++) if (this.#seqMs[i]! > this.#seqMs[ind]!) ind = i;
    return { seq: this.#seqMs[ind]!, ind };
  }

  /**
   * SQN_MS = SEQ_MS ‖ IND_MS, the highest SEQ accepted so far with its slot: what the USIM reports in
   * AUTS (TS 33.102 §6.3.3, Annex C.2.1).
   *
   * @example
   *   new UsimSqnState().sqnMs; // 0
   */
  get sqnMs(): number {
    const { seq, ind } = this.#highest();
    return joinSqn(seq, ind, this.params.indBits);
  }

  /**
   * Freshness of a received SQN (TS 33.102 Annex C.2.2), without changing the state.
   *
   * @example
   *   state.check(sqnFromAutn) === 'fresh';
   */
  check(sqn: number): SqnVerdict {
    const { seq, ind } = splitSqn(sqn, this.params.indBits);
    const highest = this.#highest().seq;
    if (seq - highest > this.params.delta) return 'too-far-ahead';
    if (this.params.ageLimit !== null && highest - seq >= this.params.ageLimit) return 'too-old';
    if (seq <= this.#seqMs[ind]!) return 'not-greater-than-slot';
    return 'fresh';
  }

  /**
   * Records an accepted SQN: SEQ_MS(IND) := SEQ (Annex C.2.1). Call only after `check` said 'fresh'.
   *
   * @example
   *   if (state.check(sqn) === 'fresh') state.accept(sqn);
   */
  accept(sqn: number): void {
    const { seq, ind } = splitSqn(sqn, this.params.indBits);
    if (seq > this.#seqMs[ind]!) this.#seqMs[ind] = seq;
  }

  /** For storage and logs: contains no secrets. */
  toJSON(): UsimSqnStateJson {
    return { ...this.params, seqMs: [...this.#seqMs] };
  }

  /**
   * Rebuilds a state from {@link UsimSqnState.toJSON} output.
   *
   * @example
   *   const again = UsimSqnState.fromJSON(JSON.parse(JSON.stringify(state)));
   */
  static fromJSON(json: UsimSqnStateJson): UsimSqnState {
    return new UsimSqnState(
      { indBits: json.indBits, delta: json.delta, ageLimit: json.ageLimit },
      json.seqMs,
    );
  }
}
