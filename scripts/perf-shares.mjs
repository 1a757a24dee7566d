// On-CPU shares of a Node process from Linux perf samples (docs/benchmarks.md, "Profile findings").
//
// node --cpu-prof samples on a wall-clock timer: time a process spends preempted inside a syscall (a
// loopback write that wakes its peer) is counted as if spent there, which on two busy cores doubles
// some figures. perf's cpu-clock event counts only time on a CPU. With node --perf-basic-prof, the
// JavaScript frames carry their function, file and line, so the samples can be grouped like a profile:
//
//   NODE_OPTIONS=--perf-basic-prof node dist/src/cli/main.js bench e2e --devices 1000 --colocated &
//   perf record -e cpu-clock -F 499 -a -g -o perf.data -- sleep 20     # during the fleet phase
//   perf script -i perf.data --tid PID -F tid,ip,sym,dso | node scripts/perf-shares.mjs
//
// Prints, as % of the samples: each source file, package or native part on the stack (callees
// included), the innermost such part (where the CPU was), and the innermost simcred source file.
import { createInterface } from 'node:readline';

const NATIVE = [
  [/kernel/, '[kernel]'],
  [/better_sqlite3/, '[sqlite]'],
  [/libcrypto|ossl_|OPENSSL_|EVP_|ecp_nistz/, '[openssl]'],
  [/\bSSL_|ssl3_|tls1_|aesni_|gcm_/, '[tls]'],
  [/Scavenge|MarkCompact|Heap::|GCTracer/, '[gc]'],
  [/malloc|_int_free|unlink_chunk/, '[malloc]'],
];

/** The part of the code a frame belongs to, or undefined for V8 and Node internals not named above. */
function partOf(frame) {
  const js = /JS:\S?\S* (\S+?):\d+:\d+/.exec(frame);
  if (js) {
    const file = js[1];
    if (file.includes('/dist/src/')) return `src/${file.split('/dist/src/')[1]}`;
    const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(file);
    return pkg ? `package ${pkg[1]}` : file;
  }
  return NATIVE.find(([pattern]) => pattern.test(frame))?.[1];
}

const samples = [];
let stack;
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === '') {
    if (stack) samples.push(stack);
    stack = undefined;
  } else if (!line.startsWith('\t')) {
    stack = []; // the sample's own line (its thread id); its frames follow, one per line, tab-indented
  } else if (stack) {
    stack.push(line.trim().split(' ').slice(1).join(' '));
  }
}
if (stack) samples.push(stack);
if (samples.length === 0) {
  console.error('no samples on standard input (perf script -F tid,ip,sym,dso)');
  process.exit(1);
}

const onStack = new Map();
const innermost = new Map();
const innermostSource = new Map();
const count = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
for (const frames of samples) {
  const parts = frames.map(partOf).filter((p) => p !== undefined);
  for (const part of new Set(parts)) count(onStack, part);
  count(innermost, parts[0] ?? '(V8 / Node internals)');
  count(innermostSource, parts.find((p) => p.startsWith('src/')) ?? '(no simcred frame)');
}
const print = (title, map, rows) => {
  console.log(`\n${title}`);
  for (const [key, n] of [...map].sort((a, b) => b[1] - a[1]).slice(0, rows)) {
    console.log(`${((100 * n) / samples.length).toFixed(1).padStart(6)}%  ${key}`);
  }
};
console.log(`${samples.length} samples`);
print('on the stack (callees included)', onStack, 40);
print('innermost part (where the CPU was)', innermost, 25);
print('innermost simcred source file', innermostSource, 25);
