import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { signDeviceMessage } from '../../src/crypto/device-signature.js';
import { sealPackage, toBase64url } from '../../src/crypto/index.js';
import * as x509 from '../../src/crypto/x509.js';
import { signTransferStatement, transferConfirmationMessage } from '../../src/crypto/transfer-statement.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { PeerClient } from '../../src/http/index.js';
import { ocspStatusChecker } from '../../src/ocsp/checker.js';
import { loadFactoryImage, loadPki } from '../../src/pki/index.js';
import { confirmTransfer, openSession } from '../../src/protocol/credentialing.js';
import { attachChallenge } from '../../src/protocol/hss.js';
import { fetchTransferStatement, lookupChallenge } from '../../src/protocol/registration.js';
import { rejectsWith } from '../helpers/assert.js';
import { RegistrationStore } from '../../src/registration/store.js';
import { tempDir } from '../helpers/cli.js';
import { startTestSystem, type TestSystem } from './harness.js';

/**
 * Operator change A → B (issue #14): two operators on one machine, each with its own PKI folder,
 * credentialing, registration and provisioning servers, HSS, PHLR and OCSP responder. A device
 * credentialed by A follows A's signed transfer statement to B, onboards there, and A's subscription
 * ends: A cannot credential the device again, B did. B trusts A's manufacturer root (and A's
 * preliminary HLR's grants) through config.trust, as an operator would configure it.
 */
/** The PostgreSQL operator A's roles store in; SQLite files in the data folder when undefined. */
type Store = { kind: 'postgres'; url: string } | undefined;

/**
 * Runs the suite with operator A's stores from `databaseA` (operator-change.test.ts: SQLite;
 * operator-change-postgres.test.ts: PostgreSQL); operator B keeps SQLite files.
 */
export function operatorChangeSuite(name: string, databaseA: () => Promise<Store>): void {
  describe(name, () => {
    let a: TestSystem;
    let b: TestSystem;
    /** The devices' HTTPS client: the web PKI of this machine, trusting both operators' TLS roots. */
    let client: PeerClient;
    let devices: string[];
    let next = 0;
    const fresh = () => devices[next++]!;

    before(async () => {
      const store = await databaseA();
      a = await startTestSystem(store ? { database: store } : {});
      const pkiA = a.system.pki;
      b = await startTestSystem({
        trust: {
          manufacturers: [{ rootFile: pkiA.manufacturer.root.certPath, ocspUrl: a.system.urls.ocsp }],
          phlrCertificateFiles: [pkiA.operator.tls.phlr.certPath],
        },
      });
      client = new PeerClient({ tls: { ca: [pkiA.operator.root.pem, b.system.pki.operator.root.pem] } });
      devices = await a.manufacture(6);
      await a.register(devices);
    });
    after(async () => {
      await client?.close();
      await b?.close();
      await a?.close();
    });

    /**
     * A device of A's factory, its HTTPS client trusting both operators' TLS roots; its module keeps
     * its sealed storage in the device's folder when `persist`.
     */
    async function device(dsimId: string, persist = false) {
      const image = await loadFactoryImage(a.config.pkiDir, dsimId);
      const module = TrustedModule.fromFactoryImage(image, { persist });
      const agent = DeviceAgent.fromFactoryImage(image, { module, client, maxAttempts: 1 });
      return { image, module, agent };
    }

    /** What A's operator sends to hand a device over to B. */
    const toB = () => ({
      toOperatorRoot: b.system.pki.operator.root.pem,
      toRegistrationServers: [b.system.urls.registration[0]!],
      toServers: { ocsp: b.system.urls.ocsp, hss: b.system.urls.hss },
    });

    async function auditShows(t: TestSystem, dsimId: string, event: string): Promise<string | null> {
      for (let i = 0; i < 300; i++) {
        const { audit } = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
        const found = audit.find((e) => e.event === event);
        if (found) return found.detail;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.fail(`the audit trail of ${dsimId} never showed "${event}"`);
    }

    test('A → B: the device follows, onboards and attaches at B; A deletes its subscriber and never credentials it again', async () => {
      const dsimId = fresh();
      const d = await device(dsimId, true);
      const atA = await d.agent.onboard();
      assert.equal((await a.subscriber(dsimId))?.imsi, atA.subscription.imsi);

      // B's operator lists the device as an ordinary registration at B's registration server.
      const registered = await b.operator.registerDevices(b.system.urls.credentialing, [
        { dsimId, registrationServer: b.system.urls.registration[0]! },
      ]);
      assert.equal(registered.registered, 1);

      const authorised = await a.operator.transfer(a.system.urls.credentialing, dsimId, {
        ...toB(),
        reason: 'sold to operator B',
      });
      assert.equal(authorised.state, 'transferring');
      assert.deepEqual(
        await a.operator.transfer(a.system.urls.credentialing, dsimId, toB()),
        authorised,
        'asking again for the same target answers the same transfer',
      );
      assert.equal(await auditShows(a, dsimId, 'transfer-pushed'), a.system.urls.registration[0]);

      const followed = await d.agent.followTransfer();
      assert.equal(followed.transferId, authorised.transferId);
      assert.ok(followed.onboarding, 'the device onboarded at B');
      assert.notEqual(followed.subscription.packageId, atA.subscription.packageId);
      // The module trusts B's root alone now, and talks to B's servers.
      const trust = d.module.transferTrust!;
      // (Both demo PKIs name their roots alike: the certificates themselves differ.)
      assert.ok(Buffer.from(trust.operatorRoot.rawData).equals(b.system.pki.operator.root.der));
      assert.deepEqual(trust.registrationServers, [b.system.urls.registration[0]]);
      assert.equal(trust.confirmedPackageId, followed.subscription.packageId);

      // B credentialed it; its HSS holds the subscriber and saw the attach (onboard ends with it).
      assert.equal((await b.operator.deviceState(b.system.urls.credentialing, dsimId)).state, 'completed');
      const atB = await b.subscriber(dsimId);
      assert.equal(atB?.imsi, followed.subscription.imsi);
      await d.agent.attach();

      // Restarted, the module still holds B's trust and credential, and a device agent made from the
      // factory image (which names A's servers) attaches at B's HSS.
      const restarted = TrustedModule.fromFactoryImage(d.image);
      assert.equal(restarted.transferTrust?.transferId, authorised.transferId);
      assert.equal(restarted.subscription?.packageId, followed.subscription.packageId);
      await DeviceAgent.fromFactoryImage(d.image, { module: restarted, client, maxAttempts: 1 }).attach();
      // Following again looks for a new transfer, at B's registration server now: B has made none.
      await rejectsWith(d.agent.followTransfer(), 'SIMCRED_TRANSFER_UNKNOWN');

      // A: transferred (final), its subscriber deleted; an attach on A's old IMSI is refused.
      assert.equal(await auditShows(a, dsimId, 'subscriber-deleted'), atA.subscription.imsi);
      const atAState = await a.operator.deviceState(a.system.urls.credentialing, dsimId);
      assert.equal(atAState.state, 'transferred');
      assert.equal(await a.subscriber(dsimId), undefined);
      await rejectsWith(
        client.call(a.system.urls.hss, attachChallenge, { body: { imsi: atA.subscription.imsi } }),
        'SIMCRED_SUBSCRIPTION_ENDED',
      );
      const feed = await a.operator.events(a.system.urls.credentialing, 0, { limit: 1000 });
      const states = feed.events.filter((e) => e.dsimId === dsimId && e.state !== null).map((e) => e.state);
      assert.deepEqual(states.slice(-2), ['transferring', 'transferred']);

      // A cannot credential the device again: not registered, no session, no second transfer.
      const again = await a.register([dsimId]);
      assert.deepEqual(
        again.rejected.map((r) => r.code),
        ['SIMCRED_DEVICE_TRANSFERRED'],
      );
      await rejectsWith(
        client.call(a.system.urls.credentialing, openSession, {
          body: {
            dsimId,
            deviceNonce: toBase64url(randomBytes(32)),
            sessionNonce: toBase64url(randomBytes(32)),
          },
        }),
        'SIMCRED_DEVICE_TRANSFERRED',
      );
      await rejectsWith(
        a.operator.transfer(a.system.urls.credentialing, dsimId, toB()),
        'SIMCRED_DEVICE_TRANSFERRED',
      );
      await rejectsWith(
        a.operator.lifecycle(a.system.urls.credentialing, 'delete', dsimId),
        'SIMCRED_DEVICE_TRANSFERRED',
      );

      // A package A signs for the device now is refused: the module trusts B's root only.
      const pkiA = await loadPki(a.config.pkiDir);
      const deviceNonce = randomBytes(32);
      const fromA = await sealPackage({
        credentials: {
          imsi: '001029999999999',
          k: '00'.repeat(16),
          opc: '11'.repeat(16),
          amf: '8000',
          sqn: '000000000000',
          plmn: '00102',
        },
        dsimId,
        deviceNonce,
        devicePublicKey: d.image.chainPem[0]!,
        operatorSigningKey: pkiA.operator.packageSigner.privateKey(),
        operatorChainPem: [pkiA.operator.packageSigner.pem, pkiA.operator.operatorCa.pem],
        ttlSeconds: 3600,
      });
      await rejectsWith(
        d.module.installPackage(fromA, {
          deviceNonce,
          operatorRoots: [new x509.X509Certificate(pkiA.operator.root.der)],
          checkSigner: async () => {},
        }),
        'SIMCRED_PACKAGE_CHAIN_INVALID',
      );
      assert.equal(d.module.subscription?.packageId, followed.subscription.packageId, 'B’s credential stays');
    });

    test('statements the device refuses: another operator, a TLS key, tampered, expired, another device; it keeps trusting A', async () => {
      const dsimId = fresh();
      const other = fresh();
      const d = await device(dsimId);
      const pkiA = await loadPki(a.config.pkiDir);
      const pkiB = await loadPki(b.config.pkiDir);
      const aRoot = new x509.X509Certificate(pkiA.operator.root.der);
      const statement = (overrides: Partial<Parameters<typeof signTransferStatement>[0]> = {}) =>
        signTransferStatement({
          transferId: `trf_${randomBytes(16).toString('base64url')}`,
          dsimId,
          devicePublicKey: d.image.chainPem[0]!,
          newOperatorRoot: pkiB.operator.root.pem,
          newRegistrationServers: [b.system.urls.registration[0]!],
          newServers: { ocsp: b.system.urls.ocsp, hss: b.system.urls.hss },
          confirmUrl: a.system.urls.credentialing,
          signingKey: pkiA.operator.packageSigner.privateKey(),
          signerChainPem: [pkiA.operator.packageSigner.pem, pkiA.operator.operatorCa.pem],
          ttlSeconds: 3600,
          ...overrides,
        });
      const ocspA = ocspStatusChecker({ urls: [a.system.urls.ocsp] });
      const take = (jws: string) =>
        d.module.acceptTransfer(jws, {
          operatorRoots: [aRoot],
          checkSigner: (signer, issuer) => ocspA.requireGood(signer, issuer),
        });

      await rejectsWith(
        take(
          await statement({
            signingKey: pkiB.operator.packageSigner.privateKey(),
            signerChainPem: [pkiB.operator.packageSigner.pem, pkiB.operator.operatorCa.pem],
          }),
        ),
        'SIMCRED_TRANSFER_STATEMENT_INVALID',
        /chain|trust/i,
      );
      await rejectsWith(
        take(
          await statement({
            signingKey: pkiA.operator.tls.credentialing.privateKey(),
            signerChainPem: [pkiA.operator.tls.credentialing.pem, pkiA.operator.operatorCa.pem],
          }),
        ),
        'SIMCRED_TRANSFER_STATEMENT_INVALID',
        /package-signing/,
      );
      const genuine = await statement();
      const [header, payload, sig] = genuine.split('.') as [string, string, string];
      const forged = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<
        string,
        unknown
      >;
      forged.newRegistrationServers = ['https://attacker.example'];
      const tampered = `${header}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${sig}`;
      await rejectsWith(take(tampered), 'SIMCRED_TRANSFER_STATEMENT_INVALID', /signature/);
      await rejectsWith(
        take(await statement({ now: new Date(Date.now() - 2 * 3600_000) })),
        'SIMCRED_TRANSFER_STATEMENT_EXPIRED',
      );
      await rejectsWith(take(await statement({ dsimId: other })), 'SIMCRED_TRANSFER_BINDING_MISMATCH');
      const otherImage = await loadFactoryImage(a.config.pkiDir, other);
      await rejectsWith(
        take(await statement({ devicePublicKey: otherImage.chainPem[0]! })),
        'SIMCRED_TRANSFER_BINDING_MISMATCH',
        /device key/,
      );
      assert.equal(d.module.transferTrust, undefined, 'nothing was taken');
      assert.deepEqual(d.module.operatorRoots([aRoot]), [aRoot]);

      // The device still onboards at A, and the registration server has no statement for it.
      await d.agent.onboard();
      const { challenge } = await client.call(a.system.urls.registration[0]!, lookupChallenge, {
        body: { dsimId },
      });
      const grant = await d.agent.accessGrant();
      await rejectsWith(
        client.call(a.system.urls.registration[0]!, fetchTransferStatement, {
          body: {
            dsimId,
            grant,
            challenge,
            certificateChain: d.module.certificateChain,
            ...d.module.signTransferFetch(Buffer.from(challenge, 'base64url')),
          },
        }),
        'SIMCRED_TRANSFER_UNKNOWN',
      );
      // A lookup proof (another label) does not fetch a statement.
      const second = await client.call(a.system.urls.registration[0]!, lookupChallenge, { body: { dsimId } });
      await rejectsWith(
        client.call(a.system.urls.registration[0]!, fetchTransferStatement, {
          body: {
            dsimId,
            grant,
            challenge: second.challenge,
            certificateChain: d.module.certificateChain,
            ...d.module.signLookup(Buffer.from(second.challenge, 'base64url')),
          },
        }),
        'SIMCRED_PROOF_INVALID',
      );
    });

    test('A refuses a forged confirmation, another transfer id and a second target; a device without a subscription is not transferred', async () => {
      const dsimId = fresh();
      const d = await device(dsimId);
      await rejectsWith(
        a.operator.transfer(a.system.urls.credentialing, dsimId, toB()),
        'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
      );
      await d.agent.onboard();
      const { transferId } = await a.operator.transfer(a.system.urls.credentialing, dsimId, toB());
      await rejectsWith(
        a.operator.transfer(a.system.urls.credentialing, dsimId, {
          ...toB(),
          toRegistrationServers: [b.system.urls.registration[1]!],
        }),
        'SIMCRED_TRANSFER_IN_PROGRESS',
      );
      await rejectsWith(
        a.operator.lifecycle(a.system.urls.credentialing, 'suspend', dsimId),
        'SIMCRED_TRANSFER_IN_PROGRESS',
      );

      // Signed by another device's key: refused, and the device stays transferring.
      const packageId = 'b-package-1';
      const stranger = await loadFactoryImage(a.config.pkiDir, fresh());
      const forged = signDeviceMessage(
        stranger.privateKey,
        transferConfirmationMessage({ transferId, dsimId, packageId }),
      );
      await rejectsWith(
        client.call(a.system.urls.credentialing, confirmTransfer, {
          body: { dsimId, transferId, packageId, alg: forged.alg, signature: toBase64url(forged.signature) },
        }),
        'SIMCRED_TRANSFER_CONFIRMATION_INVALID',
      );
      // Signed by the device, but over another package id than the one sent.
      const signed = signDeviceMessage(
        d.image.privateKey,
        transferConfirmationMessage({ transferId, dsimId, packageId }),
      );
      await rejectsWith(
        client.call(a.system.urls.credentialing, confirmTransfer, {
          body: {
            dsimId,
            transferId,
            packageId: 'b-package-2',
            alg: signed.alg,
            signature: toBase64url(signed.signature),
          },
        }),
        'SIMCRED_TRANSFER_CONFIRMATION_INVALID',
      );
      await rejectsWith(
        client.call(a.system.urls.credentialing, confirmTransfer, {
          body: {
            dsimId,
            transferId: `trf_${randomBytes(16).toString('base64url')}`,
            packageId,
            alg: signed.alg,
            signature: toBase64url(signed.signature),
          },
        }),
        'SIMCRED_TRANSFER_UNKNOWN',
      );
      assert.equal((await a.operator.deviceState(a.system.urls.credentialing, dsimId)).state, 'transferring');
      assert.ok(await a.subscriber(dsimId), "A's subscriber stays until a valid confirmation");
    });

    test('a device that follows before B has registered it resumes once B has: the stored trust is kept, the statement not fetched again', async () => {
      const dsimId = fresh();
      const d = await device(dsimId);
      await d.agent.onboard();
      const { transferId } = await a.operator.transfer(a.system.urls.credentialing, dsimId, toB());
      await auditShows(a, dsimId, 'transfer-pushed');
      await rejectsWith(d.agent.followTransfer(), 'SIMCRED_REGISTRATION_UNKNOWN');
      assert.equal(d.module.transferTrust?.transferId, transferId, 'the trust was taken');
      assert.equal(d.module.transferTrust?.confirmedPackageId, undefined);
      assert.equal((await a.operator.deviceState(a.system.urls.credentialing, dsimId)).state, 'transferring');
      // Meanwhile A's credential still attaches at A's network (its subscription lives until confirmed).
      await d.agent.attach();

      await b.operator.registerDevices(b.system.urls.credentialing, [
        { dsimId, registrationServer: b.system.urls.registration[1]! },
      ]);
      // B registered it at its second registration server: the device's stored trust names the first,
      // so B's operator registers it where the statement sent it.
      await rejectsWith(d.agent.followTransfer(), 'SIMCRED_REGISTRATION_UNKNOWN');
      await b.operator.revoke(b.system.urls.credentialing, dsimId, 'wrong registration server');
      await b.operator.registerDevices(b.system.urls.credentialing, [
        { dsimId, registrationServer: b.system.urls.registration[0]! },
      ]);
      const followed = await d.agent.followTransfer();
      assert.equal(followed.transferId, transferId);
      assert.ok(followed.onboarding);
      assert.equal(await auditShows(a, dsimId, 'transferred'), followed.subscription.packageId);
    });

    test("a registration server keeps each statement its pusher's: another credentialing server cannot replace it", async () => {
      const dir = tempDir('simcred-transfer-store-');
      const store = await RegistrationStore.open({ kind: 'sqlite', file: `${dir.path}/registration.db` });
      try {
        const dsimId = 'DSIM00000000000000AA';
        const record = (statement: string) => ({ dsimId, transferId: `trf_${'B'.repeat(22)}`, statement });
        const now = new Date();
        assert.equal(
          await store.upsertTransferStatements(
            [record('a.b.c')],
            { owner: 'CN=simcred-credentialing A' },
            now,
          ),
          1,
        );
        assert.equal(
          await store.upsertTransferStatements(
            [record('x.y.z')],
            { owner: 'CN=simcred-credentialing B' },
            now,
          ),
          0,
        );
        assert.equal((await store.findTransferStatement(dsimId))?.statement, 'a.b.c');
        assert.equal(
          await store.upsertTransferStatements(
            [record('d.e.f')],
            { owner: 'CN=simcred-credentialing A' },
            now,
          ),
          1,
        );
        assert.equal((await store.findTransferStatement(dsimId))?.statement, 'd.e.f');
      } finally {
        await store.close();
        dir.cleanup();
      }
    });
  });
}
