// Issue 17, abuse limits: one address floods every device-facing route as fast as it can while 200
// devices onboard from other addresses (fleets bound to 127.0.0.2–5; Linux routes all of 127/8 to
// loopback, and the roles listen on 127.0.0.1). The flooder is refused with 429s, the fleet completes
// and attaches, nothing answers 5xx. A stranger asking new AKA challenges for a real device's PIMSI
// (each would advance its SQN and replace its pending challenge) is throttled, and the device still
// gets its grant and attaches; the same at the HSS for its IMSI.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import type { z } from 'zod';
import { runFleet } from '../../src/device/fleet.js';
import { HssStore } from '../../src/hss/store.js';
import { PhlrStore } from '../../src/phlr/store.js';
import { routesOf } from '../../src/protocol/index.js';
import { attachChallenge } from '../../src/protocol/hss.js';
import { phlrChallenge } from '../../src/protocol/phlr.js';
import type { RouteSpec } from '../../src/protocol/route.js';
import { roleDatabase } from '../../src/system/start.js';
import { startTestSystem } from './harness.js';

const FLEET_ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
const DEVICES_PER_ADDRESS = 50;
const FLOODER = '127.0.0.66';
const STRANGER = '127.0.0.77';

/**
 * Limits for this test: per address well above what 50 devices ask of one route, far below what a
 * flood sends; windows of an hour, so none slides during the test. Per identity, the defaults.
 */
const ABUSE = {
  perAddress: { requests: 150, windowSeconds: 3600 },
  perIdentity: { requests: 20, windowSeconds: 3600 },
  perIdentityAndAddress: { requests: 10, windowSeconds: 3600 },
  akaChallenges: { requests: 6, windowSeconds: 3600 },
  akaChallengesPerAddress: { requests: 3, windowSeconds: 3600 },
};

const digits = (n: number) => Array.from(randomBytes(n), (b) => String(b % 10)).join('');
const randomIdentity: Record<string, () => string> = {
  dsimId: () => `DSIM${randomBytes(8).toString('hex').toUpperCase()}`,
  pimsi: () => `00101${digits(10)}`,
  imsi: () => `00102${digits(10)}`,
};

/** A request a stranger could send to `route`: the right shape of identity, the rest missing or junk. */
function floodRequest(route: RouteSpec): { path: string; body: string; type: string } {
  const path = route.path.replace(':sessionId', randomUUID());
  if (route.bodyFormat === 'binary') {
    return { path, body: '<SyncML><junk/></SyncML>', type: route.media?.request ?? 'application/xml' };
  }
  const shape = (route.body as z.ZodObject | undefined)?.shape ?? {};
  const body: Record<string, string> = {};
  for (const field of Object.keys(shape)) body[field] = randomIdentity[field]?.() ?? 'x';
  return { path, body: JSON.stringify(body), type: 'application/json' };
}

interface Tally {
  /** The code of the first 429 the route answered. */
  first429?: { code: string };
  ok: number;
  refused: Map<string, number>;
  serverErrors: string[];
}

test('a flood from one address is refused; 200 devices from other addresses onboard; a stranger cannot run a PIMSI or IMSI', async (ctx) => {
  const t = await startTestSystem({ abuse: ABUSE });
  const root = t.system.pki.operator.root.pem;
  const flooderAgent = new Agent({ localAddress: FLOODER, connect: { ca: [root] }, connections: 4 });
  const strangerAgent = new Agent({ localAddress: STRANGER, connect: { ca: [root] } });
  try {
    const fleetIds = await t.manufacture(FLEET_ADDRESSES.length * DEVICES_PER_ADDRESS);
    const [victim] = await t.manufacture(1);
    const summary = await t.register([...fleetIds, victim!]);
    assert.equal(summary.registered, fleetIds.length + 1);

    // Every device route of every role, at every server the system runs.
    const { urls } = t.system;
    const targets = [
      ...urls.registration.map((url) => ({ url, role: 'registration' as const })),
      { url: urls.credentialing, role: 'credentialing' as const },
      ...urls.provisioning.map((url) => ({ url, role: 'provisioning' as const })),
      { url: urls.hss, role: 'hss' as const },
      { url: urls.phlr, role: 'phlr' as const },
    ].flatMap(({ url, role }) =>
      routesOf(role)
        .filter((route) => route.caller.kind === 'device')
        .map((route) => ({ url, route })),
    );
    assert.ok(targets.length >= 18, `${targets.length} device routes`);

    const tallies = new Map<string, Tally>();
    let flooding = true;
    const flood = async ({ url, route }: (typeof targets)[number]) => {
      const name = `${route.id} at ${url}`;
      const tally: Tally = { ok: 0, refused: new Map(), serverErrors: [] };
      tallies.set(name, tally);
      while (flooding) {
        const { path, body, type } = floodRequest(route);
        const answer = await request(`${url}${path}`, {
          method: route.method,
          dispatcher: flooderAgent,
          headers: { 'content-type': type },
          body,
        });
        const text = await answer.body.text();
        if (answer.statusCode >= 500) tally.serverErrors.push(`${answer.statusCode} ${text.slice(0, 200)}`);
        else if (answer.statusCode < 300) tally.ok++;
        else {
          const code = answer.statusCode === 429 ? (JSON.parse(text) as { code: string }).code : '4xx';
          if (answer.statusCode === 429) tally.first429 ??= { code };
          tally.refused.set(code, (tally.refused.get(code) ?? 0) + 1);
        }
      }
    };
    const flooders = targets.map(flood);

    // The stranger asks the victim's PHLR for new challenges, as fast as it can, 30 times.
    const victimDevice = await t.device(victim!);
    const pimsi = victimDevice.module.pimsi;
    const strangerPhlr = [];
    for (let i = 0; i < 30; i++) {
      const answer = await request(`${urls.phlr}${phlrChallenge.path}`, {
        method: 'POST',
        dispatcher: strangerAgent,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ pimsi }),
      });
      strangerPhlr.push({ status: answer.statusCode, body: (await answer.body.json()) as { code?: string } });
    }
    assert.equal(strangerPhlr.filter((a) => a.status === 200).length, ABUSE.akaChallengesPerAddress.requests);
    assert.deepEqual(
      new Set(strangerPhlr.filter((a) => a.status !== 200).map((a) => a.body.code)),
      new Set(['SIMCRED_AKA_THROTTLED']),
    );
    const phlrStore = await PhlrStore.open(roleDatabase(t.config, 'phlr'));
    try {
      assert.equal(
        await phlrStore.aka.currentSeq(pimsi),
        3,
        'the stranger advanced SQN three times, not thirty',
      );
    } finally {
      await phlrStore.close();
    }

    // The fleet, from four other addresses, while the flood goes on; and the victim itself.
    const [reports, victimResult] = await Promise.all([
      Promise.all(
        FLEET_ADDRESSES.map((localAddress, i) =>
          runFleet({
            pkiDir: t.config.pkiDir,
            dsimIds: fleetIds.slice(i * DEVICES_PER_ADDRESS, (i + 1) * DEVICES_PER_ADDRESS),
            concurrency: 6,
            localAddress,
            maxRetryDelayMs: 2000,
          }),
        ),
      ),
      victimDevice.agent.onboard(),
    ]);
    const outcomes = reports.flatMap((r) => r.outcomes);
    assert.deepEqual(
      outcomes.filter((o) => !o.ok).map((o) => `${o.dsimId}: ${o.error?.code} ${o.error?.message}`),
      [],
    );
    assert.equal(outcomes.length, fleetIds.length);
    assert.match(victimResult.subscription.imsi, /^\d{15}$/);

    // At the HSS, the stranger now asks challenges for the victim's IMSI; the victim attaches again.
    const imsi = victimResult.subscription.imsi;
    const strangerHss = [];
    for (let i = 0; i < 10; i++) {
      const answer = await request(`${urls.hss}${attachChallenge.path}`, {
        method: 'POST',
        dispatcher: strangerAgent,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ imsi }),
      });
      strangerHss.push({ status: answer.statusCode, body: (await answer.body.json()) as { code?: string } });
    }
    assert.equal(strangerHss.filter((a) => a.status === 200).length, ABUSE.akaChallengesPerAddress.requests);
    assert.ok(strangerHss.slice(3).every((a) => a.status === 429 && a.body.code === 'SIMCRED_AKA_THROTTLED'));
    await victimDevice.agent.attach();

    flooding = false;
    await Promise.all(flooders);

    const sent = [...tallies.values()].reduce(
      (n, t) => n + t.ok + [...t.refused.values()].reduce((a, b) => a + b, 0),
      0,
    );
    const limited = [...tallies.values()].reduce(
      (n, t) => n + (t.refused.get('SIMCRED_ADDRESS_RATE_LIMITED') ?? 0),
      0,
    );
    ctx.diagnostic(`flood: ${sent} requests to ${targets.length} routes, ${limited} answered 429`);
    // The flooder was refused on every route, and never saw a 5xx.
    for (const [name, tally] of tallies) {
      assert.deepEqual(tally.serverErrors, [], `${name}: 5xx`);
      assert.equal(tally.first429?.code, 'SIMCRED_ADDRESS_RATE_LIMITED', `${name}: first 429`);
      assert.ok(
        (tally.refused.get('SIMCRED_ADDRESS_RATE_LIMITED') ?? 0) > 0,
        `${name}: no 429 (${JSON.stringify([...tally.refused])}, ${tally.ok} ok)`,
      );
      // What got past the limit: at most the limit, and the one request a malformed-body count
      // (made once its answer is sent) may let in meanwhile.
      const through = tally.ok + (tally.refused.get('4xx') ?? 0);
      assert.ok(through <= ABUSE.perAddress.requests + 1, `${name}: ${through} let through`);
    }

    // Every device provisioned and attached; the HSS holds one active subscriber per device.
    const hss = await HssStore.open(roleDatabase(t.config, 'hss'));
    try {
      assert.equal(await hss.countActiveFor([...fleetIds, victim!]), fleetIds.length + 1);
    } finally {
      await hss.close();
    }
    // No role answered a code its route does not declare, and none failed inside.
    const { servers } = t.system;
    for (const server of [
      servers.hss,
      servers.phlr,
      servers.credentialing,
      ...servers.registration,
      ...servers.provisioning,
    ]) {
      assert.deepEqual(server.undeclaredErrors(), [], server.role);
    }
    assert.doesNotMatch(t.logs(), /"msg":"request failed"/);
  } finally {
    await flooderAgent.close();
    await strangerAgent.close();
    await t.close();
  }
});
