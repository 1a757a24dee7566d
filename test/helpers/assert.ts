import assert from 'node:assert/strict';
import { isSimcredError, type ErrorCode } from '../../src/errors/index.js';

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
