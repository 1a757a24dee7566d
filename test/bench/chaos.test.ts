import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ChaosResult } from '../../src/bench/chaos.js';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';

// `simcred bench chaos` at a small size, on SQLite and on PostgreSQL: while a fleet onboards, every
// process of the roles below is SIGKILLed at least once at a random moment and started again. Nothing
// may be lost or doubled: every device provisioned and attached, one IMSI and one HSS subscriber each.
// (docs/benchmarks.md has the same run at 2,000 devices.)

const KILLED = 'credentialing,hss,provisioning,registration,ocsp,phlr';
/** The processes of those roles (registration and provisioning run two instances each). */
const PROCESSES = [
  'credentialing',
  'hss',
  'ocsp',
  'phlr',
  'provisioning-1',
  'provisioning-2',
  'registration-1',
  'registration-2',
];
const DEVICES = 80;
const KILLS = 10;

async function chaosRun(extra: string[]): Promise<ChaosResult> {
  const dir = tempDir('simcred-chaos-');
  try {
    const r = await runCli([
      'bench',
      'chaos',
      '--devices',
      String(DEVICES),
      '--kills',
      String(KILLS),
      '--every',
      '400',
      '--concurrency',
      '24',
      '--kill',
      KILLED,
      '--dir',
      dir.path,
      '--json',
      ...extra,
    ]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /simcred bench chaos — 80 devices/);
    return lastJsonLine<ChaosResult>(r.stdout);
  } finally {
    dir.cleanup();
  }
}

function assertNothingLostNothingDoubled(r: ChaosResult): void {
  assert.equal(r.devices, DEVICES);
  assert.equal(r.provisioned, DEVICES, JSON.stringify(r.failures));
  assert.equal(r.attached, DEVICES);
  assert.equal(r.distinctImsis, DEVICES);
  assert.equal(r.hssSubscribers, DEVICES);
  assert.equal(r.duplicates, 0);
  assert.equal(r.kills, KILLS);
  // Rounds of shuffled victims: every process was killed once before any was killed twice.
  assert.deepEqual(Object.keys(r.killsByProcess).sort(), PROCESSES);
  assert.equal(
    Object.values(r.killsByProcess).reduce((a, b) => a + b, 0),
    KILLS,
  );
  // The kills did hit the fleet: devices met a dead process and went over a step again.
  assert.ok(r.retries > 0, 'no device had to retry: the kills missed the fleet');
}

describe('simcred bench chaos', { concurrency: false }, () => {
  let postgres: ThrowawayPostgres;

  before(async () => {
    postgres = await startPostgres();
  });

  after(() => postgres?.stop());

  it('on SQLite: every role process SIGKILLed mid-fleet, nothing lost, nothing doubled', async () => {
    const r = await chaosRun([]);
    assert.equal(r.database, 'sqlite');
    assertNothingLostNothingDoubled(r);
  });

  it('on PostgreSQL: the same', async () => {
    const r = await chaosRun(['--postgres', postgres.url]);
    assert.equal(r.database, 'postgres');
    assertNothingLostNothingDoubled(r);
  });

  it('an unknown role to kill is refused before anything starts', async () => {
    const r = await runCli(['bench', 'chaos', '--devices', '5', '--kill', 'hss,dns']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /dns is not one of credentialing, hss/);
    assert.match(r.stderr, /SIMCRED_CLI_ARGUMENT/);
  });
});
