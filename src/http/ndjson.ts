import { StringDecoder } from 'node:string_decoder';
import { SimcredError } from '../errors/index.js';

/** Longest accepted NDJSON line: a device line is ~100 bytes, so 16 KiB is generous. */
export const MAX_NDJSON_LINE_BYTES = 16 * 1024;

/**
 * Splits a byte stream into NDJSON lines without ever holding more than one line (plus one chunk):
 * a batch of a million devices streams through in constant memory. Blank lines are skipped;
 * a line over the limit fails the stream with SIMCRED_BODY_TOO_LARGE.
 *
 * @example
 *   for await (const { lineNumber, text } of ndjsonLines(request.body)) handle(JSON.parse(text));
 */
export async function* ndjsonLines(
  source: AsyncIterable<Buffer | string>,
  maxLineBytes = MAX_NDJSON_LINE_BYTES,
): AsyncGenerator<{ lineNumber: number; text: string }> {
  let pending = '';
  let lineNumber = 0;
  // A multi-byte character may be split across chunks: the decoder keeps the partial bytes.
  const decoder = new StringDecoder('utf8');
  for await (const chunk of source) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      lineNumber++;
      if (text.length > 0) yield { lineNumber, text };
    }
    if (pending.length > maxLineBytes) {
      throw new SimcredError(
        'SIMCRED_BODY_TOO_LARGE',
        `NDJSON line ${lineNumber + 1} exceeds ${maxLineBytes} bytes`,
      );
    }
  }
  pending += decoder.end();
  const last = pending.trim();
  if (last.length > 0) yield { lineNumber: lineNumber + 1, text: last };
}

/** Groups an async stream into arrays of at most `size` items. */
export async function* chunked<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of source) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}
