import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ALL_ROUTES } from '../../src/protocol/index.js';
import { renderProtocolDoc } from '../../src/protocol/docs.js';
import { ERROR_CODES } from '../../src/errors/index.js';

test('docs/protocol.md is generated from the route specs (npm run docs:protocol)', () => {
  assert.equal(readFileSync('docs/protocol.md', 'utf8'), renderProtocolDoc(ALL_ROUTES));
});

test('every route is unique, versioned and declares only known error codes', () => {
  const seen = new Set<string>();
  for (const route of ALL_ROUTES) {
    const key = `${route.role} ${route.method} ${route.path}`;
    assert.ok(!seen.has(key), `duplicate route ${key}`);
    seen.add(key);
    assert.match(route.path, /^\/v1\//);
    for (const code of route.errors) assert.ok(code in ERROR_CODES, `${route.id}: unknown code ${code}`);
  }
});
