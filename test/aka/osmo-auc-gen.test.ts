// Milenage, vectors and resynchronisation against an independent implementation: osmo-auc-gen from
// Debian's libosmocore-utils (DESIGN §3). Inputs are pseudo-random from a seed (SIMCRED_AKA_SEED to
// replay a run); each failure names its osmo-auc-gen command line.
//
// SQN semantics of osmo-auc-gen (libosmocore ≥ 0.10): `-s SQN` is used as given — the tool passes
// SQN − 2^ind_len and IND = SQN mod 2^ind_len, and osmo_auth_gen_vec adds one SEQ back — and it prints
// the SQN used and its IND. With `-A AUTS` it checks MAC-S, prints SQN.MS, and generates the vector for
// ((SEQ_MS + 1) ‖ IND), IND being `-i` (default 0): a network continuing from SQN_MS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Milenage, computeOpc } from '../../src/aka/milenage.js';
import { SqnGenerator, computeAuts, splitSqn, sqnToBuffer } from '../../src/aka/sqn.js';
import { Usim } from '../../src/aka/usim.js';
import { generateVector, verifyAuts } from '../../src/aka/vectors.js';
import { SimcredError } from '../../src/errors/index.js';

const OSMO = '/usr/bin/osmo-auc-gen';
const SEED = process.env.SIMCRED_AKA_SEED ?? `simcred-aka-${Date.now()}`;
const CONCURRENCY = 8;
const VECTOR_CASES = 1000;
const RESYNC_CASES = 250;
const BAD_AUTS_CASES = 50;

/** Deterministic bytes for case `i`, field `label`. */
function bytes(i: number, label: string, n: number): Buffer {
  return createHash('sha256').update(`${SEED}/${i}/${label}`).digest().subarray(0, n);
}

interface OsmoResult {
  code: number;
  fields: Record<string, string>;
  /** stdout and stderr together. */
  output: string;
  command: string;
}

const MARK = '@@simcred-osmo-rc=';

/**
 * Runs a batch of osmo-auc-gen command lines in one /bin/sh (one Node spawn per batch instead of one per
 * run: forking Node costs more than osmo-auc-gen itself). Arguments are hex and decimal only.
 */
function osmoBatch(argLists: string[][]): Promise<OsmoResult[]> {
  const script = argLists
    .map((args) => `${OSMO} ${args.map((a) => `'${a}'`).join(' ')} 2>&1; echo "${MARK}$?"`)
    .join('\n');
  return new Promise((resolve, reject) => {
    const child = execFile('/bin/sh', ['-s'], { timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout) => {
      if (err) return reject(err);
      const chunks = stdout.split(MARK);
      const results = argLists.map((args, i) => {
        const output = chunks[i]!.replace(/^\d+\n/, '');
        const code = Number(/^(\d+)/.exec(chunks[i + 1] ?? '')?.[1] ?? NaN);
        const fields: Record<string, string> = {};
        for (const line of output.split('\n')) {
          const m = /^([A-Za-z. ]+):\t(.*)$/.exec(line);
          if (m) fields[m[1]!] = m[2]!;
        }
        return { code, fields, output, command: `${OSMO} ${args.join(' ')}` };
      });
      resolve(results);
    });
    child.stdin!.end(script);
  });
}

/**
 * Runs osmo-auc-gen once per argument list, `CONCURRENCY` shells at a time, and hands each result to
 * `check` with its index.
 */
async function forEachOsmo(
  argLists: string[][],
  check: (result: OsmoResult, i: number) => void,
): Promise<void> {
  const batch = 25;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < argLists.length) {
      const from = next;
      next += batch;
      const results = await osmoBatch(argLists.slice(from, from + batch));
      results.forEach((r, j) => check(r, from + j));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

test('osmo-auc-gen is installed (Debian libosmocore-utils; scripts/setup.sh --test installs it)', () => {
  assert.ok(existsSync(OSMO), `${OSMO} missing`);
});

const MILENAGE = ['-3', '-a', 'milenage'];
const hex = (b: Buffer): string => b.toString('hex');

test(`${VECTOR_CASES} random vectors agree with osmo-auc-gen (AUTN, RES, CK, IK, AK, SQN, IND)`, async () => {
  console.log(`# seed ${SEED}`);
  const cases = Array.from({ length: VECTOR_CASES }, (_, i) => {
    const k = bytes(i, 'k', 16);
    const op = i % 5 === 0 ? bytes(i, 'op', 16) : undefined;
    const opc = op ? computeOpc(k, op) : bytes(i, 'opc', 16);
    // Cover the edges too: SQN 0, a small SQN (SEQ 0), the largest SQN.
    const sqn = i === 1 ? 0 : i === 2 ? 7 : i === 3 ? 2 ** 48 - 1 : bytes(i, 'sqn', 6).readUIntBE(0, 6);
    return { k, op, opc, rand: bytes(i, 'rand', 16), amf: bytes(i, 'amf', 2), sqn };
  });
  const args = cases.map((c) => [
    ...MILENAGE,
    ...['-k', hex(c.k), ...(c.op ? ['-O', hex(c.op)] : ['-o', hex(c.opc)])],
    ...['-r', hex(c.rand), '-s', String(c.sqn), '-f', hex(c.amf)],
  ]);
  const started = Date.now();
  await forEachOsmo(args, (r, i) => {
    const c = cases[i]!;
    assert.equal(r.code, 0, `${r.command}: ${r.output}`);
    const v = generateVector({ k: c.k, opc: c.opc, sqn: c.sqn, amf: c.amf, rand: c.rand });
    const theirs = r.fields;
    // osmo-auc-gen does not print AK; AUTN carries SQN ⊕ AK.
    const theirAk = Buffer.from(theirs.AUTN!.slice(0, 12), 'hex');
    const sqnBytes = sqnToBuffer(c.sqn);
    for (let j = 0; j < 6; j++) theirAk[j]! ^= sqnBytes[j]!;
    assert.deepEqual(
      {
        RAND: theirs.RAND,
        AUTN: theirs.AUTN,
        RES: theirs.RES,
        CK: theirs.CK,
        IK: theirs.IK,
        AK: hex(theirAk),
        SQN: theirs.SQN,
        IND: theirs.IND,
      },
      {
        RAND: hex(c.rand),
        AUTN: hex(v.autn),
        RES: hex(v.xres),
        CK: hex(v.ck),
        IK: hex(v.ik),
        AK: hex(v.ak),
        SQN: String(c.sqn),
        IND: String(splitSqn(c.sqn).ind),
      },
      r.command,
    );
    // Our device side accepts osmo-auc-gen's challenge and answers the RES it expects (SEQ_MS starts at
    // zero, so SEQ 0 is not fresh; Δ is opened up to cover any random SQN).
    const usim = new Usim({ k: c.k, opc: c.opc }, { delta: 2 ** 43 });
    const answer = usim.authenticate(c.rand, Buffer.from(theirs.AUTN!, 'hex'));
    if (splitSqn(c.sqn).seq === 0) {
      assert.equal(answer.kind, 'sync-failure', r.command);
    } else {
      assert.equal(answer.kind, 'success', r.command);
      if (answer.kind === 'success') assert.equal(hex(answer.res), theirs.RES, r.command);
    }
  });
  console.log(`# ${VECTOR_CASES} osmo-auc-gen runs in ${Date.now() - started} ms`);
});

test(`${RESYNC_CASES} AUTS from our USIM side: osmo-auc-gen -A derives the same SQN_MS and next vector`, async () => {
  const cases = Array.from({ length: RESYNC_CASES }, (_, i) => {
    const k = bytes(i, 'resync-k', 16);
    const opc = bytes(i, 'resync-opc', 16);
    const rand = bytes(i, 'resync-rand', 16);
    // Keep one SEQ of head room so that SEQ_MS + 1 still fits in 48 bits.
    const sqnMs = i === 0 ? 0 : bytes(i, 'resync-sqn', 6).readUIntBE(0, 6) % (2 ** 48 - 64);
    const ind = i % 3 === 0 ? bytes(i, 'resync-ind', 1)[0]! % 32 : undefined;
    const auts = computeAuts(new Milenage(k, opc), rand, sqnMs);
    return { k, opc, rand, amf: bytes(i, 'resync-amf', 2), sqnMs, ind, auts };
  });
  const args = cases.map((c) => [
    ...MILENAGE,
    ...['-k', hex(c.k), '-o', hex(c.opc), '-r', hex(c.rand), '-A', hex(c.auts), '-f', hex(c.amf)],
    ...(c.ind === undefined ? [] : ['-i', String(c.ind)]),
  ]);
  const started = Date.now();
  await forEachOsmo(args, (r, i) => {
    const c = cases[i]!;
    assert.equal(r.code, 0, `${r.command}: ${r.output}`);
    const sqnMs = verifyAuts({ k: c.k, opc: c.opc, rand: c.rand, auts: c.auts });
    const generator = new SqnGenerator();
    generator.resync(sqnMs);
    const next = generator.next(c.ind ?? 0);
    const v = generateVector({ k: c.k, opc: c.opc, sqn: next, amf: c.amf, rand: c.rand });
    const f = r.fields;
    assert.deepEqual(
      { 'SQN.MS': f['SQN.MS'], SQN: f.SQN, IND: f.IND, AUTN: f.AUTN, RES: f.RES },
      {
        'SQN.MS': String(sqnMs),
        SQN: String(next),
        IND: String(c.ind ?? 0),
        AUTN: hex(v.autn),
        RES: hex(v.xres),
      },
      r.command,
    );
    assert.equal(sqnMs, c.sqnMs);
  });
  console.log(`# ${RESYNC_CASES} osmo-auc-gen -A runs in ${Date.now() - started} ms`);
});

test(`${BAD_AUTS_CASES} corrupted AUTS: refused by osmo-auc-gen and by verifyAuts`, async () => {
  const cases = Array.from({ length: BAD_AUTS_CASES }, (_, i) => {
    const k = bytes(i, 'bad-k', 16);
    const opc = bytes(i, 'bad-opc', 16);
    const rand = bytes(i, 'bad-rand', 16);
    const auts = computeAuts(new Milenage(k, opc), rand, bytes(i, 'bad-sqn', 6).readUIntBE(0, 6));
    const bit = bytes(i, 'bad-bit', 1)[0]! % (14 * 8);
    auts[bit >> 3]! ^= 1 << (bit & 7);
    return { k, opc, rand, auts };
  });
  const args = cases.map((c) => [
    ...MILENAGE,
    ...['-k', hex(c.k), '-o', hex(c.opc), '-r', hex(c.rand), '-A', hex(c.auts), '-f', '0000'],
  ]);
  await forEachOsmo(args, (r, i) => {
    const c = cases[i]!;
    assert.equal(r.code, 1, r.command);
    assert.match(r.output, /AUTS from MS seems incorrect/, r.command);
    assert.throws(
      () => verifyAuts({ k: c.k, opc: c.opc, rand: c.rand, auts: c.auts }),
      (err: unknown) => err instanceof SimcredError && err.code === 'SIMCRED_AKA_AUTS_INVALID',
    );
  });
});
