import { randomBytes } from 'node:crypto';
import { loadKeyEncryptionKey, memoryKek, type KeyEncryptionKey } from '../keys/key-encryption.js';

/** Cost of one seal and one open of a 16-byte secret (K or OPc), wall and CPU, per call. */
export interface KekCost {
  key: string;
  inToken: boolean;
  calls: number;
  sealMicroseconds: number;
  openMicroseconds: number;
  sealCpuMicroseconds: number;
  openCpuMicroseconds: number;
}

export interface KekBenchResult {
  bench: 'kek';
  calls: number;
  /** The in-memory key (today's default), then the key named on the command line. */
  results: KekCost[];
}

function measure(kek: KeyEncryptionKey, calls: number): KekCost {
  const secret = randomBytes(16);
  const sealed: string[] = [];
  // Warm-up: the first calls pay for the JIT and the token's first use.
  for (let i = 0; i < 200; i++) kek.open(kek.seal(secret, `k:warm${i}`), `k:warm${i}`);
  let cpu = process.cpuUsage();
  let start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) sealed.push(kek.seal(secret, `k:${i}`));
  const sealNs = Number(process.hrtime.bigint() - start);
  const sealCpu = process.cpuUsage(cpu);
  cpu = process.cpuUsage();
  start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) kek.open(sealed[i]!, `k:${i}`);
  const openNs = Number(process.hrtime.bigint() - start);
  const openCpu = process.cpuUsage(cpu);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    key: kek.description,
    inToken: kek.inToken,
    calls,
    sealMicroseconds: round(sealNs / 1000 / calls),
    openMicroseconds: round(openNs / 1000 / calls),
    sealCpuMicroseconds: round((sealCpu.user + sealCpu.system) / calls),
    openCpuMicroseconds: round((openCpu.user + openCpu.system) / calls),
  };
}

/**
 * `simcred bench kek --kek KEK`: what sealing and opening K/OPc costs with that key (a pkcs11: URI or
 * 32 bytes) next to an in-memory key, in this process. The HSS does 2 seals per new subscriber, 2 opens
 * per package and 2 per attach challenge (docs/crypto.md §7).
 *
 * @example
 *   const result = runKekBench({ kek: 'pkcs11:token=simcred;object=simcred-hss-kek', calls: 5000 });
 */
export function runKekBench(options: { kek: string; calls: number }): KekBenchResult {
  const results = [measure(memoryKek(randomBytes(32)), options.calls)];
  results.push(measure(loadKeyEncryptionKey(options.kek, '--kek'), options.calls));
  return { bench: 'kek', calls: options.calls, results };
}

export function formatKek(result: KekBenchResult): string {
  const lines = [
    `K/OPc seal and open, ${result.calls} calls each (µs per call, wall / CPU of this process)`,
    '',
    '| key | seal µs | open µs | seal CPU µs | open CPU µs |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...result.results.map(
      (r) =>
        `| ${r.key} | ${r.sealMicroseconds} | ${r.openMicroseconds} | ${r.sealCpuMicroseconds} | ${r.openCpuMicroseconds} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
