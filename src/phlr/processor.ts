import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { AkaAuthenticator } from '../aka/network.js';
import { SimcredError } from '../errors/index.js';
import type { PreliminarySubscriber } from '../pki/index.js';
import type { importSubscribers, phlrChallenge, phlrResponse, phlrResync } from '../protocol/phlr.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import { signGrant, type GrantSigner } from './grant.js';
import type { PhlrStore } from './store.js';
import type { KeyEncryptionKey } from '../keys/key-encryption.js';
import { systemClock, type Clock } from '../time/clock.js';

export interface PhlrProcessorOptions {
  store: PhlrStore;
  /** The factory's list, one {pimsi, dsimId, kPimsi, opcPimsi} per line, appended as devices are made. */
  subscribersFile: string;
  /** Key-encryption key for K_PIMSI/OPc_PIMSI at rest (in memory or in a PKCS#11 token). */
  kek: KeyEncryptionKey;
  signer: GrantSigner;
  grantTtlSeconds: number;
  challengeTtlSeconds: number;
  amf: Buffer;
  log: Logger;
  /** Time for AKA challenges and grants (iat, exp); the real clock when omitted. */
  clock?: Clock;
}

const PIMSI = /^\d{15}$/;
const DSIM_ID = /^DSIM[0-9A-F]{16}$/;
const HEX16 = /^[0-9a-fA-F]{32}$/;
/** Lines read per import transaction. */
const IMPORT_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Preliminary HLR work (role 50, DESIGN §2 step 1): Milenage AKA on the preliminary credentials and,
 * on a correct RES, a short-lived access grant for registration traffic only.
 */
export class PhlrProcessor {
  private readonly aka: AkaAuthenticator;
  private importing: Promise<number> | undefined;

  constructor(private readonly options: PhlrProcessorOptions) {
    const { store, kek } = options;
    this.aka = new AkaAuthenticator({
      amf: options.amf,
      challengeTtlSeconds: options.challengeTtlSeconds,
      state: store.aka,
      keys: async (pimsi) => {
        let subscriber = await store.find(pimsi);
        // Devices are made after the PHLR starts: an unknown PIMSI triggers a read of the new lines.
        if (!subscriber) {
          await this.importSubscribers();
          subscriber = await store.find(pimsi);
        }
        if (!subscriber) return undefined;
        return {
          k: kek.open(subscriber.kSealed, `k:${pimsi}`),
          opc: kek.open(subscriber.opcSealed, `opc:${pimsi}`),
        };
      },
    });
  }

  async challenge(body: BodyOf<typeof phlrChallenge>): Promise<ResponseOf<typeof phlrChallenge>> {
    const { rand, autn } = await this.aka.challenge(body.pimsi, this.now());
    return { rand: rand.toString('hex'), autn: autn.toString('hex') };
  }

  async resync(body: BodyOf<typeof phlrResync>): Promise<ResponseOf<typeof phlrResync>> {
    const { rand, autn } = await this.aka.resync(
      body.pimsi,
      Buffer.from(body.rand, 'hex'),
      Buffer.from(body.auts, 'hex'),
      this.now(),
    );
    this.options.log.debug({ pimsi: body.pimsi }, 'SQN resynchronised');
    return { rand: rand.toString('hex'), autn: autn.toString('hex') };
  }

  /** A correct RES buys a grant: ES256 JWS {sub: PIMSI, dsimId, scope: registration, iat, exp, jti}. */
  async respond(body: BodyOf<typeof phlrResponse>): Promise<ResponseOf<typeof phlrResponse>> {
    try {
      await this.aka.verify(body.pimsi, Buffer.from(body.res, 'hex'), this.now());
    } catch (err) {
      this.options.log.info(
        { pimsi: body.pimsi, code: err instanceof SimcredError ? err.code : 'error' },
        'preliminary AKA failed',
      );
      throw err;
    }
    const subscriber = (await this.options.store.find(body.pimsi))!;
    const { grant, expiresAt, jti } = await signGrant(this.options.signer, {
      pimsi: body.pimsi,
      dsimId: subscriber.dsimId,
      ttlSeconds: this.options.grantTtlSeconds,
      now: this.now(),
    });
    this.options.log.debug({ pimsi: body.pimsi, dsimId: subscriber.dsimId, jti }, 'access granted');
    return { grant, expiresAt: expiresAt.toISOString() };
  }

  private now(): Date {
    return (this.options.clock ?? systemClock)();
  }

  async importNow(_body: BodyOf<typeof importSubscribers>): Promise<ResponseOf<typeof importSubscribers>> {
    const imported = await this.importSubscribers();
    return { imported, subscribers: await this.options.store.countSubscribers() };
  }

  /**
   * Reads the complete lines appended to the subscriber list since the last import (a line still
   * being written waits for the next one) and stores them with K/OPc sealed. One import at a time:
   * a caller arriving during one waits for it, then reads what was appended since. Returns how many
   * subscribers were new.
   */
  async importSubscribers(): Promise<number> {
    while (this.importing) await this.importing.catch(() => 0);
    const importing = this.readNewLines().finally(() => (this.importing = undefined));
    this.importing = importing;
    return importing;
  }

  private async readNewLines(): Promise<number> {
    const { store, subscribersFile, kek, log } = this.options;
    let size: number;
    try {
      size = statSync(subscribersFile).size;
    } catch {
      return 0; // no device made yet
    }
    let offset = await store.importOffset();
    // The list was replaced by a shorter one: read it again from the start (known PIMSIs are kept).
    if (offset > size) offset = 0;
    let added = 0;
    const fd = openSync(subscribersFile, 'r');
    try {
      while (offset < size) {
        const buffer = Buffer.alloc(Math.min(IMPORT_CHUNK_BYTES, size - offset));
        const read = readSync(fd, buffer, 0, buffer.length, offset);
        const end = buffer.subarray(0, read).lastIndexOf(0x0a);
        if (end < 0) break; // only a partial line so far
        const lines = buffer.subarray(0, end).toString('utf8').split('\n');
        const subscribers = [];
        for (const line of lines) {
          const parsed = parseLine(line);
          if (!parsed) {
            if (line.trim()) log.warn({ file: subscribersFile }, 'skipped a malformed subscriber line');
            continue;
          }
          subscribers.push({
            pimsi: parsed.pimsi,
            dsimId: parsed.dsimId,
            kSealed: kek.seal(Buffer.from(parsed.kPimsi, 'hex'), `k:${parsed.pimsi}`),
            opcSealed: kek.seal(Buffer.from(parsed.opcPimsi, 'hex'), `opc:${parsed.pimsi}`),
          });
        }
        offset += end + 1;
        added += await store.importSubscribers(subscribers, offset);
      }
    } finally {
      closeSync(fd);
    }
    if (added > 0) log.info({ added }, 'preliminary subscribers imported');
    return added;
  }
}

function parseLine(line: string): PreliminarySubscriber | undefined {
  let value: Partial<PreliminarySubscriber>;
  try {
    value = JSON.parse(line) as Partial<PreliminarySubscriber>;
  } catch {
    return undefined;
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof value.pimsi !== 'string' ||
    !PIMSI.test(value.pimsi) ||
    typeof value.dsimId !== 'string' ||
    !DSIM_ID.test(value.dsimId) ||
    typeof value.kPimsi !== 'string' ||
    !HEX16.test(value.kPimsi) ||
    typeof value.opcPimsi !== 'string' ||
    !HEX16.test(value.opcPimsi)
  ) {
    return undefined;
  }
  return value as PreliminarySubscriber;
}
