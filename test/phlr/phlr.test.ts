import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { Milenage } from '../../src/aka/milenage.js';
import { joinSqn } from '../../src/aka/sqn.js';
import { generateVector } from '../../src/aka/vectors.js';
import * as x509 from '../../src/crypto/x509.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { HssStore } from '../../src/hss/store.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { ocspStatusChecker } from '../../src/ocsp/checker.js';
import {
  GRANT_ISSUER,
  GRANT_SCOPE,
  GRANT_TYPE,
  grantKeyId,
  signGrant,
  verifyGrant,
} from '../../src/phlr/grant.js';
import { PhlrStore } from '../../src/phlr/store.js';
import { loadFactoryImage, loadPki, type LoadedFactoryImage } from '../../src/pki/index.js';
import { attachChallenge, attachResponse } from '../../src/protocol/hss.js';
import { importSubscribers, phlrChallenge, phlrResponse, phlrResync } from '../../src/protocol/phlr.js';
import { roleDatabase } from '../../src/system/start.js';
import { startTestSystem, type TestSystem } from '../flow/harness.js';
import { rejectsWith } from '../helpers/assert.js';
import { ManualClock } from '../helpers/clock.js';

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

describe('preliminary HLR: AKA on preliminary credentials and the access grant (step 1)', () => {
  let t: TestSystem;
  let devices: string[];
  let next = 0;
  const fresh = () => devices[next++]!;

  before(async () => {
    t = await startTestSystem({ registration: { ttlSeconds: 3600 } });
    // Made after the PHLR started: it imports them when their PIMSIs first arrive.
    devices = await t.manufacture(16);
    await t.register(devices);
  });
  after(async () => {
    await t.close();
  });

  /** A device agent around a given module (e.g. one whose K was altered). */
  function agentFor(image: LoadedFactoryImage, module: TrustedModule): DeviceAgent {
    return new DeviceAgent({
      module,
      client: t.deviceClient,
      registrationServer: image.image.registrationServer,
      phlrUrl: t.system.urls.phlr,
      hssUrl: t.system.urls.hss,
      operatorRoots: [new x509.X509Certificate(image.image.trustRoots.operator)],
      ocsp: ocspStatusChecker({ urls: [t.system.urls.ocsp] }),
      maxAttempts: 1,
    });
  }

  test('a correct RES buys a signed, short-lived, registration-only grant for this device', async () => {
    const dsimId = fresh();
    const { agent, image } = await t.device(dsimId);
    const { grant, expiresAt } = await agent.attachPreliminary();
    const header = decodeProtectedHeader(grant);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.typ, GRANT_TYPE);
    const pki = await loadPki(t.config.pkiDir);
    assert.equal(header.kid, grantKeyId(pki.operator.tls.phlr.certificate.publicKey));
    assert.equal(header.x5c?.[0], pki.operator.tls.phlr.der.toString('base64'));
    const claims = decodeJwt(grant);
    assert.equal(claims.iss, GRANT_ISSUER);
    assert.equal(claims.sub, image.image.preliminary.pimsi);
    assert.equal(claims.dsimId, dsimId);
    assert.equal(claims.scope, GRANT_SCOPE);
    assert.equal(claims.exp! - claims.iat!, 600);
    assert.equal(Date.parse(expiresAt), claims.exp! * 1000);
    assert.match(String(claims.jti), /^[0-9a-f-]{36}$/);
    // No key material in the grant.
    assert.ok(
      !Buffer.from(grant.split('.')[1]!, 'base64url').toString().includes(image.image.preliminary.kPimsi),
    );
    // And it opens the registration server.
    const registration = await agent.lookupRegistration(grant);
    assert.ok(registration.registrationNonce);
  });

  test('wrong RES: refused, no grant, and the challenge is used up', async () => {
    const dsimId = fresh();
    const { module } = await t.device(dsimId);
    const pimsi = module.pimsi;
    const url = t.system.urls.phlr;
    const challenge = await t.deviceClient.call(url, phlrChallenge, { body: { pimsi } });
    await rejectsWith(
      t.deviceClient.call(url, phlrResponse, { body: { pimsi, res: hex(8) } }),
      'SIMCRED_AKA_RES_MISMATCH',
    );
    // The genuine RES for that challenge comes too late: one answer per challenge.
    const answer = module.authenticate(
      'preliminary',
      Buffer.from(challenge.rand, 'hex'),
      Buffer.from(challenge.autn, 'hex'),
    );
    assert.equal(answer.kind, 'success');
    await rejectsWith(
      t.deviceClient.call(url, phlrResponse, {
        body: { pimsi, res: (answer as { res: Buffer }).res.toString('hex') },
      }),
      'SIMCRED_AKA_NO_CHALLENGE',
    );
    // No answer without a challenge; an unknown PIMSI gets nothing.
    await rejectsWith(
      t.deviceClient.call(url, phlrResponse, { body: { pimsi, res: hex(8) } }),
      'SIMCRED_AKA_NO_CHALLENGE',
    );
    await rejectsWith(
      t.deviceClient.call(url, phlrChallenge, { body: { pimsi: '999990000000000' } }),
      'SIMCRED_AKA_SUBSCRIBER_UNKNOWN',
    );
  });

  test('RES computed with a random K is refused; a module whose K was altered rejects the network', async () => {
    const dsimId = fresh();
    const image = await loadFactoryImage(t.config.pkiDir, dsimId);
    const pimsi = image.image.preliminary.pimsi;
    const url = t.system.urls.phlr;
    // Direct call: the RES of a random K.
    const challenge = await t.deviceClient.call(url, phlrChallenge, { body: { pimsi } });
    const res = new Milenage(randomBytes(16), Buffer.from(image.image.preliminary.opcPimsi, 'hex')).f2345(
      Buffer.from(challenge.rand, 'hex'),
    ).res;
    await rejectsWith(
      t.deviceClient.call(url, phlrResponse, { body: { pimsi, res: res.toString('hex') } }),
      'SIMCRED_AKA_RES_MISMATCH',
    );
    // A module whose stored K_PIMSI was altered: AUTN does not verify, so it never answers.
    const altered: LoadedFactoryImage = {
      ...image,
      image: { ...image.image, preliminary: { ...image.image.preliminary, kPimsi: hex(16) } },
    };
    const agent = agentFor(altered, TrustedModule.fromFactoryImage(altered, { persist: false }));
    await rejectsWith(agent.attachPreliminary(), 'SIMCRED_AKA_MAC_FAILURE');
    await rejectsWith(agent.lookupRegistration(), 'SIMCRED_AKA_MAC_FAILURE');
    // The genuine device still gets in.
    const { agent: genuine } = await t.device(dsimId);
    assert.ok((await genuine.attachPreliminary()).grant);
  });

  test('a replayed AUTN is refused by the USIM (SQN not fresh); resync restores service', async () => {
    const dsimId = fresh();
    const { module, agent, image } = await t.device(dsimId);
    const pimsi = module.pimsi;
    const url = t.system.urls.phlr;
    const challenge = await t.deviceClient.call(url, phlrChallenge, { body: { pimsi } });
    const rand = Buffer.from(challenge.rand, 'hex');
    const autn = Buffer.from(challenge.autn, 'hex');
    const first = module.authenticate('preliminary', rand, autn);
    assert.equal(first.kind, 'success');
    await t.deviceClient.call(url, phlrResponse, {
      body: { pimsi, res: (first as { res: Buffer }).res.toString('hex') },
    });
    // The same RAND/AUTN again, as an attacker replaying it would send: not fresh.
    const replayed = module.authenticate('preliminary', rand, autn);
    assert.equal(replayed.kind, 'sync-failure');
    // Its AUTS is useless at the PHLR without the matching pending challenge.
    await rejectsWith(
      t.deviceClient.call(url, phlrResync, {
        body: { pimsi, rand: challenge.rand, auts: (replayed as { auts: Buffer }).auts.toString('hex') },
      }),
      'SIMCRED_AKA_NO_CHALLENGE',
    );

    // The USIM is now far ahead of the PHLR (e.g. it was served by another node, or the PHLR's
    // counter was restored from an old backup): the PHLR's next SQN is stale.
    const store = await PhlrStore.open(roleDatabase(t.config, 'phlr'));
    try {
      const before = await store.aka.currentSeq(pimsi);
      const ahead = generateVector({
        k: Buffer.from(image.image.preliminary.kPimsi, 'hex'),
        opc: Buffer.from(image.image.preliminary.opcPimsi, 'hex'),
        sqn: joinSqn(before + 1000, 0),
        amf: Buffer.from('8000', 'hex'),
      });
      assert.equal(module.authenticate('preliminary', ahead.rand, ahead.autn).kind, 'success');
      // attachPreliminary sees the sync failure, sends AUTS, and succeeds on the fresh challenge.
      const { grant } = await agent.attachPreliminary();
      assert.equal(decodeJwt(grant).dsimId, dsimId);
      assert.equal(await store.aka.currentSeq(pimsi), before + 1001, 'SEQ_HE moved on from SQN_MS');
    } finally {
      await store.close();
    }
    // A bad AUTS is refused.
    const again = await t.deviceClient.call(url, phlrChallenge, { body: { pimsi } });
    await rejectsWith(
      t.deviceClient.call(url, phlrResync, { body: { pimsi, rand: again.rand, auts: hex(14) } }),
      'SIMCRED_AKA_AUTS_INVALID',
    );
  });

  test('the registration server refuses forged grants', async () => {
    const dsimId = fresh();
    const other = fresh();
    const { agent, image } = await t.device(dsimId);
    const { agent: otherAgent } = await t.device(other);
    const pimsi = image.image.preliminary.pimsi;
    const pki = await loadPki(t.config.pkiDir);
    const phlrKey = pki.operator.tls.phlr;

    // Signed by another key, with the genuine PHLR certificate in x5c.
    const rogue = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const forged = await signGrant(
      { privateKey: rogue, certificateChainDer: [phlrKey.der] },
      { pimsi, dsimId, ttlSeconds: 600 },
    );
    await rejectsWith(agent.lookupRegistration(forged.grant), 'SIMCRED_GRANT_INVALID');

    // Another device's genuine grant.
    const othersGrant = (await otherAgent.attachPreliminary()).grant;
    await rejectsWith(agent.lookupRegistration(othersGrant), 'SIMCRED_GRANT_INVALID');

    // That grant with its payload edited to name this device: the signature no longer verifies.
    const [header, payload, signature] = othersGrant.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const edited = Buffer.from(JSON.stringify({ ...claims, dsimId })).toString('base64url');
    await rejectsWith(agent.lookupRegistration(`${header}.${edited}.${signature}`), 'SIMCRED_GRANT_INVALID');

    // Signed by the PHLR's own key but for another scope, or of another type.
    const privateKey = phlrKey.privateKey();
    const wrongScope = await new SignJWT({ dsimId, scope: 'internet' })
      .setProtectedHeader({ alg: 'ES256', typ: GRANT_TYPE })
      .setIssuer(GRANT_ISSUER)
      .setSubject(pimsi)
      .setIssuedAt()
      .setExpirationTime('10m')
      .setJti('x')
      .sign(privateKey);
    await rejectsWith(agent.lookupRegistration(wrongScope), 'SIMCRED_GRANT_INVALID');
    const wrongType = await new SignJWT({ dsimId, scope: GRANT_SCOPE })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer(GRANT_ISSUER)
      .setSubject(pimsi)
      .setIssuedAt()
      .setExpirationTime('10m')
      .setJti('x')
      .sign(privateKey);
    await rejectsWith(agent.lookupRegistration(wrongType), 'SIMCRED_GRANT_INVALID');
    // Issued in the future.
    const future = await signGrant(
      { privateKey, certificateChainDer: [phlrKey.der] },
      { pimsi, dsimId, ttlSeconds: 600, now: new Date(Date.now() + 3600_000) },
    );
    await rejectsWith(agent.lookupRegistration(future.grant), 'SIMCRED_GRANT_INVALID');
    // alg none / garbage.
    await rejectsWith(agent.lookupRegistration('eyJhbGciOiJub25lIn0.e30.AAAA'), 'SIMCRED_GRANT_INVALID');

    // The genuine grant works.
    assert.ok((await agent.lookupRegistration((await agent.attachPreliminary()).grant)).registrationNonce);
  });

  test('the operator can ask the PHLR to import the subscriber list now; K/OPc are sealed at rest', async () => {
    const portal = new PeerClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'portal')) });
    try {
      const made = await t.manufacture(3);
      const result = await portal.call(t.system.urls.phlr, importSubscribers, { body: {} });
      assert.equal(result.imported, 3);
      assert.ok(result.subscribers >= devices.length + 3);
      // A device may not ask for it.
      await rejectsWith(
        t.deviceClient.call(t.system.urls.phlr, importSubscribers, { body: {} }),
        'SIMCRED_UNAUTHENTICATED_PEER',
      );
      const image = await loadFactoryImage(t.config.pkiDir, made[0]!);
      const store = await PhlrStore.open(roleDatabase(t.config, 'phlr'));
      try {
        const stored = (await store.find(image.image.preliminary.pimsi))!;
        assert.equal(stored.dsimId, made[0]);
        assert.ok(!stored.kSealed.includes(image.image.preliminary.kPimsi));
        assert.ok(!stored.opcSealed.includes(image.image.preliminary.opcPimsi));
      } finally {
        await store.close();
      }
      assert.equal(statSync(join(t.config.dataDir, 'phlr', 'secrets.json')).mode & 0o777, 0o600);
    } finally {
      await portal.close();
    }
  });

  test('attach with the downloaded credentials: wrong K refused, resync restores service, subscriber active', async () => {
    const dsimId = fresh();
    const { agent, module } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const pkg = await agent.collectPackage(await agent.proveSession(registration, session));
    const { imsi } = await agent.install(pkg, session.deviceNonce);
    await agent.sendReceipt(registration, session.deviceNonce);
    assert.equal((await t.subscriber(dsimId))!.state, 'provisioned');

    // RES from a random K: refused, still not attached.
    const hss = t.system.urls.hss;
    const challenge = await t.deviceClient.call(hss, attachChallenge, { body: { imsi } });
    const res = new Milenage(randomBytes(16), randomBytes(16)).f2345(Buffer.from(challenge.rand, 'hex')).res;
    await rejectsWith(
      t.deviceClient.call(hss, attachResponse, { body: { imsi, res: res.toString('hex') } }),
      'SIMCRED_AKA_RES_MISMATCH',
    );
    assert.equal((await t.subscriber(dsimId))!.state, 'provisioned');
    await rejectsWith(
      t.deviceClient.call(hss, attachChallenge, { body: { imsi: '001029999999999' } }),
      'SIMCRED_AKA_SUBSCRIBER_UNKNOWN',
    );

    await agent.attach();
    assert.equal((await t.subscriber(dsimId))!.state, 'active');

    // The HSS loses its SQN counter (restored from an old backup): the USIM refuses the stale SQN,
    // the AUTS resynchronises the HSS and the attach succeeds.
    const store = await HssStore.open(roleDatabase(t.config, 'hss'));
    try {
      const seq = await store.aka.currentSeq(imsi);
      await store.aka.resyncSeq(imsi, seq, 0);
      await agent.attach();
      assert.equal(await store.aka.currentSeq(imsi), seq + 1);
    } finally {
      await store.close();
    }
    assert.equal(module.subscription?.imsi, imsi);
  });
});

describe('grant lifetime', () => {
  test('a grant is good until its exp and refused from then on, by the time the servers read', async () => {
    // The PHLR, the registration server and the device read one manual clock: the test sets the
    // time, so neither the wall-clock second nor the machine's load decides the outcome.
    const clock = new ManualClock();
    const t = await startTestSystem(
      { registration: { ttlSeconds: 3600 }, phlr: { grantTtlSeconds: 600, grantClockSkewSeconds: 0 } },
      { clock: clock.now },
    );
    try {
      const [dsimId] = await t.manufacture(1);
      await t.register([dsimId!]);
      const { agent } = await t.device(dsimId!);
      const { grant, expiresAt } = await agent.attachPreliminary();
      const exp = Date.parse(expiresAt);
      assert.equal(exp, Math.floor(clock.now().getTime() / 1000) * 1000 + 600_000, 'iat from the clock');
      clock.set(new Date(exp - 1000));
      assert.ok((await agent.lookupRegistration(grant)).registrationNonce, 'one second before exp');
      clock.set(new Date(exp));
      await rejectsWith(agent.lookupRegistration(grant), 'SIMCRED_GRANT_EXPIRED');
      // The device's clock says the grant is spent: a new AKA gives a new grant, signed at the new time.
      assert.ok((await agent.lookupRegistration()).registrationNonce);
    } finally {
      await t.close();
    }
  });

  test('verifyGrant: the skew bounds exp and iat; no key, no access', async () => {
    const privateKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const publicKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const signer = { privateKey, certificateChainDer: [] };
    const dsimId = 'DSIM0123456789ABCDEF';
    const now = new Date('2030-01-01T00:00:00Z');
    const { grant } = await signGrant(signer, { pimsi: '001010000000001', dsimId, ttlSeconds: 60, now });
    const keys = [publicKey, createPublicKey(privateKey)];
    const at = (seconds: number) => new Date(now.getTime() + seconds * 1000);
    // The first key does not verify; the second does.
    const claims = await verifyGrant(grant, { keys, dsimId, clockSkewSeconds: 30, now: at(10) });
    assert.equal(claims.sub, '001010000000001');
    await verifyGrant(grant, { keys, dsimId, clockSkewSeconds: 30, now: at(80) });
    await rejectsWith(
      verifyGrant(grant, { keys, dsimId, clockSkewSeconds: 30, now: at(95) }),
      'SIMCRED_GRANT_EXPIRED',
    );
    await rejectsWith(
      verifyGrant(grant, { keys, dsimId, clockSkewSeconds: 30, now: at(-60) }),
      'SIMCRED_GRANT_INVALID',
    );
    await rejectsWith(
      verifyGrant(grant, { keys: [], dsimId, clockSkewSeconds: 30, now: at(1) }),
      'SIMCRED_GRANT_INVALID',
    );
    await rejectsWith(
      verifyGrant(grant, { keys, dsimId: 'DSIM0000000000000000', clockSkewSeconds: 30, now: at(1) }),
      'SIMCRED_GRANT_INVALID',
    );
  });
});
