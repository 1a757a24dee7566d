/**
 * Device (USIM) side of AKA (TS 33.102 §6.3.3): check AUTN, check SQN freshness (Annex C.2), answer
 * with RES/CK/IK, or with AUTS when the SQN is not fresh.
 */
import { timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';
import { SimcredError } from '../errors/index.js';
import { BLOCK_BYTES, Milenage } from './milenage.js';
import { computeAuts, sqnFromBuffer, UsimSqnState, type SqnParams, type SqnVerdict } from './sqn.js';

/** Length in bytes of AUTN: (SQN ⊕ AK) 6 ‖ AMF 2 ‖ MAC-A 8 (TS 33.102 §6.3.2). */
export const AUTN_BYTES = 16;

/** The USIM's answer to a challenge (TS 33.102 §6.3.3). */
export type UsimResponse =
  | { kind: 'success'; res: Buffer; ck: Buffer; ik: Buffer; sqn: number; amf: Buffer }
  | {
      kind: 'sync-failure';
      code: 'SIMCRED_AKA_SYNC_FAILURE';
      /** Why the SQN was refused. */
      reason: Exclude<SqnVerdict, 'fresh'>;
      /** AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, to send back to the network. */
      auts: Buffer;
    };

/** What {@link Usim.serializeForStorage} writes: the only form that carries K and OPc. */
export interface UsimStoredState {
  version: 1;
  /** K, hex. */
  k: string;
  /** OPc, hex. */
  opc: string;
  sqn: ReturnType<UsimSqnState['toJSON']>;
}

const HEX32 = /^[0-9a-f]{32}$/i;

/**
 * A USIM holding K, OPc and its SQN state. `toString`, `toJSON` and `util.inspect` show only the SQN state;
 * {@link Usim.serializeForStorage} is the one way to get the keys out, for the module's protected storage.
 *
 * @example
 *   const usim = new Usim({ k, opc });
 *   const answer = usim.authenticate(vector.rand, vector.autn);
 *   if (answer.kind === 'success') send(answer.res); else sendSyncFailure(answer.auts);
 */
export class Usim {
  readonly #k: Buffer;
  readonly #opc: Buffer;
  readonly #milenage: Milenage;
  readonly #sqn: UsimSqnState;

  constructor(keys: { k: Buffer; opc: Buffer }, sqn: UsimSqnState | Partial<SqnParams> = {}) {
    this.#milenage = new Milenage(keys.k, keys.opc);
    this.#k = Buffer.from(keys.k);
    this.#opc = Buffer.from(keys.opc);
    this.#sqn = sqn instanceof UsimSqnState ? sqn : new UsimSqnState(sqn);
  }

  /** SQN_MS, the highest SQN accepted so far (Annex C.2.1). */
  get sqnMs(): number {
    return this.#sqn.sqnMs;
  }

  /**
   * Runs the USIM's part of AKA (TS 33.102 §6.3.3): AK = f5(RAND), SQN = (SQN ⊕ AK) ⊕ AK,
   * XMAC = f1(SQN, RAND, AMF) must equal MAC-A (else throws SIMCRED_AKA_MAC_FAILURE, state untouched);
   * then SQN must be fresh (Annex C.2.2; else a sync failure carrying AUTS, state untouched); then the
   * SQN is recorded and RES = f2, CK = f3, IK = f4 are returned.
   *
   * @example
   *   const r = usim.authenticate(rand, autn);
   *   if (r.kind === 'sync-failure') network.resync(r.auts);
   */
  authenticate(rand: Buffer, autn: Buffer): UsimResponse {
    if (rand.length !== BLOCK_BYTES) throw new RangeError(`RAND must be ${BLOCK_BYTES} bytes`);
    if (autn.length !== AUTN_BYTES) throw new RangeError(`AUTN must be ${AUTN_BYTES} bytes`);
    const { res, ck, ik, ak } = this.#milenage.f2345(rand);
    const sqnBuf = Buffer.allocUnsafe(6);
    for (let i = 0; i < 6; i++) sqnBuf[i] = autn[i]! ^ ak[i]!;
    const amf = Buffer.from(autn.subarray(6, 8));
    const xmac = this.#milenage.f1(rand, sqnBuf, amf);
    if (!timingSafeEqual(xmac, autn.subarray(8, 16))) {
      throw new SimcredError('SIMCRED_AKA_MAC_FAILURE', 'AUTN does not verify (MAC-A mismatch)');
    }
    const sqn = sqnFromBuffer(sqnBuf);
    const verdict = this.#sqn.check(sqn);
    if (verdict !== 'fresh') {
      return {
        kind: 'sync-failure',
        code: 'SIMCRED_AKA_SYNC_FAILURE',
        reason: verdict,
        auts: computeAuts(this.#milenage, rand, this.#sqn.sqnMs),
      };
    }
    this.#sqn.accept(sqn);
    return { kind: 'success', res, ck, ik, sqn, amf };
  }

  /**
   * The full state, keys included, for the module's protected storage only — never for logs.
   *
   * @example
   *   writeSecureStore(JSON.stringify(usim.serializeForStorage()));
   */
  serializeForStorage(): UsimStoredState {
    return {
      version: 1,
      k: this.#k.toString('hex'),
      opc: this.#opc.toString('hex'),
      sqn: this.#sqn.toJSON(),
    };
  }

  /**
   * Restores a USIM from {@link Usim.serializeForStorage} output; throws SIMCRED_AKA_STATE_INVALID when it is
   * malformed.
   *
   * @example
   *   const usim = Usim.fromStorage(JSON.parse(readSecureStore()));
   */
  static fromStorage(stored: unknown): Usim {
    const s = stored as Partial<UsimStoredState> | null;
    if (
      typeof s !== 'object' ||
      s === null ||
      s.version !== 1 ||
      typeof s.k !== 'string' ||
      !HEX32.test(s.k) ||
      typeof s.opc !== 'string' ||
      !HEX32.test(s.opc) ||
      typeof s.sqn !== 'object' ||
      s.sqn === null
    ) {
      throw new SimcredError('SIMCRED_AKA_STATE_INVALID', 'stored USIM state is malformed');
    }
    let sqn: UsimSqnState;
    try {
      sqn = UsimSqnState.fromJSON(s.sqn);
    } catch (err) {
      throw new SimcredError('SIMCRED_AKA_STATE_INVALID', 'stored USIM SQN state is malformed', {
        cause: err,
      });
    }
    return new Usim({ k: Buffer.from(s.k, 'hex'), opc: Buffer.from(s.opc, 'hex') }, sqn);
  }

  /** SQN state only; no keys. */
  toJSON(): { sqn: ReturnType<UsimSqnState['toJSON']> } {
    return { sqn: this.#sqn.toJSON() };
  }

  /** No keys. */
  toString(): string {
    return `Usim { sqnMs: ${this.#sqn.sqnMs}, keys: [redacted] }`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
