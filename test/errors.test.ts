import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../src/errors/index.js';

test('every error code is documented in docs/errors.md with its status', () => {
  const doc = readFileSync('docs/errors.md', 'utf8');
  for (const [code, { status }] of Object.entries(ERROR_CODES)) {
    assert.match(
      doc,
      new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${status}\\s*\\|`),
      `${code} missing from docs/errors.md (npm run docs:errors)`,
    );
  }
});

test('codes are SIMCRED_ names with a status and a one-line meaning', () => {
  for (const [code, { status, meaning }] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^SIMCRED_[A-Z0-9_]+$/);
    assert.ok(status >= 400 && status < 600, code);
    assert.ok(meaning.length > 10 && !meaning.includes('\n'), code);
  }
});
