import type { Logger } from 'pino';
import { AkaAuthenticator } from '../aka/network.js';
import { SimcredError } from '../errors/index.js';
import type { attachChallenge, attachResponse, attachResync } from '../protocol/hss.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';
import type { KeyEncryptionKey } from '../keys/key-encryption.js';
import type { HssStore } from './store.js';

export interface HssAttachOptions {
  store: HssStore;
  /** Key-encryption key K/OPc are sealed under (in memory or in a PKCS#11 token). */
  kek: KeyEncryptionKey;
  challengeTtlSeconds: number;
  log: Logger;
}

/**
 * DESIGN §2 step 12, the proof that the download worked: the device attaches with the downloaded
 * IMSI/K/OPc. The HSS/HLR runs Milenage AKA with the subscriber's K/OPc (opened from their sealed
 * form) and its SQN counter (the `sqn` column, SEQ_HE); a correct RES makes the subscriber 'active'.
 *
 * @example
 *   const attach = new HssAttach({ store, kek, challengeTtlSeconds: 60, log });
 *   const { rand, autn } = await attach.challenge({ imsi });
 */
export class HssAttach {
  private readonly aka: AkaAuthenticator;

  constructor(private readonly options: HssAttachOptions) {
    const { store, kek } = options;
    this.aka = new AkaAuthenticator({
      challengeTtlSeconds: options.challengeTtlSeconds,
      // Per subscriber: the AMF stored with it (the one its package carried).
      amf: Buffer.alloc(2),
      state: store.aka,
      keys: async (imsi) => {
        const s = await store.findByImsi(imsi);
        if (!s) return undefined;
        return {
          k: kek.open(s.kSealed, `k:${imsi}`),
          opc: kek.open(s.opcSealed, `opc:${imsi}`),
        };
      },
    });
  }

  async challenge(body: BodyOf<typeof attachChallenge>): Promise<ResponseOf<typeof attachChallenge>> {
    const amf = await this.amfOf(body.imsi);
    const { rand, autn } = await this.aka.challenge(body.imsi, new Date(), amf);
    return { rand: rand.toString('hex'), autn: autn.toString('hex') };
  }

  async resync(body: BodyOf<typeof attachResync>): Promise<ResponseOf<typeof attachResync>> {
    const amf = await this.amfOf(body.imsi);
    const { rand, autn } = await this.aka.resync(
      body.imsi,
      Buffer.from(body.rand, 'hex'),
      Buffer.from(body.auts, 'hex'),
      new Date(),
      amf,
    );
    this.options.log.debug({ imsi: body.imsi }, 'attach SQN resynchronised');
    return { rand: rand.toString('hex'), autn: autn.toString('hex') };
  }

  async respond(body: BodyOf<typeof attachResponse>): Promise<ResponseOf<typeof attachResponse>> {
    try {
      // Checked again at the answer: a suspension that lands after the challenge still refuses.
      await this.amfOf(body.imsi);
      await this.aka.verify(body.imsi, Buffer.from(body.res, 'hex'));
    } catch (err) {
      this.options.log.info(
        { imsi: body.imsi, code: err instanceof SimcredError ? err.code : 'error' },
        'attach failed',
      );
      throw err;
    }
    await this.options.store.markActive(body.imsi, new Date());
    this.options.log.debug({ imsi: body.imsi }, 'attached');
    return { attached: true };
  }

  /** The subscriber's AMF, once it is known to be allowed to attach (not suspended, not ended). */
  private async amfOf(imsi: string): Promise<Buffer> {
    const subscriber = await this.options.store.findByImsi(imsi);
    if (!subscriber) {
      // Released (revoked or deleted) and not allocated again: the subscription ended.
      if (await this.options.store.isReleased(imsi)) {
        throw new SimcredError('SIMCRED_SUBSCRIPTION_ENDED', 'the subscription of this IMSI has ended');
      }
      throw new SimcredError('SIMCRED_AKA_SUBSCRIBER_UNKNOWN', 'no subscriber with this identity');
    }
    if (subscriber.suspended) {
      throw new SimcredError('SIMCRED_SUBSCRIPTION_SUSPENDED', 'the operator suspended this subscription');
    }
    return Buffer.from(subscriber.amf, 'hex');
  }
}
