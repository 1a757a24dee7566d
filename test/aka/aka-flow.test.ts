// AKA between the network side (vectors.ts, SqnGenerator) and the device side (Usim): success, and each
// way it must fail (TS 33.102 §6.3, Annex C).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { Milenage } from '../../src/aka/milenage.js';
import { SqnGenerator, UsimSqnState, computeAuts, joinSqn, openAuts, splitSqn } from '../../src/aka/sqn.js';
import { Usim } from '../../src/aka/usim.js';
import { generateVector, verifyAuts, verifyRes } from '../../src/aka/vectors.js';
import { SimcredError, type ErrorCode } from '../../src/errors/index.js';

const AMF = Buffer.from('8000', 'hex');

function subscriber(): { k: Buffer; opc: Buffer } {
  return { k: randomBytes(16), opc: randomBytes(16) };
}

function isCode(code: ErrorCode) {
  return (err: unknown): boolean => err instanceof SimcredError && err.code === code;
}

test('a fresh vector authenticates: RES = XRES, same CK and IK on both sides', () => {
  const keys = subscriber();
  const network = new SqnGenerator();
  const usim = new Usim(keys);
  for (let i = 0; i < 40; i++) {
    const v = generateVector({ ...keys, sqn: network.next(i % 32), amf: AMF });
    const answer = usim.authenticate(v.rand, v.autn);
    assert.equal(answer.kind, 'success');
    if (answer.kind !== 'success') return;
    verifyRes(v.xres, answer.res);
    assert.deepEqual([answer.ck, answer.ik, answer.sqn, answer.amf], [v.ck, v.ik, v.sqn, AMF]);
  }
});

test('a wrong RES is refused by the network side', () => {
  const keys = subscriber();
  const v = generateVector({ ...keys, sqn: new SqnGenerator().next(), amf: AMF });
  const wrong = Buffer.from(v.xres);
  wrong[7]! ^= 1;
  assert.throws(() => verifyRes(v.xres, wrong), isCode('SIMCRED_AKA_RES_MISMATCH'));
  assert.throws(() => verifyRes(v.xres, v.xres.subarray(0, 4)), isCode('SIMCRED_AKA_RES_MISMATCH'));
  // RES computed with another K is wrong too.
  const other = new Usim(subscriber());
  assert.throws(() => other.authenticate(v.rand, v.autn), isCode('SIMCRED_AKA_MAC_FAILURE'));
});

test('an AUTN made with a different K (or OPc, or tampered) fails MAC and changes nothing', () => {
  const keys = subscriber();
  const usim = new Usim(keys);
  const before = JSON.stringify(usim);
  const network = new SqnGenerator();
  const otherK = generateVector({ k: randomBytes(16), opc: keys.opc, sqn: network.next(), amf: AMF });
  assert.throws(() => usim.authenticate(otherK.rand, otherK.autn), isCode('SIMCRED_AKA_MAC_FAILURE'));
  const otherOpc = generateVector({ k: keys.k, opc: randomBytes(16), sqn: network.next(), amf: AMF });
  assert.throws(() => usim.authenticate(otherOpc.rand, otherOpc.autn), isCode('SIMCRED_AKA_MAC_FAILURE'));
  const good = generateVector({ ...keys, sqn: network.next(), amf: AMF });
  for (const byte of [0, 6, 15]) {
    const tampered = Buffer.from(good.autn);
    tampered[byte]! ^= 0x01; // SQN, AMF or MAC-A
    assert.throws(() => usim.authenticate(good.rand, tampered), isCode('SIMCRED_AKA_MAC_FAILURE'));
  }
  assert.equal(JSON.stringify(usim), before);
  assert.equal(usim.authenticate(good.rand, good.autn).kind, 'success');
});

test('a replayed AUTN is refused; its AUTS lets the network recover SQN_MS; a fresh vector is then accepted', () => {
  const keys = subscriber();
  const usim = new Usim(keys);
  const network = new SqnGenerator();
  let v = generateVector({ ...keys, sqn: network.next(), amf: AMF });
  for (let i = 0; i < 5; i++) {
    v = generateVector({ ...keys, sqn: network.next(), amf: AMF });
    assert.equal(usim.authenticate(v.rand, v.autn).kind, 'success');
  }
  const sqnMs = usim.sqnMs;
  assert.equal(sqnMs, v.sqn);

  // Replay: MAC is right, SQN is not fresh.
  const replay = usim.authenticate(v.rand, v.autn);
  assert.equal(replay.kind, 'sync-failure');
  if (replay.kind !== 'sync-failure') return;
  assert.equal(replay.code, 'SIMCRED_AKA_SYNC_FAILURE');
  assert.equal(replay.reason, 'not-greater-than-slot');
  assert.equal(replay.auts.length, 14);

  // The network recovers SQN_MS from AUTS (and nobody else can forge one).
  assert.equal(verifyAuts({ ...keys, rand: v.rand, auts: replay.auts }), sqnMs);
  assert.throws(
    () => verifyAuts({ k: randomBytes(16), opc: keys.opc, rand: v.rand, auts: replay.auts }),
    isCode('SIMCRED_AKA_AUTS_INVALID'),
  );
  assert.throws(
    () => verifyAuts({ ...keys, rand: randomBytes(16), auts: replay.auts }),
    isCode('SIMCRED_AKA_AUTS_INVALID'),
  );
  assert.throws(
    () => verifyAuts({ ...keys, rand: v.rand, auts: replay.auts.subarray(0, 13) }),
    isCode('SIMCRED_AKA_AUTS_INVALID'),
  );

  // Service goes on: after resync the next vector is fresh and its RES verifies.
  network.resync(sqnMs);
  const fresh = generateVector({ ...keys, sqn: network.next(), amf: AMF });
  const ok = usim.authenticate(fresh.rand, fresh.autn);
  assert.equal(ok.kind, 'success');
  if (ok.kind === 'success') verifyRes(fresh.xres, ok.res);
});

test('resync restores service after the network lost its counter', () => {
  const keys = subscriber();
  const usim = new Usim(keys);
  const before = new SqnGenerator();
  for (let i = 0; i < 50; i++) {
    const v = generateVector({ ...keys, sqn: before.next(i % 4), amf: AMF });
    assert.equal(usim.authenticate(v.rand, v.autn).kind, 'success');
  }
  // The HSS restored an old backup: SEQ_HE is back at 10, behind the USIM.
  const network = new SqnGenerator({ seqHe: 10 });
  const stale = generateVector({ ...keys, sqn: network.next(0), amf: AMF });
  const answer = usim.authenticate(stale.rand, stale.autn);
  assert.equal(answer.kind, 'sync-failure');
  if (answer.kind !== 'sync-failure') return;
  network.resync(verifyAuts({ ...keys, rand: stale.rand, auts: answer.auts }));
  assert.equal(network.seqHe, splitSqn(usim.sqnMs).seq);
  const fresh = generateVector({ ...keys, sqn: network.next(0), amf: AMF });
  const ok = usim.authenticate(fresh.rand, fresh.autn);
  assert.equal(ok.kind, 'success');
  if (ok.kind === 'success') verifyRes(fresh.xres, ok.res);
});

test('resync keeps SEQ_HE when its next SEQ would already be accepted (TS 33.102 §6.3.5)', () => {
  const gen = new SqnGenerator({ seqHe: 100 });
  gen.resync(joinSqn(90, 3));
  assert.equal(gen.seqHe, 100);
  gen.resync(joinSqn(200, 3));
  assert.equal(gen.seqHe, 200);
  const far = new SqnGenerator({ seqHe: 2 ** 29 + 5 });
  far.resync(joinSqn(7, 0)); // next SEQ more than Δ ahead of SEQ_MS: reset
  assert.equal(far.seqHe, 7);
});

test('SQN freshness per IND slot, Δ and L (TS 33.102 Annex C.2)', () => {
  const state = new UsimSqnState({ indBits: 5, delta: 1000, ageLimit: 50 });
  assert.equal(state.check(joinSqn(0, 0)), 'not-greater-than-slot');
  state.accept(joinSqn(10, 1));
  state.accept(joinSqn(12, 2));
  assert.equal(state.sqnMs, joinSqn(12, 2));
  // Slots are independent: a lower SEQ in another slot is still fresh …
  assert.equal(state.check(joinSqn(5, 3)), 'fresh');
  // … but never in the same slot, nor a replay.
  assert.equal(state.check(joinSqn(10, 1)), 'not-greater-than-slot');
  assert.equal(state.check(joinSqn(9, 1)), 'not-greater-than-slot');
  assert.equal(state.check(joinSqn(11, 1)), 'fresh');
  // Δ: at most 1000 ahead of the highest accepted SEQ (12).
  assert.equal(state.check(joinSqn(1012, 0)), 'fresh');
  assert.equal(state.check(joinSqn(1013, 0)), 'too-far-ahead');
  // L: less than 50 behind it.
  state.accept(joinSqn(100, 4));
  assert.equal(state.check(joinSqn(51, 5)), 'fresh');
  assert.equal(state.check(joinSqn(50, 5)), 'too-old');
  assert.equal(new UsimSqnState({ ageLimit: null }, undefined).params.ageLimit, null);
});

test('an AUTN too far ahead gets a sync failure too, and the network continues from SQN_MS', () => {
  const keys = subscriber();
  const usim = new Usim(keys, { delta: 1000 });
  const network = new SqnGenerator({ seqHe: 5000 });
  const v = generateVector({ ...keys, sqn: network.next(), amf: AMF });
  const answer = usim.authenticate(v.rand, v.autn);
  assert.equal(answer.kind, 'sync-failure');
  if (answer.kind !== 'sync-failure') return;
  assert.equal(answer.reason, 'too-far-ahead');
  const resynced = new SqnGenerator({ seqHe: 5001, delta: 1000 });
  resynced.resync(verifyAuts({ ...keys, rand: v.rand, auts: answer.auts }));
  const again = generateVector({ ...keys, sqn: resynced.next(), amf: AMF });
  assert.equal(usim.authenticate(again.rand, again.autn).kind, 'success');
});

test('AUTS round trip at the edges of SQN', () => {
  const keys = subscriber();
  const m = new Milenage(keys.k, keys.opc);
  const rand = randomBytes(16);
  for (const sqnMs of [0, 1, 31, 32, 2 ** 32, 2 ** 48 - 1]) {
    assert.equal(openAuts(m, rand, computeAuts(m, rand, sqnMs)), sqnMs);
  }
});

test('USIM state survives storage; keys appear only in serializeForStorage', () => {
  const keys = subscriber();
  const usim = new Usim(keys);
  const network = new SqnGenerator();
  for (let i = 0; i < 3; i++) {
    const v = generateVector({ ...keys, sqn: network.next(i), amf: AMF });
    usim.authenticate(v.rand, v.autn);
  }
  const kHex = keys.k.toString('hex');
  const opcHex = keys.opc.toString('hex');
  for (const shown of [JSON.stringify(usim), String(usim), inspect(usim, { showHidden: true }), `${usim}`]) {
    assert.ok(!shown.includes(kHex) && !shown.includes(opcHex), shown);
  }
  const stored = JSON.parse(JSON.stringify(usim.serializeForStorage())) as unknown;
  const restored = Usim.fromStorage(stored);
  assert.equal(restored.sqnMs, usim.sqnMs);
  assert.deepEqual(restored.serializeForStorage(), usim.serializeForStorage());
  // The restored USIM still refuses the old SQNs and accepts new ones.
  const next = generateVector({ ...keys, sqn: network.next(0), amf: AMF });
  assert.equal(restored.authenticate(next.rand, next.autn).kind, 'success');
  assert.equal(restored.authenticate(next.rand, next.autn).kind, 'sync-failure');

  for (const bad of [
    null,
    7,
    {},
    { version: 1, k: kHex, opc: 'zz', sqn: {} },
    { version: 1, k: kHex, opc: opcHex },
  ]) {
    assert.throws(() => Usim.fromStorage(bad), isCode('SIMCRED_AKA_STATE_INVALID'));
  }
  const badSqn = {
    version: 1,
    k: kHex,
    opc: opcHex,
    sqn: { indBits: 5, delta: 10, ageLimit: null, seqMs: [1] },
  };
  assert.throws(() => Usim.fromStorage(badSqn), isCode('SIMCRED_AKA_STATE_INVALID'));
});
