// Milenage against the TS 35.207/35.208 conformance test sets (data file: ../shared/vectors/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCipheriv } from 'node:crypto';
import { inspect } from 'node:util';
import { Milenage, computeOpc, type MilenageOutput } from '../../src/aka/milenage.js';

interface TestSet {
  name: string;
  k: string;
  rand: string;
  sqn: string;
  amf: string;
  op: string;
  opc: string;
  f1: string;
  f1star: string;
  f2: string;
  f3: string;
  f4: string;
  f5: string;
  f5star: string;
}

const VECTORS = join(process.cwd(), '..', 'shared', 'vectors', 'milenage-ts35208.json');
const { sets } = JSON.parse(readFileSync(VECTORS, 'utf8')) as { sets: TestSet[] };
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

test('the TS 35.208 data file has test sets', () => {
  assert.ok(sets.length >= 3, `${VECTORS} holds ${sets.length} sets`);
});

for (const set of sets) {
  test(`${set.name}: OPc and f1, f1*, f2, f3, f4, f5, f5*`, () => {
    const k = hex(set.k);
    const rand = hex(set.rand);
    const sqn = hex(set.sqn);
    const amf = hex(set.amf);
    assert.equal(computeOpc(k, hex(set.op)).toString('hex'), set.opc, 'OPc from OP');

    for (const m of [new Milenage(k, hex(set.opc)), Milenage.fromOp(k, hex(set.op))]) {
      // One function at a time …
      assert.equal(m.f1(rand, sqn, amf).toString('hex'), set.f1, 'f1 (MAC-A)');
      assert.equal(m.f1star(rand, sqn, amf).toString('hex'), set.f1star, 'f1* (MAC-S)');
      assert.equal(m.f2(rand).toString('hex'), set.f2, 'f2 (RES)');
      assert.equal(m.f3(rand).toString('hex'), set.f3, 'f3 (CK)');
      assert.equal(m.f4(rand).toString('hex'), set.f4, 'f4 (IK)');
      assert.equal(m.f5(rand).toString('hex'), set.f5, 'f5 (AK)');
      assert.equal(m.f5star(rand).toString('hex'), set.f5star, 'f5* (AK*)');
      // … and all at once.
      const out = m.compute(rand, sqn, amf);
      assert.deepEqual(
        Object.fromEntries(Object.entries(out).map(([key, v]) => [key, (v as Buffer).toString('hex')])),
        {
          macA: set.f1,
          macS: set.f1star,
          res: set.f2,
          ck: set.f3,
          ik: set.f4,
          ak: set.f5,
          akStar: set.f5star,
        },
      );
    }
  });
}

test('one Milenage instance gives the same answers however its calls interleave', () => {
  const [a, b] = sets as [TestSet, TestSet];
  const m = new Milenage(hex(a.k), hex(a.opc));
  const first = m.compute(hex(a.rand), hex(a.sqn), hex(a.amf));
  m.compute(hex(b.rand), hex(b.sqn), hex(b.amf));
  m.f5star(hex(b.rand));
  assert.deepEqual(m.compute(hex(a.rand), hex(a.sqn), hex(a.amf)), first);
});

test('key material stays out of JSON, inspect and toString', () => {
  const set = sets[0]!;
  const m = new Milenage(hex(set.k), hex(set.opc));
  for (const shown of [JSON.stringify({ m }), inspect(m, { showHidden: true, depth: 5 }), String(m)]) {
    assert.ok(!shown.includes(set.k) && !shown.includes(set.opc), shown);
  }
});

test('wrong lengths are refused', () => {
  const set = sets[0]!;
  assert.throws(() => new Milenage(hex(set.k).subarray(1), hex(set.opc)), RangeError);
  const m = new Milenage(hex(set.k), hex(set.opc));
  assert.throws(() => m.f2(Buffer.alloc(15)), RangeError);
  assert.throws(() => m.f1(hex(set.rand), Buffer.alloc(5), hex(set.amf)), RangeError);
  assert.throws(() => m.f1(hex(set.rand), hex(set.sqn), Buffer.alloc(3)), RangeError);
});

test('one keyed instance: two AES calls per vector, the same vectors as a fresh instance each time', () => {
  // What the speed rests on (src/aka/milenage.ts): one AES-128-ECB cipher keyed once and reused, and a
  // whole vector in two cipher calls. Counted, not timed, so the machine's load cannot decide it.
  const set = sets[0]!;
  const m = new Milenage(hex(set.k), hex(set.opc));
  const rand = hex(set.rand);
  const sqn = hex(set.sqn);
  const amf = hex(set.amf);
  const n = 1000;
  const cipherPrototype = Object.getPrototypeOf(createCipheriv('aes-128-ecb', Buffer.alloc(16), null)) as {
    update: (...args: unknown[]) => unknown;
  };
  const update = cipherPrototype.update;
  let aesCalls = 0;
  cipherPrototype.update = function (this: unknown, ...args: unknown[]) {
    aesCalls += 1;
    return update.apply(this, args);
  };
  const reused: MilenageOutput[] = [];
  try {
    for (let i = 0; i < n; i++) {
      rand.writeUInt32BE(i, 0);
      reused.push(m.compute(Buffer.from(rand), sqn, amf));
    }
  } finally {
    cipherPrototype.update = update;
  }
  assert.equal(aesCalls, 2 * n);
  for (let i = 0; i < n; i++) {
    rand.writeUInt32BE(i, 0);
    assert.deepEqual(
      reused[i],
      new Milenage(hex(set.k), hex(set.opc)).compute(rand, sqn, amf),
      `vector ${i}`,
    );
  }
});
