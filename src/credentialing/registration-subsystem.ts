import type { Logger } from 'pino';
import { randomToken } from '../crypto/digest.js';
import { SimcredError, isSimcredError } from '../errors/index.js';
import { chunked, ndjsonLines, parse } from '../http/index.js';
import { DeviceToRegister, type RegistrationSummary } from '../protocol/credentialing.js';
import type { RegistrationRecord } from '../protocol/registration.js';
import type { z } from 'zod';
import type { CredentialingConsumers } from './consumers.js';
import type { Clock } from '../time/clock.js';
import type { CredentialingStore, Registration } from './store.js';
import { newOrderId, type ReprovisionPolicy } from './order-store.js';

/** Devices handled per database transaction and per push to a registration server. */
export const REGISTRATION_CHUNK = 1000;
/** Rejected lines listed in the summary (the rest are only counted out by registered + unchanged). */
export const MAX_REJECTIONS_LISTED = 1000;

type Summary = z.infer<typeof RegistrationSummary>;
export type RegistrationProgress =
  | { progress: number }
  | (Summary & { error: { code: string; message: string } | null; orderId: string | null });

export interface RegistrationSubsystemOptions {
  store: CredentialingStore;
  consumers: CredentialingConsumers;
  /** This credentialing server's URL, the route devices get from their registration server. */
  /** This server's URL (the route given to devices and provisioning servers). */
  credentialingUrl(): string;
  ttlSeconds: number;
  log: Logger;
  /** Time the registrations' expiry counts from. */
  clock: Clock;
}

/**
 * DESIGN §2 step 0b, the registration subsystem (12): per device a fresh 32-byte registration nonce,
 * an expiry and the route to this server, stored first (not yet pushed), then pushed to the device's
 * registration server, then marked pushed. A batch re-run repairs any push a crash or an outage
 * interrupted: live registrations that were never pushed are pushed again with their nonce.
 */
export class RegistrationSubsystem {
  constructor(private readonly options: RegistrationSubsystemOptions) {}

  /**
   * Registers an NDJSON stream of devices, yielding a progress line per chunk and the summary last.
   * A registration server that is down stops the batch with the summary so far and the error.
   */
  async *registerStream(
    body: AsyncIterable<Buffer | string>,
    /** The order this batch becomes: who placed it (the calling peer) and the caller's label. */
    order: {
      placedBy: string;
      label: string | null;
      appendTo?: string | undefined;
      reprovisionPolicy?: ReprovisionPolicy | undefined;
    } = {
      placedBy: 'unknown',
      label: null,
    },
  ): AsyncGenerator<RegistrationProgress> {
    const started = Date.now();
    let orderId: string | null = null;
    const summary: Summary = { registered: 0, unchanged: 0, rejected: [], elapsedMs: 0 };
    let error: { code: string; message: string } | null = null;
    let seen = 0;
    // One chunk's push to the registration servers runs while the next chunk is prepared in the
    // database: the two sides work at once, and at most two chunks are held in memory.
    let pushing: { promise: Promise<number>; seen: number } | undefined;
    const settle = async function* () {
      if (pushing === undefined) return;
      const { promise, seen: upTo } = pushing;
      pushing = undefined;
      summary.registered += await promise;
      yield { progress: upTo };
    };
    try {
      const id = order.appendTo ?? newOrderId();
      if (order.appendTo) {
        const existing = await this.options.store.orders.find(order.appendTo);
        if (!existing) throw new SimcredError('SIMCRED_ORDER_UNKNOWN', `no order ${order.appendTo}`);
        if (existing.cancelledAt)
          throw new SimcredError('SIMCRED_ORDER_CANCELLED', `order ${order.appendTo} is cancelled`);
      } else {
        await this.options.store.orders.create(
          {
            id,
            placedBy: order.placedBy,
            label: order.label,
            ...(order.reprovisionPolicy ? { reprovisionPolicy: order.reprovisionPolicy } : {}),
          },
          this.options.clock(),
        );
      }
      orderId = id;
      for await (const lines of chunked(ndjsonLines(body), REGISTRATION_CHUNK)) {
        const devices: { lineNumber: number; device: z.infer<typeof DeviceToRegister> }[] = [];
        for (const { lineNumber, text } of lines) {
          try {
            devices.push({
              lineNumber,
              device: parse(DeviceToRegister, JSON.parse(text), `line ${lineNumber}`),
            });
          } catch (err) {
            const e = isSimcredError(err)
              ? err
              : new SimcredError('SIMCRED_BAD_REQUEST', `line ${lineNumber}: not JSON`);
            if (summary.rejected.length < MAX_REJECTIONS_LISTED)
              summary.rejected.push({ line: lineNumber, code: e.code, message: e.message });
          }
        }
        const prepared = await this.prepareChunk(devices, summary, id);
        yield* settle();
        summary.unchanged += prepared.unchanged;
        seen += lines.length;
        const promise = this.pushChunk(prepared.byServer).then(() => prepared.registered);
        // Awaited in settle(); this only keeps a failure from counting as unhandled meanwhile.
        promise.catch(() => undefined);
        pushing = { promise, seen };
      }
      yield* settle();
    } catch (err) {
      const e = isSimcredError(err)
        ? err
        : new SimcredError('SIMCRED_INTERNAL', 'registration failed', { cause: err });
      if (e.code === 'SIMCRED_INTERNAL') this.options.log.error({ err }, 'registration batch failed');
      error = { code: e.code, message: e.code === 'SIMCRED_INTERNAL' ? 'internal error' : e.message };
    }
    summary.elapsedMs = Date.now() - started;
    yield { ...summary, error, orderId };
  }

  /** A chunk's database side: fresh nonces stored, and what to push to which registration server. */
  private async prepareChunk(
    devices: { lineNumber: number; device: z.infer<typeof DeviceToRegister> }[],
    summary: Summary,
    orderId: string,
  ): Promise<{ byServer: Map<string, RegistrationRecord[]>; registered: number; unchanged: number }> {
    const { store, ttlSeconds } = this.options;
    const credentialingUrl = this.options.credentialingUrl();
    const now = this.options.clock();
    const existing = await store.findMany(devices.map((d) => d.device.dsimId));
    const fresh: {
      dsimId: string;
      registrationNonce: string;
      registrationServer: string;
      alsoAt?: string[] | undefined;
      expiresAt: Date;
    }[] = [];
    const toPush: Registration[] = [];
    let unchanged = 0;
    for (const { lineNumber, device } of devices) {
      const current = existing.get(device.dsimId);
      const live = current && current.expiresAt > now;
      if (current?.state === 'transferred') {
        if (summary.rejected.length < MAX_REJECTIONS_LISTED)
          summary.rejected.push({
            line: lineNumber,
            code: 'SIMCRED_DEVICE_TRANSFERRED',
            message: `${device.dsimId} moved to another operator; it is never registered here again`,
          });
      } else if (current?.state === 'deleted') {
        if (summary.rejected.length < MAX_REJECTIONS_LISTED)
          summary.rejected.push({
            line: lineNumber,
            code: 'SIMCRED_SUBSCRIPTION_ENDED',
            message: `${device.dsimId} was deleted; a deleted device is never registered again`,
          });
      } else if (
        current &&
        (current.state === 'delivered' ||
          current.state === 'completed' ||
          current.state === 'suspended' ||
          current.state === 'transferring')
      ) {
        if (summary.rejected.length < MAX_REJECTIONS_LISTED)
          summary.rejected.push({
            line: lineNumber,
            code: 'SIMCRED_REGISTRATION_USED',
            message: `${device.dsimId} already received its credentials`,
          });
      } else if (current && live && current.state !== 'revoked' && current.state !== 'expired') {
        // A live registration keeps its nonce; only a push that never happened is redone.
        if (!current.pushed) toPush.push(current);
        else unchanged++;
      } else {
        fresh.push({
          dsimId: device.dsimId,
          registrationNonce: randomToken(32),
          registrationServer: device.registrationServer,
          alsoAt: device.alsoAt?.filter((s) => s !== device.registrationServer),
          expiresAt: new Date(now.getTime() + ttlSeconds * 1000),
        });
      }
    }
    await store.saveRegistrations(fresh, now, orderId);
    // Push what the store holds now (another batch or a hand-over may have won a row meanwhile):
    // live, not yet pushed registrations, with their stored nonce.
    const stored = await store.findMany([...fresh, ...toPush].map((r) => r.dsimId));
    const records = [...stored.values()].filter(
      (r) => r.state === 'registered' && !r.pushed && r.expiresAt > now,
    );
    const byServer = new Map<string, RegistrationRecord[]>();
    for (const r of records) {
      const record = {
        dsimId: r.dsimId,
        registrationNonce: r.registrationNonce,
        credentialingUrl,
        expiresAt: r.expiresAt.toISOString(),
        generation: r.generation,
      };
      for (const server of r.registrationServers) {
        const list = byServer.get(server) ?? [];
        list.push(record);
        byServer.set(server, list);
      }
    }
    return { byServer, registered: records.length, unchanged };
  }

  /**
   * A chunk's network side: each registration server gets its records; a device is marked pushed once
   * every one of its servers has its record (a re-run pushes the others again, with the same nonce).
   */
  private async pushChunk(byServer: Map<string, RegistrationRecord[]>): Promise<void> {
    const results = await Promise.allSettled(
      [...byServer].map(([server, list]) => this.options.consumers.pushRegistrations(server, list)),
    );
    const servers = [...byServer.keys()];
    const lists = [...byServer.values()];
    const missed = new Set<string>();
    results.forEach((result, i) => {
      if (result.status === 'rejected') for (const r of lists[i]!) missed.add(r.dsimId);
      // Another credentialing server owns these records there: a retry cannot change that, so they
      // stay unpushed (counted in the backlog metric) and are logged for the operator.
      else if (result.value.refused?.length) {
        for (const dsimId of result.value.refused) missed.add(dsimId);
        this.options.log.warn(
          {
            registrationServer: servers[i],
            refused: result.value.refused.slice(0, 20),
            count: result.value.refused.length,
          },
          'the registration server keeps these devices as another credentialing server’s',
        );
      }
    });
    const pushed = new Set(lists.flat().map((r) => r.dsimId));
    await this.options.store.markPushed([...pushed].filter((dsimId) => !missed.has(dsimId)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
