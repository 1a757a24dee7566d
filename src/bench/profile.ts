import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { round } from './processes.js';

/** A V8 .cpuprofile as node --cpu-prof writes it. */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  /** Microseconds on the monotonic clock (process.hrtime's), when sampling began. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A span of the monotonic clock, in microseconds (process.hrtime.bigint() / 1000). */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
}

export interface ProfileEntry {
  name: string;
  selfMs: number;
  percent: number;
}

export interface ProfileSummary {
  process: string;
  file: string;
  /** CPU time sampled (idle left out). */
  totalMs: number;
  /** Functions by self time. */
  top: ProfileEntry[];
  /** Self time by package (node_modules/<name>), our source file, or node internal / native. */
  modules: ProfileEntry[];
  /** Time with the module anywhere on the stack (callees included): what a package costs in all. */
  inclusive: ProfileEntry[];
}

/** Where a frame lives: "jose", "src/hss/processor.ts", "node:internal", "(native)". */
function moduleOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const ours = /\/dist\/(src\/.+)\.js$/.exec(url);
  if (ours) return `${ours[1]}.ts`;
  if (url.startsWith('node:')) return 'node:internal';
  return url.replace(/^file:\/\//, '');
}

/** Now on the clock V8 stamps its profiles with (CLOCK_MONOTONIC), in microseconds. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Self time per function and per module of one .cpuprofile.
 *
 * @example
 *   const s = summariseProfile('CPU.…cpuprofile', 'hss');
 */
export function summariseProfile(
  file: string,
  processName: string,
  window?: ProfileWindow,
  topN = 12,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);
  const moduleOfNode = (id: number) => {
    const frame = byId.get(id)!.callFrame;
    return moduleOf(frame.url, frame.functionName);
  };
  // Only the samples taken inside the window: start-up and shutdown are not what is measured.
  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at < window.fromUs || at > window.toUs)) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });
  const functions = new Map<string, number>();
  const modules = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (!frame || frame.functionName === '(idle)') continue;
    totalUs += us;
    const module = moduleOf(frame.url, frame.functionName);
    const name = `${frame.functionName || '(anonymous)'} ${module}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    modules.set(module, (modules.get(module) ?? 0) + us);
    const onStack = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parentOf.get(n)) onStack.add(moduleOfNode(n));
    for (const m of onStack) inclusive.set(m, (inclusive.get(m) ?? 0) + us);
  }
  const entries = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([name, us]) => ({
        name,
        selfMs: round(us / 1000, 1),
        percent: round((us / Math.max(1, totalUs)) * 100, 1),
      }));
  return {
    process: processName,
    file,
    totalMs: round(totalUs / 1000, 0),
    top: entries(functions),
    modules: entries(modules),
    inclusive: entries(inclusive),
  };
}

/**
 * Every profile in `dir` whose pid is one of `names`' keys (CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile).
 */
export function summariseProfiles(
  dir: string,
  names: Map<number, string>,
  window?: ProfileWindow,
): ProfileSummary[] {
  const out: ProfileSummary[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const pid = Number(file.split('.')[3]);
    const name = names.get(pid);
    if (name) out.push(summariseProfile(join(dir, file), name, window));
  }
  return out.sort((a, b) => b.totalMs - a.totalMs);
}
