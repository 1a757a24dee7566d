import cliProgress from 'cli-progress';

export interface Progress {
  increment(by?: number): void;
  /** Sets the absolute count done. */
  update(done: number): void;
  stop(): void;
}

/**
 * A progress bar on a terminal (stderr), silent otherwise so that logs and --json output stay clean.
 *
 * @example
 *   const progress = startProgress('manufacturing', count); progress.increment(); progress.stop();
 */
export function startProgress(
  label: string,
  total: number,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  if (!stream.isTTY || total <= 0) return { increment() {}, update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label.padEnd(14)} [{bar}] {percentage}% | {value}/{total} | {speed}/s | eta {eta}s`,
      hideCursor: true,
      etaBuffer: 200,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  bar.start(total, 0, { speed: '0' });
  let value = 0;
  const update = (done: number) => {
    value = done;
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    bar.update(value, { speed: Math.round(value / seconds).toString() });
  };
  let stopped = false;
  return {
    increment(by = 1) {
      update(value + by);
    },
    update,
    stop() {
      if (!stopped) bar.stop();
      stopped = true;
    },
  };
}
