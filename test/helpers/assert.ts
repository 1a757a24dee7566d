import assert from 'node:assert/strict';
import { ERROR_CODES, isSimcredError, type ErrorCode } from '../../src/errors/index.js';

/** Asserts that `promise` rejects with a SimcredError of exactly this code (and, if given, a matching message). */
export async function rejectsWith(
  promise: Promise<unknown>,
  code: ErrorCode,
  message?: RegExp,
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isSimcredError(err), `expected a SimcredError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** An HTTP answer as PeerClient.send returns it. */
export interface HttpAnswer {
  statusCode: number;
  headers?: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * Asserts that an HTTP answer is the error contract's refusal with exactly this code: the code's own
 * status from ERROR_CODES, a JSON body {code, message}, no stack trace, and Retry-After on a 503. test/errors-coverage.test.ts
 * counts the codes asserted here.
 *
 * @example
 *   expectRefusal(await client.send(url, 'POST', body, 'application/json'), 'SIMCRED_TICKET_INVALID');
 */
export function expectRefusal(answer: HttpAnswer, code: ErrorCode, message?: RegExp): void {
  let body: { code?: unknown; message?: unknown };
  try {
    body = JSON.parse(answer.text) as typeof body;
  } catch {
    assert.fail(`expected a JSON error body with ${code}, got HTTP ${answer.statusCode}: ${answer.text}`);
  }
  assert.equal(body.code, code, `HTTP ${answer.statusCode}: ${answer.text}`);
  assert.equal(answer.statusCode, ERROR_CODES[code].status, `${code} answered with the wrong status`);
  assert.equal(typeof body.message, 'string');
  assert.deepEqual(Object.keys(body).sort(), ['code', 'message']);
  assert.doesNotMatch(answer.text, /\n\s+at |node_modules/, 'no stack trace');
  // docs/errors.md: a 503 always comes with Retry-After.
  if (answer.statusCode === 503 && answer.headers) assert.ok(Number(answer.headers['retry-after']) > 0);
  if (message) assert.match(body.message as string, message);
}

/**
 * Asserts that the operator's view of a device records `event` with this code as its detail: how a
 * refusal the device only sees as a retryable outage (a peer's bad answer) shows up.
 */
export function expectAudited(
  state: { audit: { event: string; detail: string | null }[] },
  event: string,
  code: ErrorCode,
): void {
  assert.ok(
    state.audit.some((e) => e.event === event && e.detail === code),
    `no ${event} audit event with ${code}: ${JSON.stringify(state.audit)}`,
  );
}
