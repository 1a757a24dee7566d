import type { Logger } from 'pino';
import type * as x509 from '../crypto/x509.js';
import { randomToken } from '../crypto/digest.js';
import { publicKeyOfCertificateDer } from '../crypto/index.js';
import { SimcredError } from '../errors/index.js';
import { requireDsimBinding } from '../pki/device-identity.js';
import { parseDeviceChain, verifyDeviceChain } from '../pki/device-chain.js';
import type { requestReprovision, reprovisionDevice } from '../protocol/credentialing.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { Clock } from '../time/clock.js';
import type { CredentialingConsumers } from './consumers.js';
import type { ReprovisionPolicy } from './order-store.js';
import type { PeerActionSender } from './peer-actions.js';
import { transferredError } from './transfers.js';
import type { CredentialingStore, Registration } from './store.js';

export interface ReprovisioningOptions {
  store: CredentialingStore;
  consumers: CredentialingConsumers;
  peerActions: PeerActionSender;
  manufacturerRoots: x509.X509Certificate[];
  /** This server's URL, the route the device gets with its fresh registration. */
  credentialingUrl(): string;
  ttlSeconds: number;
  log: Logger;
  clock: Clock;
}

type Requester = 'operator' | 'device';

/** Which requesters each order policy lets ask (each level allows the ones before it). */
const ALLOWED: Record<ReprovisionPolicy, readonly Requester[]> = {
  never: [],
  operator: ['operator'],
  device: ['operator', 'device'],
};

/**
 * Re-provisioning (issue 14): a device that holds a subscription goes through the flow again with a
 * fresh registration nonce and the next generation, and gets a new subscription (new IMSI, K, OPc).
 * The operator asks through its API; a device that was factory-reset asks through its registration
 * server (step 2 with `reprovision`), if its order's policy allows. The old subscription ends once
 * the new one is in use: the HSS releases the older generations at the new one's first attach, and
 * the receipt queues the same release in case the device never attaches.
 */
export class Reprovisioning {
  constructor(private readonly options: ReprovisioningOptions) {}

  /** The operator's request: the fresh registration is pushed to each of the device's registration servers. */
  async byOperator(
    dsimId: string,
    body: BodyOf<typeof reprovisionDevice>,
  ): Promise<ResponseOf<typeof reprovisionDevice>> {
    const { store, consumers } = this.options;
    const registration = await this.target(dsimId, 'operator');
    let fresh = registration;
    // A re-provisioning whose push failed is pushed again with its nonce, not started over.
    if (!this.unpushed(registration)) {
      fresh = await this.start(registration, 'operator');
      this.options.log.info({ dsimId, generation: fresh.generation, reason: body.reason }, 'reprovisioned');
    }
    try {
      const record = this.record(fresh);
      await Promise.all(
        fresh.registrationServers.map((server) => consumers.pushRegistrations(server, [record])),
      );
    } catch (err) {
      // Stored and audited, not yet pushed: the same call again pushes it (see unpushed()).
      throw new SimcredError(
        'SIMCRED_DEPENDENCY_UNAVAILABLE',
        'the fresh registration could not be pushed to its registration server; retry',
        { retryAfter: 2, cause: err },
      );
    }
    await store.markPushed([dsimId]);
    return { dsimId, state: 'registered', generation: fresh.generation };
  }

  /**
   * A factory-reset device's request, passed on by the registration server that retired its used
   * registration. Its chain is verified again and must carry the key it was credentialed with; the
   * asking server must be the device's own. The answer is the fresh registration, which the
   * registration server keeps and gives the device.
   */
  async byDevice(body: BodyOf<typeof requestReprovision>): Promise<ResponseOf<typeof requestReprovision>> {
    const { store, clock } = this.options;
    const now = clock();
    const { leaf } = await verifyDeviceChain(parseDeviceChain(body.certificateChain), {
      roots: this.options.manufacturerRoots,
      now,
    });
    requireDsimBinding(leaf, body.dsimId);
    const registration = await this.target(body.dsimId, 'device');
    if (!registration.registrationServers.includes(body.registrationServer)) {
      throw new SimcredError(
        'SIMCRED_FORBIDDEN_PEER',
        `${body.registrationServer} is not the registration server of ${body.dsimId}`,
      );
    }
    const credentialed = registration.deviceCertificate
      ? publicKeyOfCertificateDer(Buffer.from(registration.deviceCertificate, 'base64'))
      : undefined;
    const presented = publicKeyOfCertificateDer(Buffer.from(leaf.rawData));
    if (!credentialed || !spki(credentialed).equals(spki(presented))) {
      throw new SimcredError(
        'SIMCRED_DEVICE_KEY_MISMATCH',
        'the device key is not the one this DSIM_ID was credentialed with',
      );
    }
    // Asked twice (the device retried its lookup): the live re-provisioning is answered again.
    const fresh =
      registration.state === 'registered' && registration.generation > 1 && registration.expiresAt > now
        ? registration
        : await this.start(registration, 'device');
    await store.markPushed([fresh.dsimId]);
    this.options.log.info({ dsimId: body.dsimId, generation: fresh.generation }, 'reprovisioned on request');
    return this.record(fresh);
  }

  /**
   * The device's registration if it may be re-provisioned by this requester: it holds a subscription
   * (delivered or completed) or its re-provisioning is under way, and its order's policy allows it.
   */
  private async target(dsimId: string, requester: Requester): Promise<Registration> {
    const { store } = this.options;
    const registration = await store.find(dsimId);
    if (!registration)
      throw new SimcredError('SIMCRED_REGISTRATION_UNKNOWN', 'no registration for this device');
    switch (registration.state) {
      case 'deleted':
        throw new SimcredError('SIMCRED_SUBSCRIPTION_ENDED', 'the operator deleted this subscription');
      case 'revoked':
        throw new SimcredError(
          'SIMCRED_REGISTRATION_REVOKED',
          'the registration was revoked; register the device again instead',
        );
      case 'suspended':
        throw new SimcredError(
          'SIMCRED_SUBSCRIPTION_SUSPENDED',
          'the subscription is suspended; resume it before re-provisioning',
        );
      case 'transferring':
        throw new SimcredError(
          'SIMCRED_TRANSFER_IN_PROGRESS',
          'the device is being transferred to another operator',
        );
      case 'transferred':
        throw transferredError();
      case 'delivered':
      case 'completed':
        break;
      default:
        if (registration.generation > 1) break;
        throw new SimcredError(
          'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
          `the device has no subscription to replace yet (${registration.state})`,
        );
    }
    const order = registration.orderId ? await store.orders.find(registration.orderId) : undefined;
    const policy = order?.reprovisionPolicy ?? 'operator';
    if (!ALLOWED[policy].includes(requester)) {
      throw new SimcredError(
        'SIMCRED_REPROVISION_NOT_ALLOWED',
        `the order's reprovision policy is ${policy}: the ${requester} may not ask`,
      );
    }
    return registration;
  }

  /** A re-provisioning stored but never pushed (its push failed), still live. */
  private unpushed(registration: Registration): boolean {
    return (
      registration.state === 'registered' &&
      registration.generation > 1 &&
      !registration.pushed &&
      registration.expiresAt > this.options.clock()
    );
  }

  /** The conditional change itself; a concurrent change that won is reported from its state. */
  private async start(registration: Registration, requester: Requester): Promise<Registration> {
    const { store, clock, ttlSeconds } = this.options;
    const now = clock();
    const changed = await store.reprovision(
      registration.dsimId,
      { registrationNonce: randomToken(32), expiresAt: new Date(now.getTime() + ttlSeconds * 1000) },
      requester,
      now,
    );
    const current = await store.find(registration.dsimId);
    if (!current) throw new SimcredError('SIMCRED_INTERNAL', 'a re-provisioned registration vanished');
    if (!changed && current.generation === registration.generation) {
      // Moved meanwhile into a state that cannot be re-provisioned: say which.
      await this.target(registration.dsimId, requester);
      throw new SimcredError('SIMCRED_SUBSCRIPTION_NOT_PROVISIONED', `the device is ${current.state}`);
    }
    this.options.peerActions.kick();
    return current;
  }

  private record(registration: Registration): ResponseOf<typeof requestReprovision> {
    return {
      dsimId: registration.dsimId,
      registrationNonce: registration.registrationNonce,
      credentialingUrl: this.options.credentialingUrl(),
      expiresAt: registration.expiresAt.toISOString(),
      generation: registration.generation,
    };
  }
}

function spki(key: ReturnType<typeof publicKeyOfCertificateDer>): Buffer {
  return key.export({ format: 'der', type: 'spki' });
}
