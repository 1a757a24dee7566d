import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runFleet } from '../../src/device/fleet.js';
import { HssStore } from '../../src/hss/store.js';
import { Pkcs11Token } from '../../src/keys/pkcs11-token.js';
import { p1363ToDer } from '../../src/keys/signing-key.js';
import { defaultManifest, TOKEN_KEYS } from '../../src/pki/init.js';
import { readManifest, TLS_ROLES } from '../../src/pki/index.js';
import { roleDatabase } from '../../src/system/start.js';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';
import { filesHolding, filesUnder } from '../helpers/key-search.js';
import { makeSoftHsmToken } from '../helpers/softhsm.js';
import { startTestSystem } from './harness.js';

/*
 * Issue #17, "What it must show": every operator signing key in Debian's SoftHSM (a token made in a
 * temporary folder), the whole flow for 200 devices, and then a search of the data folder for any of
 * those keys, and the HSS's and PHLR's KEKs and OP in the token too.
 */

const DEVICES = 200;

/** DER prefixes of an EC P-256 private key: PKCS#8 (RFC 5208/5915) and bare SEC1 ECPrivateKey. */
const PKCS8_P256_PREFIX = Buffer.from(
  '308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420',
  'hex',
);
const SEC1_P256_PREFIX = Buffer.from('30770201010420', 'hex');
const PEM_BLOCK = /-----BEGIN ((?:EC |RSA |ENCRYPTED )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/g;

const spkiHex = (key: KeyObject) => key.export({ format: 'der', type: 'spki' }).toString('hex');

/**
 * Every private key to be found in a folder's files, by the SPKI of its public half: PEM blocks (any
 * PRIVATE KEY label), and PKCS#8 or SEC1 DER of P-256 keys anywhere in any file (SQLite pages,
 * JSON, binary), plain or base64. What is found is where a private key could be read from.
 */
function privateKeysUnder(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const note = (key: KeyObject, where: string) => found.set(spkiHex(createPublicKey(key)), where);
  const scanDer = (bytes: Buffer, where: string) => {
    for (const [prefix, type] of [
      [PKCS8_P256_PREFIX, 'pkcs8'],
      [SEC1_P256_PREFIX, 'sec1'],
    ] as const) {
      for (let at = bytes.indexOf(prefix); at !== -1; at = bytes.indexOf(prefix, at + 1)) {
        const length = type === 'pkcs8' ? 0x8a : 0x79;
        try {
          note(createPrivateKey({ key: bytes.subarray(at, at + length), format: 'der', type }), where);
        } catch {
          // Not a whole key: a coincidence of bytes.
        }
      }
    }
  };
  for (const file of filesUnder(dir)) {
    const bytes = readFileSync(file);
    const text = bytes.toString('latin1');
    for (const match of text.matchAll(PEM_BLOCK)) {
      try {
        note(createPrivateKey(match[0]), file);
      } catch {
        found.set(`unreadable:${file}`, file); // an encrypted or damaged key still counts as found
      }
    }
    scanDer(bytes, file);
    // Base64 of DER inside JSON or text (a key pasted into a config or a row).
    for (const run of text.match(/[A-Za-z0-9+/_-]{120,}={0,2}/g) ?? []) {
      scanDer(Buffer.from(run.replace(/-/g, '+').replace(/_/g, '/'), 'base64'), file);
    }
  }
  return found;
}

test(
  'every operator signing key in SoftHSM: 200 devices onboard and attach, no such key in the data folder',
  { timeout: 600_000 },
  async () => {
    const token = makeSoftHsmToken('simcred-flow');
    // This process opens the token too (the roles run in it); children get token.env.
    process.env.SIMCRED_PKCS11_PIN = token.pin;
    const data = tempDir('simcred-pkcs11-');
    try {
      const pkiDir = join(data.path, 'pki');
      mkdirSync(pkiDir);
      const init = await runCli(['pki', 'init', '--dir', pkiDir, '--pkcs11', token.uri, '--json'], {
        env: token.env,
      });
      assert.equal(init.code, 0, init.stderr);
      const printed = lastJsonLine<{ packageSigner: { key: string }; tls: Record<string, { key: string }> }>(
        init.stdout,
      );
      assert.match(printed.packageSigner.key, /^pkcs11:token=simcred-flow;object=simcred-package-signer;/);

      // The HSS's KEK and OP and the PHLR's KEK in the same token (docs/crypto.md §7): the KEKs made
      // in it, OP a private data object of a value the search below looks for.
      const opened = Pkcs11Token.open(token.uri, token.env);
      opened.generateAes256Key('simcred-hss-kek', Buffer.from([0x11]));
      opened.generateAes256Key('simcred-phlr-kek', Buffer.from([0x12]));
      const op = randomBytes(16);
      opened.createDataObject('simcred-hss-op', op);
      const t = await startTestSystem({
        dataDir: data.path,
        hss: {
          kek: `${token.uri};object=simcred-hss-kek`,
          op: `${token.uri};object=simcred-hss-op;type=data`,
        },
        phlr: { kek: `${token.uri};object=simcred-phlr-kek` },
      });
      try {
        const dsimIds = await t.manufacture(DEVICES);
        const summary = await t.register(dsimIds);
        assert.equal(summary.registered, DEVICES);

        // One device step by step, to keep the package it was delivered (a completed onboarding drops it).
        const first = await t.device(dsimIds[0]!);
        const registration = await first.agent.lookupRegistration();
        const session = await first.agent.openSession(registration);
        const referral = await first.agent.proveSession(registration, session);
        const delivered = await first.agent.collectPackage(referral);
        await first.agent.install(delivered, session.deviceNonce);
        await first.agent.sendReceipt(registration, session.deviceNonce);
        await first.agent.attach();

        const report = await runFleet({
          pkiDir: t.config.pkiDir,
          dsimIds: dsimIds.slice(1),
          concurrency: 16,
        });
        assert.deepEqual(
          report.outcomes.filter((o) => !o.ok).map((o) => o.error),
          [],
        );
        const hss = await HssStore.open(roleDatabase(t.config, 'hss'));
        try {
          assert.equal(await hss.countActiveFor(dsimIds), DEVICES, 'every device attached');
        } finally {
          await hss.close();
        }

        // The delivered package's JWS signature, checked by OpenSSL over the JWS signing input
        // (RFC 7515 §5.2) with the package signer certificate the package carries in x5c.
        const [header, payload, signature] = delivered.split('.') as [string, string, string];
        const { alg, x5c } = JSON.parse(Buffer.from(header, 'base64url').toString()) as {
          alg: string;
          x5c: string[];
        };
        assert.equal(alg, 'ES256');
        const signerCert = new X509Certificate(Buffer.from(x5c[0]!, 'base64'));
        const manifest = readManifest(pkiDir);
        const signerOnDisk = new X509Certificate(
          readFileSync(join(pkiDir, manifest.operator.packageSigner.cert)),
        );
        assert.equal(signerCert.fingerprint256, signerOnDisk.fingerprint256);
        const work = join(data.path, 'openssl');
        mkdirSync(work);
        writeFileSync(
          join(work, 'signer.pub.pem'),
          signerCert.publicKey.export({ format: 'pem', type: 'spki' }),
        );
        writeFileSync(join(work, 'signature.der'), p1363ToDer(Buffer.from(signature, 'base64url')));
        // OpenSSL verifies the signing input with the signer's public key, and refuses an altered one.
        const opensslVerifies = (input: string) => {
          writeFileSync(join(work, 'input'), input);
          const args = ['dgst', '-sha256', '-verify', join(work, 'signer.pub.pem')];
          try {
            return /Verified OK/.test(
              execFileSync(
                'openssl',
                [...args, '-signature', join(work, 'signature.der'), join(work, 'input')],
                {
                  encoding: 'utf8',
                  stdio: 'pipe',
                },
              ),
            );
          } catch {
            return false;
          }
        };
        assert.equal(opensslVerifies(`${header}.${payload}`), true);
        assert.equal(opensslVerifies(`${header}.${payload}x`), false);

        // The search. Token-held keys: the CAs (both roots, both issuing CAs), both OCSP signers and
        // the package signer. Their certificates are in the folder; their keys must not be.
        const m = manifest.manufacturer;
        const o = manifest.operator;
        const tokenHeld = [
          m.root,
          m.deviceCa,
          m.deviceCaOcsp,
          o.root,
          o.operatorCa,
          o.operatorCaOcsp,
          o.packageSigner,
        ];
        for (const paths of tokenHeld)
          assert.match(paths.key, /^pkcs11:/, `${paths.cert}'s key is not in the token`);
        const publicOf = (cert: string) =>
          spkiHex(new X509Certificate(readFileSync(join(pkiDir, cert))).publicKey);
        const found = privateKeysUnder(data.path);
        // Positive control: the same search finds the TLS keys (files by design) and device keys.
        for (const role of TLS_ROLES) {
          assert.ok(found.has(publicOf(o.tls[role].cert)), `the search missed the ${role} TLS key`);
        }
        assert.ok(found.size >= TLS_ROLES.length + DEVICES, 'the search missed device keys');
        for (const paths of tokenHeld) {
          assert.ok(
            !found.has(publicOf(paths.cert)),
            `the key of ${paths.cert} is in ${found.get(publicOf(paths.cert))}`,
          );
        }
        // Nor is there a key file where a file-key PKI keeps them (operator/package-signer.key.pem, …).
        const fileLayout = defaultManifest(new Date());
        const fl = fileLayout;
        const fileKeys = [
          fl.manufacturer.root,
          fl.manufacturer.deviceCa,
          fl.manufacturer.deviceCaOcsp,
          fl.operator.root,
          fl.operator.operatorCa,
          fl.operator.operatorCaOcsp,
          fl.operator.packageSigner,
        ].map((p) => p.key);
        assert.equal(fileKeys.length, tokenHeld.length);
        assert.deepEqual(
          fileKeys.filter((key) => existsSync(join(pkiDir, key))),
          [],
          'a key file of a token-held key',
        );
        // Nor the KEKs or OP: the HSS and PHLR wrote no secrets.json keys, sealed every K/OPc in the
        // token (sb2), and OP's value is in no file.
        for (const role of ['hss', 'phlr']) {
          const file = join(data.path, role, 'secrets.json');
          const held = existsSync(file) ? Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object) : [];
          assert.deepEqual(held, [], `${file} holds ${held.join(', ')}`);
        }
        assert.deepEqual(filesHolding(data.path, op), [], 'OP is in a file');
        const sealed = await HssStore.open(roleDatabase(t.config, 'hss'));
        try {
          const records = await sealed.resealable().sealedSecretsAfter('', DEVICES + 10);
          assert.equal(records.length, DEVICES);
          assert.ok(records.every((r) => r.kSealed.startsWith('sb2.') && r.opcSealed.startsWith('sb2.')));
        } finally {
          await sealed.close();
        }

        // OpenSC's pkcs11-tool lists the keys by label, each never extractable.
        const listing = token.pkcs11Tool('--list-objects');
        for (const { label } of Object.values(TOKEN_KEYS)) {
          assert.match(
            listing,
            new RegExp(
              `Private Key Object; EC[^\\n]*\\n(?:\\s+[^\\n]*\\n)*?\\s+label:\\s+${label}\\n(?:\\s+[^\\n]*\\n)*?\\s+Access:\\s+sensitive, always sensitive, never extractable`,
            ),
            `${label} is not listed as a never-extractable private key`,
          );
        }
        for (const label of ['simcred-hss-kek', 'simcred-phlr-kek']) {
          assert.match(
            listing,
            new RegExp(
              `Secret Key Object; AES length 32[^\\n]*\\n(?:\\s+[^\\n]*\\n)*?\\s+label:\\s+${label}\\n(?:\\s+[^\\n]*\\n)*?\\s+Access:\\s+sensitive, always sensitive, never extractable`,
            ),
            `${label} is not listed as a never-extractable AES key`,
          );
        }
        assert.match(listing, /Data object[\s\S]*label:\s+'?simcred-hss-op/);
      } finally {
        await t.close();
      }
    } finally {
      data.cleanup();
      token.remove();
      delete process.env.SIMCRED_PKCS11_PIN;
    }
  },
);
