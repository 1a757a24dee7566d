// The parser fuzz targets at a small budget (the long run: `npm run fuzz`, docs/fuzzing.md).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runTarget, seedFromEnvironment, type FuzzTarget } from './harness.js';
import { startFuzzContext, type FuzzContext } from './context.js';
import { parserTargets } from './parsers.js';

/** Inputs per target in `npm test`; FUZZ_RUNS overrides. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

describe('fuzz: parsers of outside input', () => {
  let ctx: FuzzContext;
  let targets: FuzzTarget[];
  before(async () => {
    ctx = await startFuzzContext();
    targets = await parserTargets(ctx);
  });
  after(async () => {
    await ctx.close();
  });

  for (const name of [
    'der-certificate',
    'device-chain',
    'ocsp-request',
    'ocsp-request-roundtrip',
    'ocsp-response',
    'jose-package',
    'receipt',
    'ndjson',
    'aka-usim',
    'aka-network',
  ]) {
    test(name, async (t) => {
      const target = targets.find((x) => x.name === name);
      assert.ok(target, `target ${name} exists`);
      const seed = seedFromEnvironment();
      t.diagnostic(`seed ${seed} (FUZZ_SEED=${seed} replays)`);
      const summary = await runTarget(target, { runs: RUNS, seed });
      assert.equal(summary.inputs, RUNS);
      assert.deepEqual(summary.failures, [], JSON.stringify(summary.failures, null, 2));
    });
  }
});
