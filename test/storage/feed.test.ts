import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FeedSignal, longPoll } from '../../src/storage/index.js';

test('a long poll answers as soon as a row is signalled, with what the re-read finds', async () => {
  const signal = new FeedSignal();
  const rows: number[] = [];
  let reads = 0;
  const poll = longPoll(
    async () => {
      reads++;
      return [...rows];
    },
    (found) => found.length > 0,
    25,
    signal,
    // A re-read only when signalled: the answer below cannot come from a timer.
    60_000,
  );
  // Wait until the poll has read once and sleeps on the signal.
  while (reads === 0) await new Promise((resolve) => setImmediate(resolve));
  rows.push(7);
  signal.notify();
  assert.deepEqual(await poll, [7]);
  assert.equal(reads, 2);
});

test('closing the signal releases every waiting poll, and later polls do not wait', async () => {
  const signal = new FeedSignal();
  const empty = async () => [] as number[];
  const waiting = [1, 2, 3].map(() => longPoll(empty, (f) => f.length > 0, 25, signal, 60_000));
  await new Promise((resolve) => setImmediate(resolve));
  signal.close();
  assert.deepEqual(await Promise.all(waiting), [[], [], []]);
  assert.deepEqual(await longPoll(empty, (f) => f.length > 0, 25, signal, 60_000), []);
});
