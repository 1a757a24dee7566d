import type { Logger } from 'pino';
import { systemClock, type Clock } from '../time/clock.js';
import { isSimcredError } from '../errors/index.js';
import { CoalescedRun } from '../storage/index.js';
import { MAX_RELEASES_PER_CALL } from '../protocol/hss.js';
import { MAX_RECORDS_PER_PUSH, MAX_STATEMENTS_PER_PUSH } from '../protocol/registration.js';
import { RegistrationState } from '../protocol/credentialing.js';
import type { CredentialingConsumers } from './consumers.js';
import type { CredentialingStore, PeerAction, PeerActionKind, RegistrationStateName } from './store.js';

export interface PeerActionSenderOptions {
  store: CredentialingStore;
  consumers: CredentialingConsumers;
  log: Logger;
  /** How often actions due again (retries, lapsed leases) are looked for. */
  pollMs?: number;
  /** How long a claimed action is this sender's before another may take it. */
  leaseMs?: number;
  /** Backoff after a failure: doubling from `retryBaseMs` up to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  clock?: Clock;
}

const CLAIM_BATCH = 500;

/**
 * Drains the credentialing server's outbox of peer actions (CredentialingStore.peer_actions): the
 * withdrawal of a used or revoked registration from its registration server, the release of a
 * revoked device's subscriber at the HSS, the operator's suspend, resume and delete at the HSS, and a
 * transferred device's statement to its registration server.
 * Each action was written in the transaction of the state
 * change that owes it, so a peer that is down, or a process that dies, delays it but never loses it:
 * a failed call is retried with backoff, a crashed sender's claim lapses. Both calls are idempotent,
 * so an action sent twice (a lease that lapsed mid-call) does no harm.
 *
 * @example
 *   const sender = new PeerActionSender({ store, consumers, log });
 *   sender.start();  // then sender.kick() after each state change that queued an action
 */
export class PeerActionSender {
  private timer: NodeJS.Timeout | undefined;
  private readonly loop = new CoalescedRun(
    () => this.drain(),
    (err: unknown) =>
      this.options.log.warn(
        { code: isSimcredError(err) ? err.code : 'unknown' },
        'peer actions: drain failed',
      ),
    'peer-actions',
  );
  private readonly clock: () => Date;

  constructor(private readonly options: PeerActionSenderOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** Looks for due actions every pollMs until stopped. */
  start(): void {
    this.timer = setInterval(() => this.kick(), this.options.pollMs ?? 1000);
    this.timer.unref();
    this.kick();
  }

  /** Drain soon (coalesced: a burst of deliveries becomes one batch per peer). */
  kick(): void {
    this.loop.kick();
  }

  /** Waits for the drain under way (tests, shutdown). */
  idle(): Promise<void> {
    return this.loop.idle();
  }

  /**
   * Stops polling and sends what is due one last time (a clean shutdown leaves nothing owed while the
   * peers are up; what fails stays in the outbox for the next start).
   */
  async stop(): Promise<void> {
    this.loop.stop();
    if (this.timer) clearInterval(this.timer);
    await this.idle();
    await this.drain().catch((err: unknown) => {
      this.options.log.warn(
        { code: isSimcredError(err) ? err.code : 'unknown' },
        'peer actions: final drain failed',
      );
    });
  }

  /** Sends every due action once; returns how many were claimed. */
  async drain(): Promise<number> {
    let claimed = 0;
    for (;;) {
      const actions = await this.options.store.claimPeerActions(
        this.clock(),
        this.options.leaseMs ?? 30_000,
        CLAIM_BATCH,
      );
      if (actions.length === 0) return claimed;
      claimed += actions.length;
      const { owed, moot } = await this.stillOwed(actions);
      await this.options.store.completePeerActions(
        moot.map(({ action: a, state }) => ({
          id: a.id,
          dsimId: a.dsimId,
          event: `${a.kind}-moot`,
          // Why it is no longer owed: the device was registered again, or the operator decided otherwise.
          detail: state === undefined ? null : `now ${state}`,
        })),
        this.clock(),
      );
      for (const batch of batches(owed)) await this.send(batch);
    }
  }

  /**
   * An action is sent only while the device's record still calls for it: a device registered again
   * since (the operator re-registered a revoked device) must keep its new registration and whatever
   * subscriber its new onboarding got; a suspension the operator has since resumed (or the other way
   * round) is not sent, so whatever order a suspend and a resume are retried in, the HSS ends in
   * the state the credentialing server holds.
   */
  private async stillOwed(actions: PeerAction[]): Promise<{
    owed: PeerAction[];
    moot: { action: PeerAction; state: RegistrationStateName | undefined }[];
  }> {
    const records = await this.options.store.findMany([...new Set(actions.map((a) => a.dsimId))]);
    const owed: PeerAction[] = [];
    const moot: { action: PeerAction; state: RegistrationStateName | undefined }[] = [];
    for (const action of actions) {
      const record = records.get(action.dsimId);
      const state = record?.state;
      // An action stamped with a generation the device has since left behind (re-registered or
      // re-provisioned) is still owed: it names the newest generation it may touch, so the peer
      // ends the old registration or subscriber and spares the new one.
      const bounded =
        action.generation !== null && record !== undefined && record.generation > action.generation;
      const due = bounded || (state !== undefined && OWED_IN[action.kind].includes(state));
      if (due) owed.push(action);
      else moot.push({ action, state });
    }
    return { owed, moot };
  }

  /**
   * After a suspend or resume landed at the HSS, the record is read again: if the operator decided
   * the opposite meanwhile (its call may have reached the HSS before this one, sent by another
   * instance), the opposite is owed once more, so the HSS ends as the record says.
   */
  private async followUp(batch: {
    kind: 'suspend' | 'resume';
    target: string;
    actions: PeerAction[];
  }): Promise<void> {
    const opposite: PeerActionKind = batch.kind === 'suspend' ? 'resume' : 'suspend';
    const records = await this.options.store.findMany(batch.actions.map((a) => a.dsimId));
    const again = batch.actions
      .filter((a) => {
        const state = records.get(a.dsimId)?.state;
        return state !== undefined && OWED_IN[opposite].includes(state);
      })
      .map((a) => ({ kind: opposite, dsimId: a.dsimId, target: batch.target }));
    // Due now: the drain under way claims them before it stops.
    await this.options.store.queuePeerActions(again, this.clock());
  }

  /** One HSS call for a batch of one kind; every answer lists an outcome and an IMSI per DSIM_ID. */
  private async callHss(
    kind: HssActionKind,
    hssUrl: string,
    actions: PeerAction[],
  ): Promise<{ dsimId: string; outcome: string; imsi: string | null }[]> {
    const { consumers } = this.options;
    const dsimIds = actions.map((a) => a.dsimId);
    const upToGeneration = generationsOf(actions);
    switch (kind) {
      case 'release':
        return (await consumers.releaseSubscribers(hssUrl, { dsimIds, reason: 'revoked', upToGeneration }))
          .results;
      case 'supersede':
        return (
          await consumers.releaseSubscribers(hssUrl, { dsimIds, reason: 'reprovisioned', upToGeneration })
        ).results;
      case 'suspend':
        return (await consumers.suspendSubscribers(hssUrl, { dsimIds })).results;
      case 'resume':
        return (await consumers.resumeSubscribers(hssUrl, { dsimIds })).results;
      case 'delete':
        return (await consumers.deleteSubscribers(hssUrl, { dsimIds, reason: 'deleted', upToGeneration }))
          .results;
    }
  }

  private async send(batch: { kind: PeerActionKind; target: string; actions: PeerAction[] }): Promise<void> {
    const { store, consumers } = this.options;
    const dsimIds = batch.actions.map((a) => a.dsimId);
    try {
      if (batch.kind === 'withdraw' || batch.kind === 'retire') {
        const used = batch.kind === 'retire';
        const { refused = [] } = await consumers.withdrawRegistrations(batch.target, dsimIds, {
          ...(used ? { used } : {}),
          upToGeneration: generationsOf(batch.actions),
        });
        // A record another credentialing server pushed is not ours to withdraw: done, and said so.
        const notOurs = new Set(refused);
        await store.completePeerActions(
          batch.actions.map((a) => ({
            id: a.id,
            dsimId: a.dsimId,
            event: notOurs.has(a.dsimId) ? 'withdraw-refused' : used ? 'retired' : 'withdrawn',
            detail: batch.target,
          })),
          this.clock(),
        );
      } else if (batch.kind === 'transfer') {
        const found = await store.transferStatements(dsimIds);
        const statements = dsimIds.flatMap((dsimId) => {
          const t = found.get(dsimId);
          return t ? [{ dsimId, ...t }] : [];
        });
        if (statements.length > 0) await consumers.pushTransferStatements(batch.target, statements);
        await store.completePeerActions(
          batch.actions.map((a) => ({
            id: a.id,
            dsimId: a.dsimId,
            event: 'transfer-pushed',
            detail: batch.target,
          })),
          this.clock(),
        );
      } else {
        const results = await this.callHss(batch.kind, batch.target, batch.actions);
        const outcome = new Map(results.map((r) => [r.dsimId, r]));
        const applied = APPLIED_EVENT[batch.kind];
        await store.completePeerActions(
          batch.actions.map((a) => {
            const r = outcome.get(a.dsimId);
            // Audited either way: what the HSS did (with the IMSI), or that it had no subscriber.
            return r && r.outcome !== 'absent'
              ? { id: a.id, dsimId: a.dsimId, event: applied, detail: r.imsi }
              : { id: a.id, dsimId: a.dsimId, event: 'subscriber-none', detail: null };
          }),
          this.clock(),
        );
        if (batch.kind === 'suspend' || batch.kind === 'resume') {
          await this.followUp({ kind: batch.kind, target: batch.target, actions: batch.actions });
        }
      }
    } catch (err) {
      const code = isSimcredError(err) ? err.code : 'SIMCRED_INTERNAL';
      const attempts = Math.max(...batch.actions.map((a) => a.attempts));
      const base = this.options.retryBaseMs ?? 1000;
      const delay = Math.min(base * 2 ** Math.min(attempts - 1, 20), this.options.retryMaxMs ?? 300_000);
      this.options.log.warn(
        { kind: batch.kind, target: batch.target, devices: dsimIds.length, attempts, code },
        'peer action failed; retrying later',
      );
      await store.retryPeerActions(
        batch.actions.map((a) => a.id),
        new Date(this.clock().getTime() + delay),
        code,
      );
    }
  }
}

/**
 * The registration states in which an action of each kind is still owed (else it is dropped as moot),
 * while the device is still in the generation the action was queued for.
 */
const OWED_IN: Record<PeerActionKind, readonly RegistrationStateName[]> = {
  withdraw: [
    'revoked',
    'expired',
    'delivered',
    'completed',
    'suspended',
    'deleted',
    'transferring',
    'transferred',
  ],
  retire: ['delivered', 'completed', 'suspended', 'revoked', 'deleted', 'transferring', 'transferred'],
  release: ['revoked'],
  suspend: ['suspended'],
  resume: ['delivered', 'completed'],
  delete: ['deleted', 'transferred'],
  // Bounded to the older generations: owed whatever the device does next.
  supersede: RegistrationState.options,
  transfer: ['transferring'],
};

type HssActionKind = Exclude<PeerActionKind, 'withdraw' | 'retire' | 'transfer'>;

/** The audit event that records an HSS action applied. */
const APPLIED_EVENT: Record<HssActionKind, string> = {
  release: 'subscriber-released',
  suspend: 'subscriber-suspended',
  resume: 'subscriber-resumed',
  delete: 'subscriber-deleted',
  supersede: 'subscriber-superseded',
};

/** Per DSIM_ID, the newest generation the peer may touch (actions queued before generations: any). */
function generationsOf(actions: PeerAction[]): Record<string, number> | undefined {
  const bounded = actions.filter((a) => a.generation !== null);
  if (bounded.length === 0) return undefined;
  const upTo: Record<string, number> = {};
  // Two actions of one device in a batch: the newer bound covers the older.
  for (const a of bounded) upTo[a.dsimId] = Math.max(upTo[a.dsimId] ?? 0, a.generation!);
  return upTo;
}

/** Actions grouped by kind and peer, in calls no larger than the peer's route allows. */
function batches(actions: PeerAction[]): { kind: PeerActionKind; target: string; actions: PeerAction[] }[] {
  const groups = new Map<string, { kind: PeerActionKind; target: string; actions: PeerAction[] }>();
  const out: { kind: PeerActionKind; target: string; actions: PeerAction[] }[] = [];
  for (const action of actions) {
    const limit =
      action.kind === 'withdraw' || action.kind === 'retire'
        ? MAX_RECORDS_PER_PUSH
        : action.kind === 'transfer'
          ? MAX_STATEMENTS_PER_PUSH
          : MAX_RELEASES_PER_CALL;
    const key = `${action.kind} ${action.target}`;
    let group = groups.get(key);
    if (!group || group.actions.length >= limit) {
      group = { kind: action.kind, target: action.target, actions: [] };
      groups.set(key, group);
      out.push(group);
    }
    group.actions.push(action);
  }
  return out;
}
