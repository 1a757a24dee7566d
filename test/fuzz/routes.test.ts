// Every route body, fuzzed at a small budget against a running system (the long run: `npm run fuzz`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ALL_ROUTES } from '../../src/protocol/index.js';
import { runTarget, seedFromEnvironment, type FuzzTarget } from './harness.js';
import { startFuzzContext, type FuzzContext } from './context.js';
import { routeTargets } from './routes.js';

/** Inputs per route in `npm test` (each an HTTPS request to a running role); FUZZ_RUNS overrides. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 20);
/** In process (and a route's schemas alone) an input costs far less. */
const IN_PROCESS_RUNS = Number(process.env.FUZZ_RUNS ?? 200);

describe('fuzz: every route body, on a running system', () => {
  let ctx: FuzzContext;
  let routes: { targets: FuzzTarget[]; close(): Promise<void> };
  before(async () => {
    ctx = await startFuzzContext();
    routes = await routeTargets(ctx);
  });
  after(async () => {
    await routes.close();
    await ctx.close();
  });

  for (const name of [
    ...ALL_ROUTES.map((r) => `route:${r.id}`),
    'route:registration.lookup-chain',
    'route:ocsp.http',
    ...ALL_ROUTES.map((r) => `inprocess:${r.id}`),
    ...ALL_ROUTES.filter((r) => r.body ?? r.params ?? r.query).map((r) => `schema:${r.id}`),
  ]) {
    const runs = name.startsWith('route:') ? RUNS : IN_PROCESS_RUNS;
    test(name, async (t) => {
      const target = routes.targets.find((x) => x.name === name);
      assert.ok(target, `target ${name} exists`);
      const seed = seedFromEnvironment();
      t.diagnostic(`seed ${seed} (FUZZ_SEED=${seed} replays)`);
      const summary = await runTarget(target, { runs, seed });
      assert.equal(summary.inputs, runs);
      assert.deepEqual(summary.failures, [], JSON.stringify(summary.failures, null, 2));
    });
  }
});
