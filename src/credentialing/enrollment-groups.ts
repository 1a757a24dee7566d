import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import { certificateFacts } from '../crypto/certificate-facts.js';
import { parseCertificateBase64 } from '../crypto/certificates.js';
import { randomToken } from '../crypto/digest.js';
import type * as x509 from '../crypto/x509.js';
import { SimcredError } from '../errors/index.js';
import { requireDsimBinding } from '../pki/device-identity.js';
import { parseDeviceChain, verifyDeviceChain } from '../pki/device-chain.js';
import type { admitGroupDevice, createGroup, EnrollmentGroup } from '../protocol/credentialing.js';
import { matchesDsimPattern } from '../protocol/dsim-pattern.js';
import type { GroupRecord } from '../protocol/registration.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { Clock } from '../time/clock.js';
import type { CredentialingConsumers } from './consumers.js';
import type { StoredGroup } from './group-store.js';
import { newOrderId } from './order-store.js';
import { transferredError } from './transfers.js';
import type { CredentialingStore } from './store.js';

export interface EnrollmentGroupsOptions {
  store: CredentialingStore;
  consumers: CredentialingConsumers;
  manufacturerRoots: x509.X509Certificate[];
  credentialingUrl(): string;
  /** How long a registration made for an admitted device lives (as a listed one). */
  ttlSeconds: number;
  log: Logger;
  clock: Clock;
}

/**
 * Enrollment groups (issue 14, after Azure DPS): the operator enrols a device CA, optionally with a
 * DSIM_ID pattern and a cap, instead of listing every DSIM_ID. The group is pushed to its
 * registration servers; an unlisted device of that CA that proves itself at step 2 is admitted by
 * asking this server (admit), which checks the chain again, counts the device once against the cap
 * and gives it a registration of its own — a fresh registration nonce — exactly as a listed device
 * gets at step 0b. From there the flow is the same.
 */
export class EnrollmentGroups {
  constructor(private readonly options: EnrollmentGroupsOptions) {}

  /** Enrols a CA: stored, then pushed to every registration server named; all or nothing. */
  async create(body: BodyOf<typeof createGroup>): Promise<z.infer<typeof EnrollmentGroup>> {
    const ca = await this.trustedDeviceCa(body.caCertificate);
    const groups = this.options.store.groups();
    const now = this.options.clock();
    // The group's devices are one order: listed, counted and notified like a registration batch's.
    const orderId = newOrderId();
    await this.options.store.orders.create(
      {
        id: orderId,
        placedBy: 'enrollment group',
        label: `group ${body.name}`,
        ...(body.reprovision ? { reprovisionPolicy: body.reprovision } : {}),
      },
      now,
    );
    const group: StoredGroup = {
      id: `grp_${randomBytes(8).toString('hex')}`,
      name: body.name,
      caSubject: ca.subject,
      caSha256: sha256Hex(ca.rawData),
      dsimPattern: body.dsimPattern ?? null,
      cap: body.cap ?? null,
      admitted: 0,
      registrationServers: [...new Set(body.registrationServers)],
      active: true,
      orderId,
      createdAt: now,
    };
    await groups.create(group);
    try {
      await this.push(group);
    } catch (err) {
      // Not every registration server knows the group: it is withdrawn from those that do, and
      // removed here, so no half-enrolled group is left (an admission meanwhile is refused).
      await groups.remove(group.id);
      await this.push({ ...group, active: false }).catch(() => undefined);
      throw err;
    }
    this.options.log.info({ groupId: group.id, ca: group.caSubject }, 'enrollment group created');
    return view(group);
  }

  async list(): Promise<z.infer<typeof EnrollmentGroup>[]> {
    return (await this.options.store.groups().list()).map(view);
  }

  /** Stops admissions: refused here at once, and the registration servers are told. */
  async close(groupId: string): Promise<z.infer<typeof EnrollmentGroup>> {
    const groups = this.options.store.groups();
    const group = await groups.find(groupId);
    if (!group) throw new SimcredError('SIMCRED_GROUP_UNKNOWN', `no enrollment group ${groupId}`);
    await groups.close(groupId);
    const closed = { ...group, active: false };
    await this.push(closed);
    return view(closed);
  }

  /**
   * A registration server's request for an unlisted device of the group. The chain is verified
   * again here (the registration server is trusted to ask, not to decide), the device must have been
   * issued by the group's CA and match its pattern, and it is counted once against the cap.
   */
  async admit(
    groupId: string,
    body: BodyOf<typeof admitGroupDevice>,
  ): Promise<ResponseOf<typeof admitGroupDevice>> {
    const { store, clock } = this.options;
    const now = clock();
    const group = await store.groups().find(groupId);
    if (!group?.active)
      throw new SimcredError('SIMCRED_GROUP_UNKNOWN', `no open enrollment group ${groupId}`);
    if (!group.registrationServers.includes(body.registrationServer)) {
      throw new SimcredError(
        'SIMCRED_FORBIDDEN_PEER',
        `${body.registrationServer} does not serve group ${groupId}`,
      );
    }
    const { leaf, issuer } = await verifyDeviceChain(parseDeviceChain(body.certificateChain), {
      roots: this.options.manufacturerRoots,
      now,
    });
    requireDsimBinding(leaf, body.dsimId);
    if (sha256Hex(issuer.rawData) !== group.caSha256) {
      throw new SimcredError(
        'SIMCRED_GROUP_CA_MISMATCH',
        `the device was not issued by the CA of group ${groupId}`,
      );
    }
    if (!matchesDsimPattern(group.dsimPattern, body.dsimId)) {
      throw new SimcredError(
        'SIMCRED_GROUP_PATTERN_MISMATCH',
        `${body.dsimId} is outside the pattern ${group.dsimPattern} of group ${groupId}`,
      );
    }
    const current = await store.find(body.dsimId);
    if (current?.state === 'revoked') {
      // The operator revoked this device: a group must not bring it back.
      throw new SimcredError('SIMCRED_REGISTRATION_REVOKED', 'the registration was revoked');
    }
    if (current?.state === 'deleted') {
      throw new SimcredError(
        'SIMCRED_SUBSCRIPTION_ENDED',
        'the device was deleted; it is never admitted again',
      );
    }
    if (current?.state === 'transferred') throw transferredError();
    if (
      current?.state === 'delivered' ||
      current?.state === 'completed' ||
      current?.state === 'suspended' ||
      current?.state === 'transferring'
    ) {
      throw new SimcredError('SIMCRED_REGISTRATION_USED', 'the registration was already used');
    }
    const live =
      current &&
      current.expiresAt > now &&
      (current.state === 'registered' || current.state === 'authenticating');
    if (!live && current?.state !== 'referred') {
      await store.groups().admit(groupId, body.dsimId, now);
      await store.saveRegistrations(
        [
          {
            dsimId: body.dsimId,
            registrationNonce: randomToken(32),
            registrationServer: body.registrationServer,
            expiresAt: new Date(now.getTime() + this.options.ttlSeconds * 1000),
          },
        ],
        now,
        group.orderId,
      );
      await store.audit(body.dsimId, 'admitted', groupId, now);
    }
    // What the store holds now: this admission's, or a concurrent one's that won.
    const stored = await store.find(body.dsimId);
    if (!stored) throw new SimcredError('SIMCRED_INTERNAL', 'an admitted registration was not stored');
    await store.markPushed([stored.dsimId]);
    return {
      dsimId: stored.dsimId,
      registrationNonce: stored.registrationNonce,
      credentialingUrl: this.options.credentialingUrl(),
      expiresAt: stored.expiresAt.toISOString(),
      generation: stored.generation,
    };
  }

  private async push(group: StoredGroup): Promise<void> {
    const record: GroupRecord = {
      groupId: group.id,
      caSha256: group.caSha256,
      dsimPattern: group.dsimPattern,
      credentialingUrl: this.options.credentialingUrl(),
      active: group.active,
    };
    await Promise.all(
      group.registrationServers.map((server) => this.options.consumers.pushGroups(server, [record])),
    );
  }

  /** The CA to enrol: base64 DER or PEM, a CA certificate that one of the manufacturer roots is or issued. */
  private async trustedDeviceCa(text: string): Promise<x509.X509Certificate> {
    const base64 = text.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
    const ca = parseCertificateBase64(base64, 'SIMCRED_CERT_INVALID');
    if (!certificateFacts(ca).basicConstraints?.ca) {
      throw new SimcredError(
        'SIMCRED_CERT_INVALID',
        `caCertificate: "${ca.subject}" is not a CA certificate`,
      );
    }
    for (const root of this.options.manufacturerRoots) {
      if (Buffer.from(root.rawData).equals(Buffer.from(ca.rawData))) return ca;
      if (
        root.subject === ca.issuer &&
        (await ca.verify({ publicKey: root.publicKey, signatureOnly: true }))
      ) {
        return ca;
      }
    }
    throw new SimcredError(
      'SIMCRED_CERT_UNTRUSTED',
      `caCertificate: "${ca.subject}" is not under a manufacturer root`,
    );
  }
}

function sha256Hex(der: ArrayBuffer): string {
  return createHash('sha256').update(Buffer.from(der)).digest('hex');
}

function view(group: StoredGroup): z.infer<typeof EnrollmentGroup> {
  return {
    id: group.id,
    name: group.name,
    caSubject: group.caSubject,
    caSha256: group.caSha256,
    dsimPattern: group.dsimPattern,
    cap: group.cap,
    admitted: group.admitted,
    registrationServers: group.registrationServers,
    active: group.active,
    orderId: group.orderId,
    createdAt: group.createdAt.toISOString(),
  };
}
