// The CLI's error contract (README "The command line"): every error is one line on stderr, last, ending
// in a stable SIMCRED_ code that is not SIMCRED_INTERNAL, with a non-zero exit, no stack trace and
// nothing half-printed on stdout. Every command of the built program is run with bad arguments, as a
// user would run it (a child process), and each mistake the issue lists has its own case.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { Command } from 'commander';
import { allCommands, buildProgram, commandPath } from '../../src/cli/program.js';
import { ERROR_CODES, type ErrorCode } from '../../src/errors/index.js';
import { readManifest } from '../../src/pki/index.js';
import { runCli, tempDir, type CliResult } from '../helpers/cli.js';
import { startTestSystem, type TestSystem } from '../flow/harness.js';

const ERROR_LINE = /^simcred: error: .* \((SIMCRED_[A-Z_]+)\)$/;

/** What every failing run must show; `expected` pins the code (or the line) where the case knows it. */
function assertContract(r: CliResult, expected?: ErrorCode | RegExp): void {
  const context = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert.ok(r.code !== 0, `exit code 0\n${context}`);
  const lines = r.stderr.split('\n').filter((line) => line.trim() !== '');
  const last = lines[lines.length - 1] ?? '';
  const match = ERROR_LINE.exec(last);
  assert.ok(match, `last stderr line is not the contract's error line\n${context}`);
  const code = match[1]!;
  assert.ok(code in ERROR_CODES, `${code} is not a declared code\n${context}`);
  assert.notEqual(code, 'SIMCRED_INTERNAL', context);
  assert.equal(lines.filter((line) => line.startsWith('simcred: error:')).length, 1, context);
  assert.doesNotMatch(r.stderr, /^\s+at |"stack":/m, `a stack trace\n${context}`);
  assert.equal(r.stdout, '', `partial output on stdout\n${context}`);
  if (typeof expected === 'string') assert.equal(code, expected, context);
  else if (expected) assert.match(last, expected, context);
}

/** Runs at most `n` child processes at once (the suite shares two cores). */
function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  const next = () => {
    if (active >= n) return;
    const start = queue.shift();
    if (start) {
      active++;
      start();
    }
  };
  return (fn) =>
    new Promise((resolve, reject) => {
      queue.push(() =>
        fn()
          .then(resolve, reject)
          .finally(() => {
            active--;
            next();
          }),
      );
      next();
    });
}

/** Files and folders the cases point at. */
interface Fixture {
  dir: string;
  pkiDir: string;
  /** A text file that is neither JSON nor a certificate. */
  junk: string;
  /** A path that does not exist. */
  missing: string;
  /** A real certificate (no AIA: the demo PKI puts none) and its issuer. */
  cert: string;
  issuer: string;
  /** The same certificate's DER with one byte after it. */
  trailing: string;
}

interface Case {
  name: string;
  args: (f: Fixture) => string[];
  env?: Record<string, string>;
  code?: ErrorCode | RegExp;
}

/**
 * Per leaf command, a value that makes no sense for it (the command must refuse it before doing any
 * work). A new command needs its entry here: the walk below fails without one.
 */
const NONSENSE: Record<string, { args: (f: Fixture) => string[]; code: ErrorCode }> = {
  'serve ocsp': { args: (f) => ['--dir', f.pkiDir, '--port', 'eighty'], code: 'SIMCRED_CLI_ARGUMENT' },
  'serve credentialing': {
    args: (f) => ['--dir', f.dir, '--instance', 'first'],
    code: 'SIMCRED_CLI_ARGUMENT',
  },
  'serve registration': {
    args: (f) => ['--dir', f.dir, '--instance', '0'],
    code: 'SIMCRED_CLI_ARGUMENT',
  },
  'serve hss': { args: (f) => ['--config', f.missing], code: 'SIMCRED_FILE_NOT_FOUND' },
  'serve provisioning': { args: (f) => ['--config', f.junk], code: 'SIMCRED_CONFIG_INVALID' },
  'serve phlr': { args: (f) => ['--dir', f.junk], code: 'SIMCRED_PKI_NOT_INITIALISED' },
  'serve portal': { args: (f) => ['--dir', f.missing], code: 'SIMCRED_PKI_NOT_INITIALISED' },
  'deploy haproxy': {
    args: (f) => ['--dir', f.dir, '--instance', 'portal=127.0.0.1'],
    code: 'SIMCRED_CLI_ARGUMENT',
  },
  'portal add-operator': {
    args: (f) => ['--email', 'not-an-email', '--password-file', f.junk],
    code: 'SIMCRED_CLI_ARGUMENT',
  },
  'bench ocsp': { args: () => ['--seconds', 'five'], code: 'SIMCRED_CLI_ARGUMENT' },
  'bench kek': { args: () => ['--kek', 'not-a-key'], code: 'SIMCRED_CONFIG_INVALID' },
  'bench e2e': { args: () => ['--devices', '-3'], code: 'SIMCRED_CLI_ARGUMENT' },
  'bench chaos': { args: () => ['--devices', '10', '--kill', 'dns'], code: 'SIMCRED_CLI_ARGUMENT' },
  'bench register': { args: () => ['--devices', '1e3'], code: 'SIMCRED_CLI_ARGUMENT' },
  'bench notify': { args: () => ['--devices', '10', '--concurrency', '0'], code: 'SIMCRED_CLI_ARGUMENT' },
  'bench portal-upload': { args: () => ['--devices', 'all'], code: 'SIMCRED_CLI_ARGUMENT' },
  'bench scale': { args: () => ['--register-sizes', '10,,20'], code: 'SIMCRED_CLI_ARGUMENT' },
  'hss rekey': { args: (f) => ['--dir', f.dir, '--to', 'not-a-key'], code: 'SIMCRED_CLI_ARGUMENT' },
  'phlr rekey': { args: (f) => ['--dir', f.dir, '--to', 'pkcs11:bogus=1'], code: 'SIMCRED_CLI_ARGUMENT' },
  'pki init': { args: (f) => ['--dir', join(f.junk, 'pki')], code: 'SIMCRED_IO' },
  'pki revoke': {
    args: (f) => ['--dir', f.pkiDir, '--dsim', 'DSIM0000000000000000', '--reason', 'boredom'],
    code: 'SIMCRED_CLI_ARGUMENT',
  },
  'devices manufacture': {
    args: (f) => ['--dir', f.pkiDir, '--count', '1', '--key', 'dsa'],
    code: 'SIMCRED_CLI_ARGUMENT',
  },
  'ocsp check': {
    args: (f) => ['--cert', f.junk, '--issuer', f.issuer, '--url', 'http://127.0.0.1:9/'],
    code: 'SIMCRED_CERT_INVALID',
  },
  'aka vector': { args: () => ['--k', 'not-hex'], code: 'SIMCRED_CLI_ARGUMENT' },
  up: { args: () => ['--workers', 'many'], code: 'SIMCRED_CLI_ARGUMENT' },
  demo: { args: () => ['--devices', '0'], code: 'SIMCRED_CLI_ARGUMENT' },
  'operator register': { args: (f) => ['--file', f.missing], code: 'SIMCRED_FILE_NOT_FOUND' },
  'operator state': {
    args: (f) => ['DSIM0000000000000000', '--config', f.junk],
    code: 'SIMCRED_CONFIG_INVALID',
  },
  'operator revoke': {
    args: (f) => ['DSIM0000000000000000', '--dir', f.missing],
    code: 'SIMCRED_PKI_NOT_INITIALISED',
  },
  'operator groups add': { args: () => ['--name', 'meters', '--cap', 'lots'], code: 'SIMCRED_CLI_ARGUMENT' },
  'operator groups list': { args: (f) => ['--config', f.junk], code: 'SIMCRED_CONFIG_INVALID' },
  'operator groups close': { args: () => ['group-1'], code: 'SIMCRED_CLI_ARGUMENT' },
  'operator suspend': {
    args: (f) => ['DSIM0000000000000000', '--dir', f.missing],
    code: 'SIMCRED_PKI_NOT_INITIALISED',
  },
  'operator resume': {
    args: (f) => ['DSIM0000000000000000', '--config', f.junk],
    code: 'SIMCRED_CONFIG_INVALID',
  },
  'operator delete': {
    args: (f) => ['DSIM0000000000000000', '--config', f.missing],
    code: 'SIMCRED_FILE_NOT_FOUND',
  },
  'operator reprovision': {
    args: (f) => ['DSIM0000000000000000', '--dir', f.missing],
    code: 'SIMCRED_PKI_NOT_INITIALISED',
  },
  'devices run': { args: (f) => ['--dir', f.dir, '--count', 'some'], code: 'SIMCRED_CLI_ARGUMENT' },
  'operator transfer': {
    args: (f) => [
      'DSIM0000000000000000',
      '--to-root',
      f.missing,
      '--to-registration',
      'https://127.0.0.1:7511',
      '--to-ocsp',
      'http://127.0.0.1:7520',
      '--to-hss',
      'https://127.0.0.1:7530',
    ],
    code: 'SIMCRED_FILE_NOT_FOUND',
  },
  'operator orders list': { args: () => ['--limit', '0'], code: 'SIMCRED_CLI_ARGUMENT' },
  'operator orders show': { args: () => ['order-7'], code: 'SIMCRED_CLI_ARGUMENT' },
  'operator orders cancel': {
    args: (f) => ['ord_AAAAAAAAAAAAAAAAAAAAAA', '--config', f.missing],
    code: 'SIMCRED_FILE_NOT_FOUND',
  },
  'operator webhooks add': {
    args: (f) => ['http://192.0.2.7/hook', '--dir', f.dir, '--secret', 'short'],
    code: 'SIMCRED_CLI_ARGUMENT',
  },
  'operator webhooks list': { args: (f) => ['--dir', f.missing], code: 'SIMCRED_PKI_NOT_INITIALISED' },
  'operator webhooks remove': { args: () => ['hook-1'], code: 'SIMCRED_CLI_ARGUMENT' },
  'operator webhooks deliveries': { args: () => ['--limit', 'all'], code: 'SIMCRED_CLI_ARGUMENT' },
  'package seal': {
    args: (f) => [
      '--pki',
      f.pkiDir,
      '--device',
      f.cert,
      '--format',
      'yaml',
      '--in',
      f.junk,
      '--out',
      f.missing,
    ],
    code: 'SIMCRED_CLI_ARGUMENT',
  },
  'package open': {
    args: (f) => ['--pki', f.pkiDir, '--device-key', f.cert, '--in', f.junk],
    code: 'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
  },
};

/** The cases every command gets from the walk of the command tree. */
function walkCases(program: Command): Case[] {
  const cases: Case[] = [];
  for (const command of allCommands(program)) {
    const label = commandPath(command);
    const path = label ? label.split(' ') : [];
    const name = `simcred ${label}`.trim();
    cases.push({
      name: `${name} --no-such-option`,
      args: () => [...path, '--no-such-option'],
      code: 'SIMCRED_CLI_USAGE',
    });
    if (command.commands.length > 0) {
      cases.push({ name: `${name} without a command`, args: () => path, code: 'SIMCRED_CLI_USAGE' });
      continue;
    }
    const required = [
      ...command.options.filter((o) => o.mandatory).map((o) => o.long),
      ...command.registeredArguments.filter((a) => a.required).map((a) => `<${a.name()}>`),
    ];
    if (required.length > 0) {
      cases.push({
        name: `${name} without ${required.join(', ')}`,
        args: () => path,
        code: 'SIMCRED_CLI_USAGE',
      });
    }
    const nonsense = NONSENSE[label];
    if (nonsense) {
      cases.push({
        name: `${name} ${nonsense.args(PLACEHOLDER).join(' ')}`,
        args: (f) => [...path, ...nonsense.args(f)],
        code: nonsense.code,
      });
    }
  }
  return cases;
}

/** Names in test titles (the real paths are known only once the fixture exists). */
const PLACEHOLDER: Fixture = {
  dir: 'DIR',
  pkiDir: 'PKI',
  junk: 'JUNK',
  missing: 'MISSING',
  cert: 'CERT',
  issuer: 'ISSUER',
  trailing: 'CERT+1',
};

/** The mistakes the issue lists, and commander's own errors, one case each. */
const LISTED: Case[] = [
  {
    name: 'an unknown command',
    args: () => ['nonsense'],
    code: /unknown command 'nonsense'.*SIMCRED_CLI_USAGE/,
  },
  { name: 'an unknown subcommand', args: () => ['serve', 'nonsense'], code: 'SIMCRED_CLI_USAGE' },
  { name: 'help for an unknown command', args: () => ['help', 'nonsense'], code: 'SIMCRED_CLI_USAGE' },
  {
    name: 'an option without its value',
    args: () => ['pki', 'init', '--dir'],
    code: /argument missing.*SIMCRED_CLI_USAGE/,
  },
  {
    name: 'too many arguments',
    args: () => ['operator', 'state', 'DSIM0000000000000000', 'surplus'],
    code: /too many arguments.*SIMCRED_CLI_USAGE/,
  },
  {
    name: 'a log level outside the choices',
    args: (f) => ['serve', 'ocsp', '--dir', f.pkiDir, '--log-level', 'verbose'],
    code: /--log-level.*SIMCRED_CLI_ARGUMENT/,
  },
  {
    name: 'a bad log level in the environment',
    args: (f) => ['serve', 'hss', '--dir', f.dir],
    env: { SIMCRED_LOG__LEVEL: 'verbose' },
    code: /log\.level.*SIMCRED_CONFIG_INVALID/,
  },
  {
    name: 'a bad log level in the config file',
    args: (f) => ['serve', 'hss', '--config', join(f.dir, 'loud.json')],
    code: /log\.level.*SIMCRED_CONFIG_INVALID/,
  },
  {
    name: 'a host that does not resolve',
    args: (f) => ['serve', 'ocsp', '--dir', f.pkiDir, '--host', 'no-such-host.invalid', '--port', '0'],
    code: 'SIMCRED_ADDRESS_UNAVAILABLE',
  },
  {
    name: 'an address that is not of this machine',
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to a host.
    args: (f) => ['serve', 'ocsp', '--dir', f.pkiDir, '--host', '192.0.2.1', '--port', '0'],
    code: 'SIMCRED_ADDRESS_UNAVAILABLE',
  },
  {
    name: 'pki init --pkcs11: a URI naming a key rather than a token',
    args: (f) => ['pki', 'init', '--dir', join(f.dir, 'token-pki'), '--pkcs11', 'pkcs11:token=t;object=k'],
    code: /--pkcs11 names a token.*SIMCRED_CLI_ARGUMENT/,
  },
  {
    name: 'ocsp check: a certificate with bytes after it',
    args: (f) => [
      'ocsp',
      'check',
      '--cert',
      f.trailing,
      '--issuer',
      f.issuer,
      '--url',
      'http://127.0.0.1:9/',
    ],
    code: /bytes after.*SIMCRED_CERT_INVALID/,
  },
  {
    name: 'ocsp check: an issuer that is not a certificate',
    args: (f) => ['ocsp', 'check', '--cert', f.cert, '--issuer', f.junk, '--url', 'http://127.0.0.1:9/'],
    code: /--issuer .*SIMCRED_CERT_INVALID/,
  },
  {
    name: 'ocsp check: a missing certificate file',
    args: (f) => ['ocsp', 'check', '--cert', f.missing, '--issuer', f.issuer, '--url', 'http://127.0.0.1:9/'],
    code: /--cert .*SIMCRED_FILE_NOT_FOUND/,
  },
  {
    name: 'ocsp check: a --url that is not http(s)',
    args: (f) => ['ocsp', 'check', '--cert', f.cert, '--issuer', f.issuer, '--url', 'ftp://127.0.0.1/'],
    code: /--url must be an http\(s\) URL.*SIMCRED_CLI_ARGUMENT/,
  },
  {
    name: 'ocsp check: no --url and no AIA in the certificate',
    args: (f) => ['ocsp', 'check', '--cert', f.cert, '--issuer', f.issuer],
    code: /--url is required.*no AIA.*SIMCRED_CLI_USAGE/,
  },
  {
    name: 'portal add-operator: a password file that does not exist',
    args: (f) => ['portal', 'add-operator', '--email', 'ops@example.com', '--password-file', f.missing],
    code: /--password-file.*SIMCRED_FILE_NOT_FOUND/,
  },
  {
    name: 'portal add-operator: a password shorter than 12 characters',
    args: (f) => [
      'portal',
      'add-operator',
      '--email',
      'ops@example.com',
      '--password-file',
      f.junk.replace(/junk\.txt$/, 'short.txt'),
    ],
    code: /12–256 characters.*SIMCRED_CLI_ARGUMENT/,
  },
  {
    name: 'operator register: a line that is not JSON, numbered as in the file',
    args: (f) => ['operator', 'register', '--file', join(f.dir, 'not-json.ndjson')],
    code: /line 3 is not JSON.*SIMCRED_CLI_ARGUMENT/,
  },
];

describe('the CLI error contract, every command', () => {
  let system: TestSystem | undefined;
  const work = tempDir('simcred-contract-');
  const ready = (async (): Promise<Fixture> => {
    // One system in this process: its PKI serves every case, and `operator register` talks to it.
    system = await startTestSystem();
    const pkiDir = system.config.pkiDir;
    const manifest = readManifest(pkiDir);
    const f: Fixture = {
      dir: work.path,
      pkiDir,
      junk: join(work.path, 'junk.txt'),
      missing: join(work.path, 'no-such-file'),
      cert: join(pkiDir, manifest.operator.packageSigner.cert),
      issuer: join(pkiDir, manifest.operator.operatorCa.cert),
      trailing: join(work.path, 'trailing.der'),
    };
    writeFileSync(f.junk, 'hello, not a certificate\n');
    const pem = readFileSync(f.cert, 'utf8');
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    writeFileSync(f.trailing, Buffer.concat([der, Buffer.from([0])]));
    writeFileSync(join(work.path, 'loud.json'), JSON.stringify({ log: { level: 'loud' } }));
    writeFileSync(join(work.path, 'short.txt'), 'too short\n');
    writeFileSync(join(work.path, 'not-json.ndjson'), '{"dsimId":"DSIM0000000000000001"}\n\nnot json\n');
    return f;
  })();
  ready.catch(() => undefined);
  const run = limiter(3);
  /** Starts a case at once (in its batch); the test awaits it. */
  const start = (c: Case): Promise<CliResult> => {
    const result = ready.then((f) =>
      run(() => runCli(c.args(f), { cwd: f.dir, env: { SIMCRED_DEBUG: '', ...c.env } })),
    );
    result.catch(() => undefined);
    return result;
  };

  after(async () => {
    await system?.close();
    work.cleanup();
  });

  const program = buildProgram();
  const leaves = allCommands(program)
    .filter((c) => c.commands.length === 0)
    .map((c) => commandPath(c));

  test('the walk finds every command, and each leaf has a nonsense case', () => {
    assert.ok(leaves.length >= 19, leaves.join(', '));
    assert.deepEqual([...leaves].sort(), Object.keys(NONSENSE).sort());
  });

  for (const c of [...walkCases(program), ...LISTED]) {
    const result = start(c);
    test(c.name, async () => assertContract(await result, c.code));
  }

  describe('a port in use', () => {
    let busy: Server;
    let port: number;
    before(async () => {
      busy = createServer();
      await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
      port = (busy.address() as { port: number }).port;
    });
    after(() => new Promise<void>((resolve) => busy.close(() => resolve())));

    test('serve ocsp: the error line comes last, after the logs the start wrote', async () => {
      const f = await ready;
      const r = await run(() =>
        runCli(['serve', 'ocsp', '--dir', f.pkiDir, '--port', String(port)], { cwd: f.dir }),
      );
      assertContract(r, new RegExp(`127\\.0\\.0\\.1:${port}.*SIMCRED_ADDRESS_IN_USE`));
      const lines = r.stderr.trim().split('\n');
      // The responder logged its issuers before it tried to listen: those lines come first.
      assert.ok(lines.length > 1 && lines.slice(0, -1).every((line) => line.startsWith('{')), r.stderr);
    });

    test('up: the roles already started are closed, and the process exits', async () => {
      const f = await ready;
      const started = await freePort();
      const r = await run(() =>
        runCli(['up', '--dir', join(f.dir, 'up')], {
          cwd: f.dir,
          env: {
            SIMCRED_PKI_DIR: f.pkiDir,
            // OCSP starts first, on a port of its own; the HSS, next, finds its port taken.
            SIMCRED_PORTS__OCSP: String(started),
            SIMCRED_PORTS__HSS: String(port),
          },
        }),
      );
      assertContract(r, 'SIMCRED_ADDRESS_IN_USE');
      assert.match(r.stderr, new RegExp(`OCSP responder listening`), 'the OCSP responder had started');
      // Nothing listens any more on the port the OCSP responder had.
      const again = createServer();
      await new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.listen(started, '127.0.0.1', resolve);
      });
      await new Promise<void>((resolve) => again.close(() => resolve()));
    });
  });

  test("up --workers 2, a port in use: the primary reports the worker's reason, once", async () => {
    const f = await ready;
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const r = await run(() =>
        runCli(['up', '--dir', join(f.dir, 'up-workers'), '--workers', '2'], {
          cwd: f.dir,
          env: {
            SIMCRED_PKI_DIR: f.pkiDir,
            SIMCRED_PORTS__OCSP: String((busy.address() as { port: number }).port),
          },
        }),
      );
      assertContract(r, 'SIMCRED_ADDRESS_IN_USE');
      // The worker that could not start is not replaced, and is not reported as a crash.
      assert.doesNotMatch(r.stderr, /worker died|worker exited/, r.stderr);
    } finally {
      await new Promise<void>((resolve) => busy.close(() => resolve()));
    }
  });

  test('operator register without --json: each rejection with its file line, code and reason', async () => {
    const f = await ready;
    const [dsimId] = await system!.manufacture(1);
    const file = join(f.dir, 'devices.ndjson');
    writeFileSync(
      file,
      [
        JSON.stringify({ dsimId, registrationServer: system!.system.urls.registration[0] }),
        '',
        JSON.stringify({ dsimId: 'DSIM-not-an-id', registrationServer: system!.system.urls.registration[0] }),
        '',
      ].join('\n'),
    );
    const env = { SIMCRED_PORTS__CREDENTIALING: new URL(system!.system.urls.credentialing).port };
    const args = ['operator', 'register', '--file', file, '--dir', system!.config.dataDir];
    const text = await run(() => runCli(args, { env }));
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^registered 1, unchanged 0, rejected 1$/m);
    // Line 3 of the file (the server saw it as the second device), its code and why.
    assert.match(text.stdout, /^\s+3\s+SIMCRED_BAD_REQUEST\s+.*DSIM followed by 16 upper-case hex digits/m);
    const json = await run(() => runCli([...args, '--json'], { env }));
    assert.equal(json.code, 0, json.stderr);
    const summary = JSON.parse(json.stdout.trim().split('\n').pop()!) as {
      unchanged: number;
      rejected: { line: number; code: string }[];
    };
    assert.equal(summary.unchanged, 1);
    assert.deepEqual(
      summary.rejected.map((r) => [r.line, r.code]),
      [[3, 'SIMCRED_BAD_REQUEST']],
    );
  });

  test('help and --version still exit 0', async () => {
    const help = await run(() => runCli(['serve', '--help']));
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /Usage: simcred serve/);
    const version = await run(() => runCli(['--version']));
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});

/** A port free at the time of asking (for a child that must be given a fixed one). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
