// The trusted module's storage: sealed, bound to SK_dsim, written in place in two slots so that a torn
// write never loses the previous state, read back across restarts, and readable from the older layout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SqnGenerator, UsimSqnState } from '../../src/aka/sqn.js';
import { generateVector } from '../../src/aka/vectors.js';
import { sealSecret } from '../../src/crypto/index.js';
import { SlottedSealedFile, STATE_SLOT_BYTES } from '../../src/device/module-storage.js';
import {
  MODULE_STATE_FILE,
  PROGRESS_FILE,
  STATE_FILE,
  TrustedModule,
  USIM_STATE_FILE,
} from '../../src/device/trusted-module.js';
import {
  initPki,
  loadFactoryImage,
  manufactureDevices,
  type LoadedFactoryImage,
} from '../../src/pki/index.js';
import { tempDir } from '../helpers/cli.js';

describe('SlottedSealedFile', () => {
  const dir = tempDir('simcred-slots-');
  after(() => dir.cleanup());
  const key = randomBytes(32);
  let n = 0;
  const fresh = (k = key) => new SlottedSealedFile(join(dir.path, `state-${++n}.bin`), () => k, 'state:x');

  test('the newest record wins, across instances; a missing file reads as nothing', () => {
    const file = fresh();
    assert.equal(file.read(), undefined);
    file.write('one');
    file.write('two');
    file.write('three');
    assert.equal(file.read(), 'three');
    const again = new SlottedSealedFile(file.path, () => key, 'state:x');
    assert.equal(again.read(), 'three');
    again.write('four');
    assert.equal(new SlottedSealedFile(file.path, () => key, 'state:x').read(), 'four');
    assert.ok(!readFileSync(file.path).includes('four'), 'sealed, not in the clear');
  });

  test('a torn or altered newest record leaves the previous one', () => {
    const file = fresh();
    file.write('first'); // slot 0
    file.write('second'); // slot 1
    // The write of 'second' torn: its slot ends mid-record.
    truncateSync(file.path, STATE_SLOT_BYTES + 20);
    assert.equal(new SlottedSealedFile(file.path, () => key, 'state:x').read(), 'first');

    const other = fresh();
    other.write('first');
    other.write('second');
    other.write('third'); // slot 0 again
    const bytes = readFileSync(other.path);
    bytes[30]! ^= 1;
    writeFileSync(other.path, bytes);
    assert.equal(new SlottedSealedFile(other.path, () => key, 'state:x').read(), 'second');
    // The next write goes into the spoilt slot, never over the record that survived.
    const resumed = new SlottedSealedFile(other.path, () => key, 'state:x');
    resumed.read();
    resumed.write('fourth');
    assert.equal(new SlottedSealedFile(other.path, () => key, 'state:x').read(), 'fourth');
  });

  test('another key or another context opens nothing', () => {
    const file = fresh();
    file.write('secret');
    assert.equal(new SlottedSealedFile(file.path, () => randomBytes(32), 'state:x').read(), undefined);
    assert.equal(new SlottedSealedFile(file.path, () => key, 'state:y').read(), undefined);
  });
});

describe('TrustedModule storage', () => {
  const dir = tempDir('simcred-module-');
  let dsimIds: string[] = [];
  before(async () => {
    await initPki(dir.path);
    dsimIds = (await manufactureDevices({ dir: dir.path, count: 4 })).devices.map((d) => d.dsimId);
  });
  after(() => dir.cleanup());

  function challengeFor(image: LoadedFactoryImage, network: SqnGenerator) {
    return generateVector({
      k: Buffer.from(image.image.preliminary.kPimsi, 'hex'),
      opc: Buffer.from(image.image.preliminary.opcPimsi, 'hex'),
      sqn: network.next(),
      amf: Buffer.from('8000', 'hex'),
    });
  }

  test('SQN state and progress survive a restart; cleared progress stays cleared', async () => {
    const image = await loadFactoryImage(dir.path, dsimIds[0]!);
    const module = TrustedModule.fromFactoryImage(image);
    const v = challengeFor(image, new SqnGenerator());
    assert.equal(module.authenticate('preliminary', v.rand, v.autn).kind, 'success');
    const progress = { referral: { ticket: 't', deviceNonce: 'n' }, pkg: 'x'.repeat(5000) };
    module.saveProgress(progress);
    assert.ok(existsSync(join(image.dir, STATE_FILE)));
    assert.ok(
      !existsSync(join(image.dir, MODULE_STATE_FILE)),
      'no subscription: the device still counts as new',
    );

    const restarted = TrustedModule.fromFactoryImage(image);
    assert.deepEqual(restarted.loadProgress(), progress);
    // The challenge it already answered is not accepted again (its SQN was stored).
    assert.equal(restarted.authenticate('preliminary', v.rand, v.autn).kind, 'sync-failure');

    restarted.saveProgress(undefined);
    assert.equal(restarted.loadProgress(), undefined);
    assert.equal(TrustedModule.fromFactoryImage(image).loadProgress(), undefined);
  });

  test('a write that would change nothing is not made', async () => {
    const image = await loadFactoryImage(dir.path, dsimIds[1]!);
    const module = TrustedModule.fromFactoryImage(image);
    module.saveProgress({ step: 6 });
    const path = join(image.dir, STATE_FILE);
    const bytes = readFileSync(path);
    const mtime = statSync(path).mtimeMs;
    module.saveProgress({ step: 6 });
    TrustedModule.fromFactoryImage(image).saveProgress({ step: 6 });
    assert.deepEqual(readFileSync(path), bytes);
    assert.equal(statSync(path).mtimeMs, mtime);
    // Clearing what was never stored writes nothing either.
    const other = await loadFactoryImage(dir.path, dsimIds[2]!);
    TrustedModule.fromFactoryImage(other).saveProgress(undefined);
    assert.ok(!existsSync(join(other.dir, STATE_FILE)));
  });

  test('a module stored in the earlier layout (usim.json, progress.json) is read, then moves to state.bin', async () => {
    const image = await loadFactoryImage(dir.path, dsimIds[3]!);
    const dsimId = image.image.dsimId;
    // The earlier layout, as the module wrote it before.
    const kek = createHash('sha256')
      .update('simcred/v1/module-storage')
      .update(image.privateKey.export({ format: 'der', type: 'pkcs8' }))
      .digest();
    const writeOld = (file: string, purpose: string, value: unknown) =>
      writeFileSync(
        join(image.dir, file),
        JSON.stringify({
          version: 1,
          sealed: sealSecret(Buffer.from(JSON.stringify(value)), { kek, context: `${purpose}:${dsimId}` }),
        }),
      );
    // It had answered challenge v: its SQN is in usim.json.
    const v = challengeFor(image, new SqnGenerator());
    const sqn = new UsimSqnState();
    sqn.accept(v.sqn);
    writeOld(USIM_STATE_FILE, 'usim', { preliminary: sqn.toJSON() });
    writeOld(PROGRESS_FILE, 'progress', { pkg: 'old' });

    const module = TrustedModule.fromFactoryImage(image);
    assert.deepEqual(module.loadProgress(), { pkg: 'old' });
    assert.equal(module.authenticate('preliminary', v.rand, v.autn).kind, 'sync-failure');
    module.saveProgress({ pkg: 'new' });
    assert.ok(existsSync(join(image.dir, STATE_FILE)));
    const restarted = TrustedModule.fromFactoryImage(image);
    assert.deepEqual(restarted.loadProgress(), { pkg: 'new' });
    assert.equal(restarted.authenticate('preliminary', v.rand, v.autn).kind, 'sync-failure');
  });
});
