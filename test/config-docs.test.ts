// docs/configuration.md is generated from the config schema (scripts/gen-config-docs.mjs); these
// tests fail when the doc is stale, when a field has no meaning, or when a documented environment
// variable would not reach its field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { envVariableName, envVariablePath, loadConfig } from '../src/config/index.js';
import { configLeaves, renderConfigDoc } from '../src/config/docs.js';

const DOC = 'docs/configuration.md';

test('docs/configuration.md is generated from the config schema (npm run docs:config)', async () => {
  const expected = await format(renderConfigDoc(), { ...(await resolveConfig(DOC)), filepath: DOC });
  assert.equal(readFileSync(DOC, 'utf8'), expected);
});

test('every config field says what it means', () => {
  const leaves = configLeaves();
  assert.ok(leaves.length >= 30, `only ${leaves.length} fields found`);
  const undocumented = leaves
    .filter((l) => !l.description || l.description.length < 10)
    .map((l) => l.path.join('.'));
  assert.deepEqual(undocumented, []);
  for (const path of [
    'ports.ocsp',
    'ports.registration',
    'database.kind',
    'database.url',
    'hss.op',
    'log.level',
  ]) {
    assert.ok(
      leaves.some((l) => l.path.join('.') === path),
      `${path} is not among the documented fields`,
    );
  }
});

/** Optional sections with a required field: a default inside one is given with that field set. */
const REQUIRED_WITH: Record<string, Record<string, string>> = {
  'credentialing.authorisationHook': {
    SIMCRED_CREDENTIALING__AUTHORISATION_HOOK__URL: 'https://hook.operator.example/authorise',
  },
};

test("every field's documented environment variable reaches that field", () => {
  for (const leaf of configLeaves()) {
    const name = envVariableName(leaf.path);
    assert.deepEqual(envVariablePath(name), leaf.path, name);
    if (leaf.default === undefined) continue;
    // The default, given through the variable: an unknown field would be refused (the schema is strict).
    const value: unknown = JSON.parse(leaf.default);
    const companions = REQUIRED_WITH[leaf.path.slice(0, -1).join('.')] ?? {};
    const config = loadConfig({
      env: { ...companions, [name]: typeof value === 'string' ? value : leaf.default },
    });
    let node: unknown = config;
    for (const key of leaf.path) node = (node as Record<string, unknown>)[key];
    // dataDir comes back resolved to an absolute path.
    assert.deepEqual(node, leaf.path[0] === 'dataDir' ? resolve(value as string) : value, name);
  }
  assert.equal(envVariableName(['ports', 'ocsp']), 'SIMCRED_PORTS__OCSP');
  // A string field takes the value as given, digits included (it was once read as the number 9001).
  assert.equal(loadConfig({ env: { SIMCRED_HSS__AMF: '9001' } }).hss.amf, '9001');
  assert.equal(loadConfig({ env: { SIMCRED_HSS__AMF: '"9001"' } }).hss.amf, '9001');
  assert.equal(loadConfig({ env: { SIMCRED_HSS__PACKAGE_TTL_SECONDS: '60' } }).hss.packageTtlSeconds, 60);
});
