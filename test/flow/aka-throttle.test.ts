// The real device behind a throttled PIMSI: a stranger has used up every new challenge the PHLR
// allows for the PIMSI in the window, so the device's own challenge is refused with 429 and
// Retry-After; the device waits that long, as it does after a 503, asks again and attaches.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { DeviceAgent } from '../../src/device/agent.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { loadFactoryImage } from '../../src/pki/index.js';
import { phlrChallenge } from '../../src/protocol/phlr.js';
import { startTestSystem } from './harness.js';

const STRANGER = '127.0.0.77';
/** A stranger at one address may take the whole allowance here, so the device must wait for the window. */
const WINDOW_SECONDS = 10;
const ABUSE = {
  akaChallenges: { requests: 3, windowSeconds: WINDOW_SECONDS },
  akaChallengesPerAddress: { requests: 3, windowSeconds: WINDOW_SECONDS },
};

test('a device refused a challenge (SIMCRED_AKA_THROTTLED) waits Retry-After and attaches', async () => {
  const t = await startTestSystem({ abuse: ABUSE });
  const stranger = new Agent({ localAddress: STRANGER, connect: { ca: [t.system.pki.operator.root.pem] } });
  try {
    const [dsimId] = await t.manufacture(1);
    await t.register([dsimId!]);
    const image = await loadFactoryImage(t.config.pkiDir, dsimId!);
    const module = TrustedModule.fromFactoryImage(image, { persist: false });

    // The stranger asks new challenges for the device's PIMSI until the PHLR refuses.
    let refusal: { code?: string; retryAfter?: string | string[] } | undefined;
    for (let i = 0; i < 10 && !refusal; i++) {
      const answer = await request(`${t.system.urls.phlr}${phlrChallenge.path}`, {
        method: 'POST',
        dispatcher: stranger,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ pimsi: module.pimsi }),
      });
      const body = (await answer.body.json()) as { code?: string };
      if (answer.statusCode === 429) refusal = { code: body.code, retryAfter: answer.headers['retry-after'] };
    }
    assert.equal(refusal?.code, 'SIMCRED_AKA_THROTTLED');
    assert.ok(Number(refusal?.retryAfter) >= 1);

    // The device, from 127.0.0.1, meets the same exhausted allowance, waits and attaches.
    const agent = DeviceAgent.fromFactoryImage(image, {
      module,
      client: t.deviceClient,
      maxAttempts: 5,
      maxRetryDelayMs: (WINDOW_SECONDS * 2 + 1) * 1000,
    });
    const result = await agent.onboard();
    assert.ok(result.retries >= 1, 'the device was refused once and tried again');
    assert.equal((await t.subscriber(dsimId!))?.state, 'active', 'attached');
  } finally {
    await stranger.close();
    await t.close();
  }
});
