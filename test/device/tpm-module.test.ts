// The TPM 2.0 trusted module (src/device/tpm-module.ts) on Debian's swtpm: devices made with their key
// in the TPM onboard through the whole flow against real servers and attach; their device keys are in
// no file; the package format and checks are the software module's; the TPM-derived Z opens what the
// software key opens; the sealed storage opens in that TPM only.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  openAnyPackage,
  sealPackageAs,
  verifyReceipt,
  type Credentials,
  type ExternalDeviceKey,
} from '../../src/crypto/index.js';
import { runFleet } from '../../src/device/fleet.js';
import { Tpm, SRK_HANDLE, devicePublicKeyOfBlob, sha256 } from '../../src/device/tpm.js';
import { TpmModule } from '../../src/device/tpm-module.js';
import { MODULE_STATE_FILE, STATE_FILE } from '../../src/device/trusted-module.js';
import { verifyDeviceMessage } from '../../src/crypto/device-signature.js';
import { lookupProofMessage } from '../../src/crypto/lookup-proof.js';
import {
  loadFactoryImage,
  loadPki,
  manufactureDevices,
  type LoadedFactoryImage,
} from '../../src/pki/index.js';
import { startTestSystem, type TestSystem } from '../flow/harness.js';
import { startSwtpm, type ThrowawayTpm } from '../helpers/swtpm.js';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';

const CREDENTIALS: Credentials = {
  imsi: '001019999999999',
  k: '465b5ce8b199b49faa5f0a2ee238a6bc',
  opc: 'cd63cb71954a9f4e48a5994e37a02baf',
  amf: '8000',
  sqn: '000000000020',
  plmn: '00101',
};

describe('TPM 2.0 trusted module on swtpm', () => {
  let tpm: ThrowawayTpm;
  let other: ThrowawayTpm;
  let t: TestSystem;
  let dsimIds: string[];
  const images: LoadedFactoryImage[] = [];

  before(async () => {
    [tpm, other] = await Promise.all([startSwtpm(), startSwtpm()]);
    t = await startTestSystem();
    const made = await manufactureDevices({
      dir: t.config.pkiDir,
      count: 5,
      registrationServers: t.system.urls.registration,
      servers: { phlr: t.system.urls.phlr, ocsp: t.system.urls.ocsp, hss: t.system.urls.hss },
      packageFormats: ['xml', 'jose'],
      module: 'tpm',
      tpm: tpm.tcti,
    });
    dsimIds = made.devices.map((d) => d.dsimId);
    for (const dsimId of dsimIds) images.push(await loadFactoryImage(t.config.pkiDir, dsimId));
  });
  after(async () => {
    await t?.close();
    await tpm?.stop();
    await other?.stop();
  });

  test('5 TPM devices onboard through the whole flow and attach', async () => {
    const summary = await t.register(dsimIds);
    assert.equal(summary.registered, 5);
    const report = await runFleet({ pkiDir: t.config.pkiDir, dsimIds, concurrency: 5 });
    assert.deepEqual(
      report.outcomes.filter((o) => !o.ok).map((o) => o.error),
      [],
    );
    assert.equal(new Set(report.outcomes.map((o) => o.imsi)).size, 5, 'distinct IMSIs');
    for (const dsimId of dsimIds) {
      const subscriber = await t.subscriber(dsimId);
      assert.equal(subscriber?.state, 'active', `${dsimId} attached with its downloaded credentials`);
    }
    // The module stored its subscription, sealed with the TPM's storage key: it reopens from the TPM.
    for (const image of images) {
      const module = await TpmModule.open(image);
      assert.equal(module.subscription?.imsi, (await t.subscriber(image.image.dsimId))?.imsi);
    }
  });

  test('the device keys are in no file: the factory image holds the TPM blobs only', async () => {
    for (const image of images) {
      assert.equal(image.module, 'tpm');
      assert.equal(image.image.privateKey, undefined);
      assert.throws(() => image.privateKey, { code: 'SIMCRED_PKI_INCONSISTENT' });
      const files = readdirSync(image.dir);
      assert.ok(!files.some((f) => f.endsWith('.key.pem')), files.join(', '));
      for (const file of files) {
        const bytes = readFileSync(join(image.dir, file));
        assert.ok(!/PRIVATE KEY/.test(bytes.toString('latin1')), `${file} holds no private key PEM`);
        assert.throws(() => createPrivateKey({ key: bytes, format: 'der', type: 'pkcs8' }), file);
      }
      // The certified key is the TPM's: the public blob's point, certified from a CSR signed in the TPM.
      const keyPublic = Buffer.from(image.image.tpm!.keyPublic, 'base64');
      const fromBlob = createPublicKey({
        key: devicePublicKeyOfBlob(keyPublic).spkiDer,
        format: 'der',
        type: 'spki',
      });
      assert.ok(fromBlob.equals(image.certificate.publicKey));
      // And the TPM was told so: fixedTPM | fixedParent | sensitiveDataOrigin (not duplicable, made inside).
      const { attributes } = devicePublicKeyOfBlob(keyPublic);
      assert.equal(attributes & (0x2 | 0x10 | 0x20), 0x2 | 0x10 | 0x20);
    }
    // The folder's files are what the software module's are, minus the key file.
    assert.deepEqual(
      readdirSync(images[0]!.dir).sort(),
      ['device.crt.pem', 'factory.json', MODULE_STATE_FILE, STATE_FILE].sort(),
    );
  });

  test('a TPM module signs what the protocol checks, and opens and refuses packages as the software one does', async () => {
    const image = images[0]!;
    const module = await TpmModule.open(image, { persist: false });
    const challenge = randomBytes(32);
    const lookup = await module.signLookup(challenge);
    assert.equal(lookup.alg, 'ES256');
    assert.ok(
      verifyDeviceMessage(
        image.certificate.publicKey,
        lookupProofMessage({ challenge, dsimId: module.dsimId }),
        lookup,
      ),
    );

    const pki = await loadPki(t.config.pkiDir);
    const operatorRoots = [
      new (await import('../../src/crypto/x509.js')).X509Certificate(pki.operator.root.pem),
    ];
    const deviceNonce = randomBytes(32);
    const seal = (format: 'jose' | 'xml', devicePublicKey = image.certificate.publicKey) =>
      sealPackageAs(format, {
        credentials: CREDENTIALS,
        dsimId: module.dsimId,
        deviceNonce,
        devicePublicKey,
        operatorSigningKey: pki.operator.packageSigner.privateKey(),
        operatorChainPem: [pki.operator.packageSigner.pem, pki.operator.operatorCa.pem],
        ttlSeconds: 600,
      });
    const install = (text: string) =>
      module.installPackage(text, { deviceNonce, operatorRoots, checkSigner: async () => undefined });
    for (const format of ['jose', 'xml'] as const) {
      const text = await seal(format);
      assert.equal((await install(text)).imsi, CREDENTIALS.imsi, format);
      const receipt = await module.receipt(deviceNonce);
      const claims = await verifyReceipt(receipt, image.certificate.publicKey, {
        dsimId: module.dsimId,
        packageId: module.subscription!.packageId,
        deviceNonce,
      });
      assert.equal(claims.status, 'installed');
      // A byte changed in the signed package: refused before the TPM is asked anything.
      const tampered = format === 'jose' ? flipInJws(text) : text.replace('<PackageId>', '<PackageId>x');
      await assert.rejects(install(tampered), (err: { code?: string }) =>
        ['SIMCRED_PACKAGE_SIGNATURE_INVALID', 'SIMCRED_PACKAGE_MALFORMED'].includes(err.code ?? ''),
      );
      // Sealed to another key, genuinely signed: the TPM's key cannot open it.
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
      await assert.rejects(install(await seal(format, stranger)), { code: 'SIMCRED_PACKAGE_DECRYPT_FAILED' });
      // Another session's nonce: the binding check, as in software.
      await assert.rejects(
        module.installPackage(text, {
          deviceNonce: randomBytes(32),
          operatorRoots,
          checkSigner: async () => undefined,
        }),
        { code: 'SIMCRED_PACKAGE_BINDING_MISMATCH' },
      );
    }
  });

  test('the TPM-derived Z path opens the same package as the software key', async () => {
    // A software key imported into the TPM (tpm2_import under the SRK), so both paths hold one key.
    const dir = tempDir('simcred-tpm-import-');
    try {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      writeFileSync(join(dir.path, 'key.pem'), privateKey.export({ format: 'pem', type: 'sec1' }));
      execFileSync(
        'tpm2_import',
        [
          '-Q',
          '-C',
          SRK_HANDLE,
          '-G',
          'ecc',
          '-i',
          join(dir.path, 'key.pem'),
          '-u',
          join(dir.path, 'k.pub'),
          '-r',
          join(dir.path, 'k.priv'),
        ],
        { env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti } },
      );
      // tpm2_import leaves its session loaded (no resource manager on swtpm's socket).
      execFileSync('tpm2_flushcontext', ['-t', '-l', '-s'], {
        env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti },
      });
      const blobs = {
        publicBlob: readFileSync(join(dir.path, 'k.pub')),
        privateBlob: readFileSync(join(dir.path, 'k.priv')),
      };
      const device = new Tpm(tpm.tcti);
      let agreements = 0;
      const inTpm: ExternalDeviceKey = {
        kind: 'ec-p256',
        signEs256: (message) => device.signDigest(blobs, sha256(message)),
        ecdhZ: (point) => {
          agreements += 1;
          return device.ecdhZ(blobs, point);
        },
      };
      const pki = await loadPki(t.config.pkiDir);
      const nonce = randomBytes(32);
      const options = {
        operatorRoots: [pki.operator.root.pem],
        dsimId: 'DSIM00000000000000AA',
        deviceNonce: nonce,
      };
      for (const format of ['jose', 'xml'] as const) {
        const text = await sealPackageAs(format, {
          credentials: CREDENTIALS,
          dsimId: options.dsimId,
          deviceNonce: nonce,
          devicePublicKey: publicKey,
          operatorSigningKey: pki.operator.packageSigner.privateKey(),
          operatorChainPem: [pki.operator.packageSigner.pem, pki.operator.operatorCa.pem],
          ttlSeconds: 600,
        });
        const software = await openAnyPackage(text, { ...options, devicePrivateKey: privateKey });
        const tpmOpened = await openAnyPackage(text, { ...options, devicePrivateKey: inTpm });
        assert.deepEqual(tpmOpened, software, format);
        assert.deepEqual(tpmOpened.credentials, CREDENTIALS);
      }
      assert.equal(agreements, 2, 'Z came from the TPM, once per package');
    } finally {
      dir.cleanup();
    }
  });

  test('the sealed storage and the device key are of no use in another TPM', async () => {
    const image = images[1]!;
    // A fresh TPM has no SRK at the handle; one with its own SRK fails the blobs' integrity check.
    await assert.rejects(TpmModule.open(image, { tcti: other.tcti }), { code: 'SIMCRED_TPM_REFUSED' });
    await new Tpm(other.tcti).ensureStorageRootKey();
    await assert.rejects(
      TpmModule.open(image, { tcti: other.tcti }),
      (err: { code?: string; message?: string }) => {
        assert.equal(err.code, 'SIMCRED_TPM_REFUSED');
        assert.match(err.message ?? '', /integrity/);
        return true;
      },
    );
    const keyBlobs = {
      publicBlob: Buffer.from(image.image.tpm!.keyPublic, 'base64'),
      privateBlob: Buffer.from(image.image.tpm!.keyPrivate, 'base64'),
    };
    await assert.rejects(new Tpm(other.tcti).signDigest(keyBlobs, sha256(Buffer.from('x'))), {
      code: 'SIMCRED_TPM_REFUSED',
    });
    // Its own TPM still opens it; an unreachable one is a 503-class outage.
    assert.ok((await TpmModule.open(image)).subscription);
    await assert.rejects(TpmModule.open(image, { tcti: 'swtpm:host=127.0.0.1,port=1' }), {
      code: 'SIMCRED_TPM_UNAVAILABLE',
    });
  });
});

describe('simcred devices manufacture --module tpm', () => {
  let tpm: ThrowawayTpm;
  const dir = tempDir('simcred-tpm-cli-');
  before(async () => {
    tpm = await startSwtpm();
    const init = await runCli(['pki', 'init', '--dir', dir.path, '--json']);
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await tpm?.stop();
    dir.cleanup();
  });

  test('makes TPM devices with no key file; --tpm without --module tpm, or the reverse, is refused', async () => {
    const made = await runCli([
      'devices',
      'manufacture',
      '--dir',
      dir.path,
      '--count',
      '2',
      '--module',
      'tpm',
      '--tpm',
      tpm.tcti,
      '--json',
    ]);
    assert.equal(made.code, 0, made.stderr);
    const { devices } = lastJsonLine<{ devices: { dsimId: string; privateKey?: string }[] }>(made.stdout);
    assert.equal(devices.length, 2);
    for (const device of devices) {
      assert.equal(device.privateKey, undefined);
      const image = await loadFactoryImage(dir.path, device.dsimId);
      assert.equal(image.image.module, 'tpm');
      assert.equal(image.image.tpm?.tcti, tpm.tcti);
    }
    for (const args of [
      ['--module', 'tpm'],
      ['--tpm', tpm.tcti],
      ['--module', 'hsm', '--tpm', tpm.tcti],
      ['--module', 'tpm', '--tpm', tpm.tcti, '--key', 'rsa'],
    ]) {
      const refused = await runCli(['devices', 'manufacture', '--dir', dir.path, '--count', '1', ...args]);
      assert.notEqual(refused.code, 0, args.join(' '));
      assert.match(refused.stderr, /SIMCRED_CLI_ARGUMENT/, args.join(' '));
    }
    // An unreachable TPM: the factory stops with the TPM's code, before any device is written.
    const down = await runCli([
      'devices',
      'manufacture',
      '--dir',
      dir.path,
      '--count',
      '1',
      '--module',
      'tpm',
      '--tpm',
      'swtpm:host=127.0.0.1,port=1',
    ]);
    assert.match(down.stderr, /SIMCRED_TPM_UNAVAILABLE/);
  });
});

/** One character of a compact JWS's payload changed (still base64url). */
function flipInJws(jws: string): string {
  const [h, p, s] = jws.split('.') as [string, string, string];
  const i = Math.floor(p.length / 2);
  return `${h}.${p.slice(0, i)}${p[i] === 'A' ? 'B' : 'A'}${p.slice(i + 1)}.${s}`;
}
