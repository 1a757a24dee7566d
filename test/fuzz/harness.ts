// The fuzz harness: each target is a named {arbitrary, run}. The same targets run in `npm test` at a
// small budget (test/fuzz/*.test.ts) and in the long run (`npm run fuzz`, scripts/fuzz.mjs), where
// every chunk of inputs has its own printed seed so that any failure can be replayed by fast-check.
import fc from 'fast-check';
import { ERROR_CODES, isSimcredError, type ErrorCode } from '../../src/errors/index.js';

/** What a fuzzer counts as a failure. */
export type FindingKind = 'crash' | 'hang' | '5xx';

/** A property violation: an unexpected error (crash), a call that did not end (hang), or an HTTP 5xx. */
export class Finding extends Error {
  constructor(
    readonly kind: FindingKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${kind}: ${message}`, options);
    this.name = 'Finding';
  }
}

export interface FuzzTarget<T = unknown> {
  /** Short and stable: `--target NAME` selects it, docs/fuzzing.md lists it. */
  name: string;
  /** What the target feeds and to what (one line, for docs/fuzzing.md and the summary). */
  covers: string;
  arbitrary: fc.Arbitrary<T>;
  /** One input: resolves if every property holds, throws a Finding (or anything: a crash) if not. */
  run(input: T): Promise<void>;
  /** After a batch of inputs: throws a Finding if the service stopped serving (route targets). */
  stillServing?(): Promise<void>;
  /** Upper bound on one call before it counts as a hang (default 10 s: no timing claim, only "it ends"). */
  timeoutMs?: number;
}

/** Declares a target with its input type checked, stored without it. */
export function defineTarget<T>(target: FuzzTarget<T>): FuzzTarget {
  return target as unknown as FuzzTarget;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

/** Resolves as `work` does, or throws Finding('hang') once `ms` have passed. */
export async function bounded<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Finding('hang', `no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The error contract for a parser: `err` must be a SimcredError whose code is one of `allowed`
 * (documented, and below 500 unless listed). Anything else is a crash Finding.
 *
 * @example
 *   try { parseDeviceChain([text]); } catch (err) { expectRefusal(err, ['SIMCRED_CERT_INVALID']); }
 */
export function expectRefusal(err: unknown, allowed: readonly ErrorCode[]): void {
  if (err instanceof Finding) throw err;
  if (!isSimcredError(err)) {
    throw new Finding('crash', `not a SimcredError: ${describe(err)}`, { cause: err });
  }
  if (!(err.code in ERROR_CODES) || !allowed.includes(err.code)) {
    throw new Finding('crash', `${err.code} is not among ${allowed.join(', ')}: ${err.message}`, {
      cause: err,
    });
  }
}

/** Runs `work` and checks that it either succeeds or fails with one of `allowed`; returns whether it succeeded. */
export async function acceptsOrRefuses(work: () => unknown, allowed: readonly ErrorCode[]): Promise<boolean> {
  try {
    await work();
    return true;
  } catch (err) {
    expectRefusal(err, allowed);
    return false;
  }
}

export function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** The property a target stands for: every input's run ends within the bound and holds. */
export function propertyOf(target: FuzzTarget): fc.IAsyncProperty<[unknown]> {
  const ms = target.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return fc.asyncProperty(target.arbitrary, (input) => bounded(target.run(input), ms));
}

export interface FailureRecord {
  target: string;
  kind: FindingKind;
  message: string;
  /** Replay: fc.check(property, { seed, path, endOnFailure: true }) — `npm run fuzz -- --target T --seed S --path P`. */
  seed: number;
  path: string | null;
  counterexample: string;
}

export interface TargetSummary {
  target: string;
  inputs: number;
  crashes: number;
  hangs: number;
  fiveXx: number;
  ms: number;
  /** Seed of every chunk, in order (chunk i ran `chunkRuns` inputs from seeds[i]). */
  seeds: number[];
  failures: FailureRecord[];
}

/** Classifies a fast-check failure's error. */
export function kindOf(err: unknown): FindingKind {
  let e: unknown = err;
  // fast-check may wrap the thrown value; look through causes for our Finding.
  for (let depth = 0; depth < 5 && e !== undefined && e !== null; depth++) {
    if (e instanceof Finding) return e.kind;
    e = (e as { cause?: unknown }).cause;
  }
  return 'crash';
}

/**
 * Runs `runs` inputs of `target` in chunks of `chunkRuns`, chunk i from seed `seed + i`, and counts
 * what failed (a failing chunk stops at its first failure, shrinks it, and the run goes on with the
 * next chunk, up to `maxFailures`). `path` replays one failure exactly.
 *
 * @example
 *   const summary = await runTarget(target, { runs: 1_000_000, seed: 42, chunkRuns: 10_000 });
 */
export async function runTarget(
  target: FuzzTarget,
  options: {
    runs: number;
    seed: number;
    chunkRuns?: number;
    path?: string;
    /** Stop after this many failures (default 3): the first ones are what a fix needs. */
    maxFailures?: number;
    /** Stop at the first chunk boundary after this many seconds (the summary says how many inputs ran). */
    seconds?: number;
    onChunk?: (done: number, summary: TargetSummary) => void;
  },
): Promise<TargetSummary> {
  const chunkRuns = Math.max(1, Math.min(options.chunkRuns ?? 10_000, options.runs));
  const summary: TargetSummary = {
    target: target.name,
    inputs: 0,
    crashes: 0,
    hangs: 0,
    fiveXx: 0,
    ms: 0,
    seeds: [],
    failures: [],
  };
  const started = performance.now();
  const property = propertyOf(target);
  for (let chunk = 0; summary.inputs < options.runs; chunk++) {
    const seed = (options.seed + chunk) | 0;
    const numRuns = Math.min(chunkRuns, options.runs - summary.inputs);
    summary.seeds.push(seed);
    const details = await fc.check(property, {
      seed,
      numRuns,
      ...(options.path !== undefined ? { path: options.path, endOnFailure: true } : {}),
    });
    summary.inputs += details.failed || options.path !== undefined ? details.numRuns : numRuns;
    if (details.failed) {
      const kind = kindOf(details.errorInstance);
      if (kind === 'hang') summary.hangs++;
      else if (kind === '5xx') summary.fiveXx++;
      else summary.crashes++;
      summary.failures.push({
        target: target.name,
        kind,
        message: describe(details.errorInstance),
        seed: details.seed,
        path: details.counterexamplePath,
        counterexample: fc.stringify(details.counterexample),
      });
    }
    if (target.stillServing) {
      try {
        await bounded(target.stillServing(), target.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      } catch (err) {
        const kind = kindOf(err);
        if (kind === 'hang') summary.hangs++;
        else summary.crashes++;
        summary.failures.push({
          target: target.name,
          kind,
          message: `stopped serving after chunk seed ${seed}: ${describe(err)}`,
          seed,
          path: null,
          counterexample: '',
        });
      }
    }
    summary.ms = performance.now() - started;
    options.onChunk?.(summary.inputs, summary);
    if (options.path !== undefined) break;
    if (summary.failures.length >= (options.maxFailures ?? 3)) break;
    if (options.seconds !== undefined && summary.ms >= options.seconds * 1000) break;
  }
  return summary;
}

/** A seed for this run: FUZZ_SEED if set (to replay), else a fresh one. */
export function seedFromEnvironment(): number {
  const fixed = process.env.FUZZ_SEED;
  return fixed !== undefined && fixed !== '' ? Number(fixed) | 0 : (Math.random() * 2 ** 31) | 0;
}
