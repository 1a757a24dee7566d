import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { ERROR_CODES, type ErrorCode } from '../src/errors/index.js';
import { ALL_ROUTES, PORTAL_ROUTES } from '../src/protocol/index.js';

/*
 * Every code in ERROR_CODES must be asserted by some test, and every refusal a server or the device
 * answers must be asserted by an end-to-end test. "Asserted" is a convention this test reads from the
 * test sources (test/**∕*.ts, parsed with the TypeScript compiler, never run): the code is a string
 * literal (or in a regular-expression literal) in one of these places, and nowhere else counts — a
 * test's name, a comment or a variable does not.
 *
 * 1. An argument of an asserting call: see ASSERTING_CALLS (the shared helpers of test/helpers/assert.ts,
 *    and the local matchers already in use), directly or inside an array literal argument.
 * 2. The value of a `code` property: `assert.rejects(p, { code: 'SIMCRED_X' })`.
 * 3. Compared with a `.code`: `assert.equal(err.code, 'SIMCRED_X')`, `e.code === 'SIMCRED_X'`.
 * 4. In the expected array of `assert.deepEqual(codes, ['SIMCRED_X'])`.
 * 5. In a regular expression given to `assert.match`: a CLI's one-line error `/…\(SIMCRED_X\)/`.
 *
 * End-to-end tests are the files that start real roles on loopback: they call startTestSystem,
 * startSystem or startUp (`simcred up`).
 */

/** Calls whose SIMCRED_ arguments are what they assert. */
const ASSERTING_CALLS = new Set([
  // test/helpers/assert.ts
  'rejectsWith', // a promise rejects with a SimcredError of this code
  'expectRefusal', // an HTTP answer is this code, with the code's own status
  'expectAudited', // the operator's audit trail records this code
  // Local matchers in use: test/pki/pki-cli.test.ts, test/aka/aka-flow.test.ts, test/ocsp/fastpath.test.ts,
  // test/ocsp/client.test.ts and test/flow/bad-input.test.ts.
  'assertOneLineError',
  'assertContract', // test/cli/contract.test.ts: a CLI failure's one line ends with this code
  'isCode',
  'code',
  'expectCode',
]);

/**
 * Codes no test can provoke, each with the reason. Keep it short: a code here is a promise in
 * docs/errors.md that nothing checks.
 */
const NOT_PROVOKED: Partial<Record<ErrorCode, string>> = {
  // fastify routes a method a path does not serve to the not-found handler (SIMCRED_NOT_FOUND, as
  // test/flow/refusals-peers.test.ts shows); the code stays published, codes are never reused.
  SIMCRED_METHOD_NOT_ALLOWED: 'never answered: an unserved method is SIMCRED_NOT_FOUND',
};

/**
 * Refusals that must be shown end to end: every code a route declares, the ones the HTTP layer
 * answers on any route, and the checks of a credential package (by the credentialing server before it
 * refers a device, and by the device's module before it decrypts).
 */
const END_TO_END: ErrorCode[] = [
  ...new Set<ErrorCode>([
    ...ALL_ROUTES.flatMap((route) => route.errors),
    // The contract portal's API, and what its session check answers on any account route.
    ...PORTAL_ROUTES.flatMap((route) => route.errors),
    'SIMCRED_UNAUTHENTICATED',
    'SIMCRED_FORBIDDEN_ACCOUNT',
    'SIMCRED_CSRF_INVALID',
    'SIMCRED_DEVICE_DUPLICATE',
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_BODY_TOO_LARGE',
    'SIMCRED_UNSUPPORTED_MEDIA_TYPE',
    'SIMCRED_NOT_FOUND',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_FORBIDDEN_PEER',
    'SIMCRED_DEPENDENCY_UNAVAILABLE',
    'SIMCRED_PACKAGE_MALFORMED',
    'SIMCRED_PACKAGE_SIGNATURE_INVALID',
    'SIMCRED_PACKAGE_CHAIN_INVALID',
    'SIMCRED_PACKAGE_BINDING_MISMATCH',
    'SIMCRED_PACKAGE_EXPIRED',
    'SIMCRED_PACKAGE_DECRYPT_FAILED',
    'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
  ]),
];

const CODE = /\bSIMCRED_[A-Z0-9_]+\b/g;

function testSources(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...testSources(path));
    else if (name.endsWith('.ts')) found.push(path);
  }
  return found;
}

function calleeName(call: ts.CallExpression): string | undefined {
  const callee = call.expression;
  if (ts.isIdentifier(callee)) return callee.text;
  if (ts.isPropertyAccessExpression(callee)) return callee.name.text;
  return undefined;
}

const isAssertCall = (call: ts.CallExpression, ...names: string[]) => {
  const callee = call.expression;
  return (
    ts.isPropertyAccessExpression(callee) &&
    ts.isIdentifier(callee.expression) &&
    callee.expression.text === 'assert' &&
    names.includes(callee.name.text)
  );
};

const isCodeAccess = (node: ts.Node) =>
  (ts.isPropertyAccessExpression(node) && node.name.text === 'code') ||
  (ts.isElementAccessExpression(node) &&
    ts.isStringLiteral(node.argumentExpression) &&
    node.argumentExpression.text === 'code');

/** Skips what does not change a value: parentheses, `as const`, `satisfies`. */
function outer(node: ts.Node): ts.Node {
  let parent = node.parent;
  while (
    parent &&
    (ts.isParenthesizedExpression(parent) || ts.isAsExpression(parent) || ts.isSatisfiesExpression(parent))
  ) {
    node = parent;
    parent = node.parent;
  }
  return node;
}

/** Whether a SIMCRED_ literal at `node` is asserted under the convention above. */
function isAsserted(node: ts.StringLiteralLike | ts.RegularExpressionLiteral): boolean {
  const self = outer(node);
  let parent = self.parent;
  if (ts.isRegularExpressionLiteral(node)) {
    return ts.isCallExpression(parent) && isAssertCall(parent, 'match') && parent.arguments[1] === self;
  }
  // Rule 2: { code: 'SIMCRED_X' }.
  if (ts.isPropertyAssignment(parent) && parent.initializer === self) {
    const name = parent.name;
    return (ts.isIdentifier(name) || ts.isStringLiteral(name)) && name.text === 'code';
  }
  // Rule 3: x.code === 'SIMCRED_X'.
  if (ts.isBinaryExpression(parent)) {
    const op = parent.operatorToken.kind;
    const equality = op === ts.SyntaxKind.EqualsEqualsEqualsToken || op === ts.SyntaxKind.EqualsEqualsToken;
    const other = parent.left === self ? parent.right : parent.left;
    return equality && isCodeAccess(other);
  }
  // Rules 1 and 4 through an array literal argument.
  let inArray = false;
  if (ts.isArrayLiteralExpression(parent)) {
    inArray = true;
    const array = outer(parent);
    parent = array.parent;
    if (!ts.isCallExpression(parent) || !parent.arguments.includes(array as ts.Expression)) return false;
  }
  if (!ts.isCallExpression(parent)) return false;
  const name = calleeName(parent);
  if (name !== undefined && ASSERTING_CALLS.has(name)) return true;
  // Rule 3, assert.equal(err.code, 'SIMCRED_X'); rule 4, assert.deepEqual(codes, ['SIMCRED_X']).
  if (isAssertCall(parent, 'equal', 'strictEqual') && !inArray) {
    return parent.arguments.some((a) => a !== self && isCodeAccess(a));
  }
  return inArray && isAssertCall(parent, 'deepEqual', 'deepStrictEqual');
}

/** The codes a test source asserts, under the convention above. */
function assertedIn(source: ts.SourceFile): Set<string> {
  const codes = new Set<string>();
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteralLike(node) || ts.isRegularExpressionLiteral(node)) {
      const found = node.text.match(CODE) ?? [];
      // A string counts only when it is exactly one code; a regular expression for each code it names.
      const exact = ts.isRegularExpressionLiteral(node) || (found.length === 1 && found[0] === node.text);
      if (found.length > 0 && exact && isAsserted(node)) for (const code of found) codes.add(code);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return codes;
}

const parse = (path: string, text: string) =>
  ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
const assertedCodes = (path: string) => assertedIn(parse(path, readFileSync(path, 'utf8')));

const sources = testSources('test').filter((path) => !path.endsWith('errors-coverage.test.ts'));
const endToEnd = (path: string) =>
  /\b(startTestSystem|startSystem|startUp)\(/.test(readFileSync(path, 'utf8'));
const assertedAnywhere = new Set(sources.flatMap((path) => [...assertedCodes(path)]));
const assertedEndToEnd = new Set(sources.filter(endToEnd).flatMap((path) => [...assertedCodes(path)]));

test('every error code is asserted by some test (or allow-listed with its reason)', () => {
  const missing = Object.keys(ERROR_CODES).filter(
    (code) => !assertedAnywhere.has(code) && !(code in NOT_PROVOKED),
  );
  assert.deepEqual(missing, [], `codes no test asserts: ${missing.join(', ')}`);
});

test('every refusal a server or the device answers is asserted end to end', () => {
  const missing = END_TO_END.filter((code) => !assertedEndToEnd.has(code) && !(code in NOT_PROVOKED));
  assert.deepEqual(missing, [], `refusals no end-to-end test asserts: ${missing.join(', ')}`);
});

test('the allow-list holds only codes that exist and no test asserts', () => {
  for (const code of Object.keys(NOT_PROVOKED)) {
    assert.ok(code in ERROR_CODES, `${code} is not an error code`);
    assert.ok(!assertedAnywhere.has(code), `${code} is asserted: take it off the allow-list`);
  }
});

test('the convention can fail: what counts and what does not', () => {
  const probe = (snippet: string) => [...assertedIn(parse('probe.ts', snippet))];
  // Counted.
  assert.deepEqual(probe(`await rejectsWith(p, 'SIMCRED_A');`), ['SIMCRED_A']);
  assert.deepEqual(probe(`expectRefusal(answer, 'SIMCRED_A', /x/);`), ['SIMCRED_A']);
  assert.deepEqual(probe(`await assert.rejects(p, { code: 'SIMCRED_A' });`), ['SIMCRED_A']);
  assert.deepEqual(probe(`assert.equal(err.code, 'SIMCRED_A');`), ['SIMCRED_A']);
  assert.deepEqual(probe(`assert.ok(e.code === 'SIMCRED_A');`), ['SIMCRED_A']);
  assert.deepEqual(probe(`assert.deepEqual(codes(r), ['SIMCRED_A', 'SIMCRED_B']);`), [
    'SIMCRED_A',
    'SIMCRED_B',
  ]);
  assert.deepEqual(probe(`assert.match(r.stderr, /^simcred: error: .*\\(SIMCRED_A\\)\\n$/);`), ['SIMCRED_A']);
  // Not counted: names, comments, variables, logs, unrelated comparisons.
  assert.deepEqual(probe(`test('refuses with SIMCRED_A', () => {}); // SIMCRED_B`), []);
  assert.deepEqual(probe(`const wanted = 'SIMCRED_A'; console.log('SIMCRED_B');`), []);
  assert.deepEqual(probe(`assert.equal(state.detail, 'SIMCRED_A');`), []);
  assert.deepEqual(probe(`assert.match(text, 'SIMCRED_A');`), []);
  assert.deepEqual(probe(`env = { SIMCRED_PORTS__HSS: '0' };`), []);
});
