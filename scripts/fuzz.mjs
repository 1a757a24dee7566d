// The long fuzz run (docs/fuzzing.md): the same targets as test/fuzz/*.test.ts, over dist/, with many
// more inputs. Prints progress and, per target, inputs, crashes, hangs, 5xx and inputs/s; every
// failure is written to fuzz-failures/ with the seed and path that replay it.
//
//   npm run fuzz                                  every target, 1,000,000 inputs each
//   npm run fuzz -- --runs 20000 --target ocsp-request --target receipt
//   npm run fuzz -- --target der-certificate --seed 123 --path 4:1:0     replay one failure
//   npm run fuzz -- --seconds 600                  at most ~10 minutes per target (the summary counts inputs run)
//   npm run fuzz -- --list
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000000' },
    target: { type: 'string', multiple: true },
    seed: { type: 'string' },
    path: { type: 'string' },
    chunk: { type: 'string', default: '10000' },
    seconds: { type: 'string' },
    out: { type: 'string', default: 'fuzz-failures' },
    list: { type: 'boolean', default: false },
  },
});

const { startFuzzContext } = await import('../dist/test/fuzz/context.js');
const { parserTargets } = await import('../dist/test/fuzz/parsers.js');
const { routeTargets } = await import('../dist/test/fuzz/routes.js');
const { runTarget } = await import('../dist/test/fuzz/harness.js');

const ctx = await startFuzzContext();
const routes = await routeTargets(ctx);
const all = [...(await parserTargets(ctx)), ...routes.targets];
if (values.list) {
  for (const t of all) console.log(`${t.name.padEnd(44)} ${t.covers}`);
  await routes.close();
  await ctx.close();
  process.exit(0);
}
const wanted = values.target ?? all.map((t) => t.name);
const unknown = wanted.filter((name) => !all.some((t) => t.name === name));
if (unknown.length > 0) {
  console.error(`unknown target(s): ${unknown.join(', ')} (--list shows them)`);
  process.exit(2);
}
const runs = Number(values.runs);
const baseSeed = values.seed !== undefined ? Number(values.seed) | 0 : (Math.random() * 2 ** 31) | 0;
const chunkRuns = Number(values.chunk);
console.log(
  `fuzz: ${wanted.length} target(s), ${runs} inputs each, seed ${baseSeed}, chunks of ${chunkRuns}`,
);

const summaries = [];
for (const name of wanted) {
  const target = all.find((t) => t.name === name);
  console.log(`\n${name}: ${target.covers}`);
  const summary = await runTarget(target, {
    runs,
    seed: baseSeed,
    chunkRuns,
    ...(values.seconds !== undefined ? { seconds: Number(values.seconds) } : {}),
    ...(values.path !== undefined ? { path: values.path } : {}),
    onChunk: (done, s) => {
      const rate = done / (s.ms / 1000);
      console.log(
        `  ${name} ${done}/${runs} (${((100 * done) / runs).toFixed(1)}%) seed ${s.seeds.at(-1)} · ` +
          `crashes ${s.crashes} hangs ${s.hangs} 5xx ${s.fiveXx} · ${rate.toFixed(0)} inputs/s`,
      );
    },
  });
  for (const failure of summary.failures) {
    mkdirSync(values.out, { recursive: true });
    const file = join(values.out, `${name.replace(/[^A-Za-z0-9.-]/g, '_')}-${failure.seed}.json`);
    writeFileSync(file, JSON.stringify(failure, null, 2));
    console.log(`  FAILURE ${failure.kind}: ${failure.message}`);
    console.log(
      `    replay: npm run fuzz -- --target ${name} --seed ${failure.seed} --path ${failure.path ?? ''} (${file})`,
    );
  }
  summaries.push(summary);
}

console.log(
  '\ntarget                                        inputs  crashes  hangs  5xx  inputs/s   seconds',
);
for (const s of summaries) {
  console.log(
    `${s.target.padEnd(44)} ${String(s.inputs).padStart(8)} ${String(s.crashes).padStart(8)} ${String(s.hangs).padStart(6)} ${String(s.fiveXx).padStart(4)} ${(s.inputs / (s.ms / 1000)).toFixed(0).padStart(9)} ${(s.ms / 1000).toFixed(0).padStart(9)}`,
  );
}
const failed = summaries.some((s) => s.failures.length > 0);
console.log(`\nseed ${baseSeed}; ${failed ? 'FAILURES (see above)' : 'no failures'}`);
await routes.close();
await ctx.close();
process.exit(failed ? 1 : 0);
