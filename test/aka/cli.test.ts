// `simcred aka vector`, as a user runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Milenage } from '../../src/aka/milenage.js';
import { computeAuts } from '../../src/aka/sqn.js';
import { lastJsonLine, runCli } from '../helpers/cli.js';

// TS 35.208 test set 1.
const SET1 = {
  k: '465b5ce8b199b49faa5f0a2ee238a6bc',
  op: 'cdc202d5123e20f62b6d676ac72cb318',
  opc: 'cd63cb71954a9f4e48a5994e37a02baf',
  rand: '23553cbe9637a89d218ae64dae47bf35',
  sqn: '0xff9bb4d0b607',
  amf: 'b9b9',
};
const EXPECTED = {
  macA: '4a9ffac354dfafb3',
  macS: '01cfaf9ec4e871e9',
  res: 'a54211d5e3ba50bf',
  ck: 'b40ba9a3c58b2a05bbf0d987b21bf8cb',
  ik: 'f769bcd751044604127672711c6d3441',
  ak: 'aa689c648370',
  akStar: '451e8beca43b',
  autn: '55f328b43577b9b94a9ffac354dfafb3',
  sqn: 0xff9bb4d0b607,
};
const BASE = ['aka', 'vector', '--k', SET1.k, '--rand', SET1.rand, '--amf', SET1.amf];

test('aka vector --json prints TS 35.208 set 1', async () => {
  const r = await runCli([...BASE, '--opc', SET1.opc, '--sqn', SET1.sqn, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = lastJsonLine(r.stdout);
  assert.deepEqual(
    { ...out, rand: undefined, ind: undefined },
    { ...EXPECTED, rand: undefined, ind: undefined },
  );
  assert.equal(out.opc, undefined);
  // SQN in decimal, as osmo-auc-gen takes it, gives the same; with --op, OPc is printed too.
  const fromOp = await runCli([...BASE, '--op', SET1.op, '--sqn', String(0xff9bb4d0b607), '--json']);
  assert.equal(fromOp.code, 0, fromOp.stderr);
  assert.deepEqual(lastJsonLine(fromOp.stdout), { ...out, opc: SET1.opc });
});

test('aka vector prints labelled hex lines without --json', async () => {
  const r = await runCli([...BASE, '--op', SET1.op, '--sqn', SET1.sqn]);
  assert.equal(r.code, 0, r.stderr);
  for (const line of [
    `OPc:\t${SET1.opc}`,
    `MAC-A:\t${EXPECTED.macA}`,
    `MAC-S:\t${EXPECTED.macS}`,
    `RES:\t${EXPECTED.res}`,
    `CK:\t${EXPECTED.ck}`,
    `IK:\t${EXPECTED.ik}`,
    `AK:\t${EXPECTED.ak}`,
    `AK*:\t${EXPECTED.akStar}`,
    `AUTN:\t${EXPECTED.autn}`,
  ]) {
    assert.ok(r.stdout.includes(`${line}\n`), `missing ${line} in\n${r.stdout}`);
  }
});

test('aka vector --auts verifies AUTS and prints SQN_MS and the next SQN', async () => {
  const m = new Milenage(Buffer.from(SET1.k, 'hex'), Buffer.from(SET1.opc, 'hex'));
  const auts = computeAuts(m, Buffer.from(SET1.rand, 'hex'), 1000).toString('hex');
  const r = await runCli([...BASE, '--opc', SET1.opc, '--auts', auts, '--ind', '3', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = lastJsonLine(r.stdout);
  assert.equal(out.sqnMs, 1000);
  assert.equal(out.sqn, (Math.floor(1000 / 32) + 1) * 32 + 3);
  assert.equal(out.ind, 3);

  const bad = `${auts.slice(0, -1)}${auts.endsWith('0') ? '1' : '0'}`;
  const refused = await runCli([...BASE, '--opc', SET1.opc, '--auts', bad]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /^simcred: error: .*\(SIMCRED_AKA_AUTS_INVALID\)\n$/);
});

test('bad input: one line naming SIMCRED_CLI_ARGUMENT, no stack trace, non-zero exit', async () => {
  const cases: string[][] = [
    ['aka', 'vector', '--opc', SET1.opc, '--rand', SET1.rand, '--sqn', '1', '--amf', 'b9b9'], // no --k
    [...BASE, '--opc', 'xyz', '--sqn', '1'], // not hex
    [...BASE, '--opc', SET1.opc.slice(2), '--sqn', '1'], // 15 bytes
    [...BASE, '--opc', SET1.opc, '--op', SET1.op, '--sqn', '1'], // both
    [...BASE, '--sqn', '1'], // neither
    [...BASE, '--opc', SET1.opc, '--sqn', String(2 ** 48)], // SQN too large
    [...BASE, '--opc', SET1.opc, '--sqn', '12ab'], // SQN neither decimal nor 0x-hex
    [...BASE, '--opc', SET1.opc], // no --sqn nor --auts
    [...BASE, '--opc', SET1.opc, '--sqn', '1', '--auts', '00'.repeat(14)], // both
    [...BASE, '--opc', SET1.opc, '--auts', '00'.repeat(13)], // AUTS 13 bytes
    [...BASE, '--opc', SET1.opc, '--sqn', '1', '--ind', '2'], // --ind without --auts
    [...BASE, '--opc', SET1.opc, '--auts', '00'.repeat(14), '--ind', '32'], // IND outside 5 bits
    ['aka', 'vector', '--k', SET1.k, '--rand', SET1.rand, '--amf', 'b9', '--opc', SET1.opc, '--sqn', '1'],
  ];
  await Promise.all(
    cases.map(async (args) => {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^simcred: error: [^\n]*\(SIMCRED_CLI_ARGUMENT\)\n$/, args.join(' '));
    }),
  );
});
