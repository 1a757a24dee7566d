import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { SimcredError, isSimcredError, type ErrorCode } from '../errors/index.js';
import { chunked } from '../http/index.js';
import {
  PortalDeviceState,
  type Billing,
  type Contract,
  type Device,
  type Funnel,
  type Plan,
  type Rejection,
  type TimelineEvent,
  type Upload,
} from '../protocol/portal.js';
import { inKeyOrder } from '../storage/index.js';
import type { Clock } from '../time/clock.js';
import type { PortalAccount } from './accounts.js';
import { checkRow, type DeviceRow } from './device-list.js';
import type { EventHub } from './events.js';
import type { SharedEvent } from './shared-events.js';
import type { FeedEvent } from './feed.js';
import { newId } from './ids.js';
import type { OperatorClient } from './operator-client.js';
import type { PaymentProvider } from './payment.js';
import { stateCounts, type PortalTables } from './store.js';

type ContractView = z.infer<typeof Contract>;
type DeviceView = z.infer<typeof Device>;
type UploadView = z.infer<typeof Upload>;
type RejectionView = z.infer<typeof Rejection>;
type PlanView = z.infer<typeof Plan>;
type DeviceState = z.infer<typeof PortalDeviceState>;

/** Rows registered at the credentialing server per request (and validated per database round). */
const CHUNK = 1000;
/** Rejections an upload keeps to show (the counts cover them all). */
const KEPT_REJECTIONS = 1000;
/** States after delivery: the device has its credentials, there is nothing left to add or cancel. */
const DELIVERED = new Set([
  'delivered',
  'completed',
  'attached',
  'suspended',
  'active',
  'deleted',
  'reprovisioned',
  'transferring',
  'transferred',
]);
/** States from which adding the device again registers it again. */
const REREGISTERABLE = new Set(['pending', 'rejected', 'revoked', 'expired', 'failed']);

export interface ContractServiceOptions {
  db: Kysely<PortalTables>;
  plans: PlanView[];
  payments: PaymentProvider;
  operator: OperatorClient;
  credentialingUrl: () => string;
  /**
   * The registration server each device's factory image names, for rows that name none (typed-in
   * devices, files without a registration_server column); devices it does not know go to the default.
   */
  registrationServersOf: (dsimIds: string[]) => Promise<Map<string, string>>;
  /** Where devices are registered when neither their row nor the directory names a registration server. */
  registrationServer: () => string;
  /** This instance's browsers: the funnel goes to its operators. */
  hub: EventHub;
  /** Device and upload events, shared with every portal instance on this database. */
  events: { publish(events: SharedEvent[]): Promise<void> };
  clock: Clock;
  log: Logger;
}

/**
 * The portal's processor (step 0a): contracts, their payment and devices, uploads, and the device
 * states the credentialing server reports. Knows nothing of HTTP; every read is scoped to what the
 * account may see (another owner's contract is unknown).
 */
export class ContractService {
  private funnelTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: ContractServiceOptions) {}

  plans(): PlanView[] {
    return this.o.plans;
  }

  async createContract(
    owner: PortalAccount,
    input: { planId: string; billing: z.infer<typeof Billing>; paymentReference: string },
  ): Promise<ContractView> {
    const plan = this.o.plans.find((p) => p.id === input.planId);
    if (!plan) {
      throw new SimcredError(
        'SIMCRED_PLAN_UNKNOWN',
        `planId: no plan "${input.planId}" (plans: ${this.o.plans.map((p) => p.id).join(', ')})`,
      );
    }
    const id = newId('C');
    const payment = await this.o.payments.authorise({
      contractId: id,
      amount: plan.monthlyPricePerDevice.amount,
      currency: plan.monthlyPricePerDevice.currency,
      reference: input.paymentReference,
    });
    const now = this.now();
    await this.o.db
      .insertInto('contracts')
      .values({
        id,
        owner_id: owner.id,
        plan_id: plan.id,
        billing: JSON.stringify(input.billing),
        payment_status: payment.status,
        payment_reference: input.paymentReference,
        payment_reason: payment.status === 'declined' ? payment.reason : null,
        payment_at: now,
        created_at: now,
      })
      .execute();
    return this.getContract(owner, id);
  }

  async retryPayment(owner: PortalAccount, contractId: string, reference: string): Promise<ContractView> {
    const contract = await this.contractRow(owner, contractId);
    if (contract.payment_status !== 'authorised') {
      const plan = this.plan(contract.plan_id);
      const payment = await this.o.payments.authorise({
        contractId,
        amount: plan?.monthlyPricePerDevice.amount ?? '0.00',
        currency: plan?.monthlyPricePerDevice.currency ?? 'EUR',
        reference,
      });
      await this.o.db
        .updateTable('contracts')
        .set({
          payment_status: payment.status,
          payment_reference: reference,
          payment_reason: payment.status === 'declined' ? payment.reason : null,
          payment_at: this.now(),
        })
        .where('id', '=', contractId)
        .execute();
    }
    return this.getContract(owner, contractId);
  }

  async getContract(account: PortalAccount, contractId: string): Promise<ContractView> {
    const row = await this.contractRow(account, contractId);
    const [view] = await this.contractViews([row]);
    return view!;
  }

  async listContracts(
    account: PortalAccount,
    query: { after?: string; limit: number; q?: string },
  ): Promise<{ items: ContractView[]; next: string | null }> {
    let select = this.contractQuery()
      .orderBy('contracts.id')
      .limit(query.limit + 1);
    if (account.kind === 'owner') select = select.where('contracts.owner_id', '=', account.id);
    if (query.after) select = select.where('contracts.id', '>', query.after);
    const q = query.q?.trim();
    if (q) {
      select = select.where((eb) =>
        eb.or([
          eb('contracts.id', '=', q.toUpperCase()),
          eb('accounts.email', 'like', `%${q.toLowerCase().replace(/[%_\\]/g, '')}%`),
          eb(
            'contracts.id',
            'in',
            eb
              .selectFrom('devices')
              .select('devices.contract_id')
              .where((d) => d.or([d('devices.dsim_id', '=', q.toUpperCase()), d('devices.imsi', '=', q)])),
          ),
        ]),
      );
    }
    const rows = await select.execute();
    const page = rows.slice(0, query.limit);
    return {
      items: await this.contractViews(page),
      next: rows.length > query.limit ? page[page.length - 1]!.id : null,
    };
  }

  async listDevices(
    account: PortalAccount,
    contractId: string,
    query: { after?: string; limit: number; state?: DeviceState },
  ): Promise<{ items: DeviceView[]; next: string | null }> {
    await this.contractRow(account, contractId);
    let select = this.o.db
      .selectFrom('devices')
      .selectAll()
      .where('contract_id', '=', contractId)
      .orderBy('dsim_id')
      .limit(query.limit + 1);
    if (query.after) select = select.where('dsim_id', '>', query.after);
    if (query.state) select = select.where('state', '=', query.state);
    const rows = await select.execute();
    const page = rows.slice(0, query.limit);
    return {
      items: page.map(deviceView),
      next: rows.length > query.limit ? page[page.length - 1]!.dsim_id : null,
    };
  }

  /** Devices typed in (at most 100): each accepted and registered, or rejected with its reason. */
  async addDevices(
    owner: PortalAccount,
    contractId: string,
    dsimIds: string[],
  ): Promise<{ accepted: string[]; rejected: RejectionView[] }> {
    const contract = await this.admissible(owner, contractId);
    const rows = (async function* () {
      for (const [i, dsimId] of dsimIds.entries()) yield checkRow(i + 1, dsimId.trim(), undefined);
    })();
    const accepted: string[] = [];
    const rejected: RejectionView[] = [];
    await this.admit(contract, rows, newId('T'), {
      accepted: (ids) => accepted.push(...ids),
      rejected: (r) => rejected.push(r),
      publishDevices: true,
    });
    return { accepted, rejected: rejected.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)) };
  }

  /**
   * A device file streamed from the request: rows validated and registered a chunk at a time, the
   * upload's progress kept in its row (and pushed to the owner) as it runs. The answer is the finished
   * upload; a file that cannot be read at all is SIMCRED_UPLOAD_INVALID, a dependency that fails
   * midway ends the upload as `failed` with the line it stopped at.
   */
  async upload(
    owner: PortalAccount,
    contractId: string,
    rows: AsyncIterable<DeviceRow>,
    fileName: string | null,
  ): Promise<UploadView> {
    const contract = await this.admissible(owner, contractId);
    const upload: UploadView = {
      id: newId('U'),
      contractId,
      fileName,
      state: 'running',
      rows: 0,
      accepted: 0,
      rejectedCount: 0,
      rejected: [],
      startedAt: this.now(),
      finishedAt: null,
    };
    await this.o.db
      .insertInto('uploads')
      .values({
        id: upload.id,
        contract_id: contractId,
        owner_id: owner.id,
        file_name: fileName,
        state: 'running',
        rows: 0,
        accepted: 0,
        rejected_count: 0,
        rejected: '[]',
        started_at: upload.startedAt,
        finished_at: null,
      })
      .execute();
    const keep = (r: RejectionView) => {
      upload.rejectedCount++;
      if (upload.rejected.length < KEPT_REJECTIONS) upload.rejected.push(r);
    };
    let lastLine = 0;
    try {
      await this.admit(
        contract,
        counted(rows, (line, n) => ((lastLine = line), (upload.rows += n))),
        upload.id,
        {
          accepted: (ids) => (upload.accepted += ids.length),
          rejected: keep,
          publishDevices: false,
          chunkDone: () => this.saveUpload(upload, contract.owner_id),
        },
      );
      upload.state = 'done';
    } catch (err) {
      upload.state = 'failed';
      upload.finishedAt = this.now();
      if (isSimcredError(err) && err.code === 'SIMCRED_DEPENDENCY_UNAVAILABLE') {
        keep({
          code: err.code,
          message: `${err.message}: the rows after line ${lastLine} were not read (upload the file again: rows already registered stay as they are)`,
        });
        await this.saveUpload(upload, contract.owner_id);
        return sortRejections(upload);
      }
      await this.saveUpload(upload, contract.owner_id);
      throw err;
    }
    upload.finishedAt = this.now();
    await this.saveUpload(upload, contract.owner_id);
    return sortRejections(upload);
  }

  async listUploads(
    account: PortalAccount,
    query: { after?: string; limit: number },
  ): Promise<{ items: UploadView[]; next: string | null }> {
    let select = this.o.db
      .selectFrom('uploads')
      .selectAll()
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(query.limit + 1);
    if (account.kind === 'owner') select = select.where('owner_id', '=', account.id);
    if (query.after) {
      const [at, id] = query.after.split('|');
      if (at && id) {
        select = select.where((eb) =>
          eb.or([eb('started_at', '<', at), eb.and([eb('started_at', '=', at), eb('id', '<', id)])]),
        );
      }
    }
    const rows = await select.execute();
    const page = rows.slice(0, query.limit);
    const last = page[page.length - 1];
    return {
      items: page.map(uploadView),
      next: rows.length > query.limit && last ? `${last.started_at}|${last.id}` : null,
    };
  }

  /** Cancels a device before delivery: its registration is revoked at the credentialing server. */
  async cancelDevice(account: PortalAccount, contractId: string, dsimId: string): Promise<DeviceView> {
    const contract = await this.contractRow(account, contractId);
    const device = await this.o.db
      .selectFrom('devices')
      .selectAll()
      .where('dsim_id', '=', dsimId)
      .where('contract_id', '=', contractId)
      .executeTakeFirst();
    if (!device)
      throw new SimcredError('SIMCRED_DEVICE_UNKNOWN', `no device ${dsimId} in contract ${contractId}`);
    if (DELIVERED.has(device.state)) {
      throw new SimcredError(
        'SIMCRED_REGISTRATION_USED',
        `${dsimId} was already delivered (${device.state})`,
      );
    }
    const reason = `cancelled by ${account.kind === 'operator' ? 'the operator' : 'the owner'}`;
    if (device.state !== 'revoked') {
      try {
        await this.o.operator.revoke(this.o.credentialingUrl(), dsimId, reason);
      } catch (err) {
        // Never registered there (still pending, or rejected): nothing to revoke but our own row.
        if (!(isSimcredError(err) && err.code === 'SIMCRED_REGISTRATION_UNKNOWN')) throw err;
      }
      await this.setState(dsimId, 'revoked', reason);
    }
    const updated = await this.deviceRow(dsimId);
    await this.publishDevices([updated], contract.owner_id);
    return deviceView(updated!);
  }

  async funnel(): Promise<z.infer<typeof Funnel>> {
    const counts = await this.o.db
      .selectFrom('devices')
      .select(['state', sql<number>`count(*)`.as('n')])
      .groupBy('state')
      .execute();
    const totals = emptyTotals();
    let devices = 0;
    for (const row of counts) {
      totals[row.state as DeviceState] = Number(row.n);
      devices += Number(row.n);
    }
    const contracts = await this.o.db
      .selectFrom('contracts')
      .select(sql<number>`count(*)`.as('n'))
      .executeTakeFirstOrThrow();
    return { totals, contracts: Number(contracts.n), devices, at: this.now() };
  }

  /** A device, its owner and its audit trail at the credentialing server, each event with the role that wrote it. */
  async deviceTimeline(dsimId: string): Promise<{
    device: DeviceView;
    ownerEmail: string;
    timeline: z.infer<typeof TimelineEvent>[];
  }> {
    const row = await this.o.db
      .selectFrom('devices')
      .innerJoin('contracts', 'contracts.id', 'devices.contract_id')
      .innerJoin('accounts', 'accounts.id', 'contracts.owner_id')
      .selectAll('devices')
      .select('accounts.email')
      .where('devices.dsim_id', '=', dsimId)
      .executeTakeFirst();
    if (!row) throw new SimcredError('SIMCRED_DEVICE_UNKNOWN', `no device ${dsimId} in any contract`);
    let timeline: z.infer<typeof TimelineEvent>[] = [];
    try {
      const state = await this.o.operator.deviceState(this.o.credentialingUrl(), dsimId);
      timeline = state.audit.map((e) => ({
        at: e.at,
        role: roleOfEvent(e.event),
        event: e.event,
        detail: e.detail,
      }));
      if (state.imsi && !row.imsi) {
        await this.o.db
          .updateTable('devices')
          .set({ imsi: state.imsi })
          .where('dsim_id', '=', dsimId)
          .execute();
        row.imsi = state.imsi;
      }
    } catch (err) {
      if (!(isSimcredError(err) && err.code === 'SIMCRED_REGISTRATION_UNKNOWN')) throw err;
    }
    return { device: deviceView(row), ownerEmail: row.email, timeline };
  }

  /**
   * Applies events of the credentialing server's feed: the device's state (and reason, IMSI) as
   * reported, pushed to its owner and the operators. Devices of no contract here are not ours: skipped.
   */
  async applyFeedEvents(events: FeedEvent[]): Promise<void> {
    const changed: SharedEvent[] = [];
    for (const event of events) {
      if (event.state === null) continue;
      const state: DeviceState = event.state;
      const reason = ['failed', 'expired', 'revoked'].includes(state) ? event.detail : null;
      const imsi = event.detail && /^\d{15}$/.test(event.detail) ? event.detail : undefined;
      const result = await this.o.db
        .updateTable('devices')
        .set({ state, reason, updated_at: this.now(), ...(imsi ? { imsi } : {}) })
        .where('dsim_id', '=', event.dsimId)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) continue;
      const row = await this.deviceRow(event.dsimId);
      if (row)
        changed.push({ type: 'device', ownerId: await this.ownerOf(row.contract_id), data: deviceView(row) });
    }
    await this.o.events.publish(changed);
  }

  stop(): void {
    clearTimeout(this.funnelTimer);
  }

  // --- admission of devices -----------------------------------------------------------------

  /**
   * The shared path of typed-in devices and uploads: per chunk, the rows are checked against the
   * store (a duplicate in the file, a device of another contract, a delivered one, the plan's limit),
   * the good ones stored as `pending`, registered at the credentialing server, and marked `registered`
   * only for what it accepted (its refusals become `rejected` with the reason).
   */
  private async admit(
    contract: PortalTables['contracts'],
    rows: AsyncIterable<DeviceRow>,
    uploadId: string,
    sink: {
      accepted(dsimIds: string[]): void;
      rejected(rejection: RejectionView): void;
      publishDevices: boolean;
      chunkDone?(): Promise<void>;
    },
  ): Promise<void> {
    const limit = this.plan(contract.plan_id)?.maxDevices ?? 0;
    // The contract's devices, counted once and then kept up to date here: a count per chunk would
    // make a file's cost grow with the square of its length.
    const held = { count: -1 };
    for await (const chunk of chunked(rows, CHUNK)) {
      const good: { line: number; dsimId: string; registrationServer: string }[] = [];
      const seen = new Map<string, number>();
      for (const row of chunk) {
        if ('code' in row) {
          sink.rejected({
            line: row.line,
            ...(row.dsimId ? { dsimId: row.dsimId } : {}),
            code: row.code,
            message: row.message,
          });
          continue;
        }
        const earlier = seen.get(row.dsimId);
        if (earlier !== undefined) {
          sink.rejected(duplicate(row.line, row.dsimId, `the same DSIM_ID as line ${earlier}`));
          continue;
        }
        seen.set(row.dsimId, row.line);
        good.push({ line: row.line, dsimId: row.dsimId, registrationServer: row.registrationServer ?? '' });
      }
      const unnamed = good.filter((g) => g.registrationServer === '').map((g) => g.dsimId);
      if (unnamed.length > 0) {
        const named = await this.o.registrationServersOf(unnamed);
        for (const g of good) {
          if (g.registrationServer === '')
            g.registrationServer = named.get(g.dsimId) ?? this.o.registrationServer();
        }
      }
      if (good.length > 0) await this.admitChunk(contract, good, uploadId, { limit, held }, sink);
      await sink.chunkDone?.();
    }
  }

  private async admitChunk(
    contract: PortalTables['contracts'],
    good: { line: number; dsimId: string; registrationServer: string }[],
    uploadId: string,
    plan: { limit: number; held: { count: number } },
    sink: {
      accepted(dsimIds: string[]): void;
      rejected(rejection: RejectionView): void;
      publishDevices: boolean;
    },
  ): Promise<void> {
    const { limit, held } = plan;
    const db = this.o.db;
    const now = this.now();
    const existing = new Map(
      (
        await db
          .selectFrom('devices')
          .selectAll()
          .where(
            'dsim_id',
            'in',
            good.map((g) => g.dsimId),
          )
          .execute()
      ).map((d) => [d.dsim_id, d]),
    );
    const fresh: typeof good = [];
    const again: typeof good = [];
    for (const row of good) {
      const known = existing.get(row.dsimId);
      if (!known) fresh.push(row);
      else if (known.contract_id !== contract.id) {
        sink.rejected(duplicate(row.line, row.dsimId, 'it belongs to another contract'));
      } else if (known.upload_id === uploadId) {
        sink.rejected(
          duplicate(row.line, row.dsimId, `the same DSIM_ID as line ${known.upload_line ?? '?'}`),
        );
      } else if (DELIVERED.has(known.state)) {
        sink.rejected({
          line: row.line,
          dsimId: row.dsimId,
          code: 'SIMCRED_REGISTRATION_USED',
          message: `line ${row.line}: ${row.dsimId} was already delivered (${known.state})`,
        });
      } else if (REREGISTERABLE.has(known.state)) again.push(row);
      else {
        // Registered and on its way: nothing to do, and nothing lost.
        await db
          .updateTable('devices')
          .set({ upload_id: uploadId, upload_line: row.line })
          .where('dsim_id', '=', row.dsimId)
          .execute();
        sink.accepted([row.dsimId]);
      }
    }
    // The plan's limit counts every device of the contract that is not refused. Counted afresh at
    // the start and whenever the limit is near (another upload to the contract may add devices too).
    if (fresh.length > 0) {
      if (held.count < 0 || limit - held.count <= 2 * CHUNK) held.count = await this.heldDevices(contract.id);
      const room = Math.max(0, limit - held.count);
      for (const row of fresh.splice(room)) {
        sink.rejected({
          line: row.line,
          dsimId: row.dsimId,
          code: 'SIMCRED_PLAN_LIMIT',
          message: `line ${row.line}: the plan allows at most ${limit} devices per contract`,
        });
      }
    }
    const base = {
      contract_id: contract.id,
      state: 'pending',
      reason: null,
      imsi: null,
      updated_at: now,
      upload_id: uploadId,
    };
    if (fresh.length > 0) {
      await db
        .insertInto('devices')
        .values(
          // In key order: another upload's overlapping insert waits instead of deadlocking (PostgreSQL).
          inKeyOrder(fresh, (r) => r.dsimId, 'first').map((r) => ({
            ...base,
            dsim_id: r.dsimId,
            registration_server: r.registrationServer,
            upload_line: r.line,
          })),
        )
        .onConflict((oc) => oc.column('dsim_id').doNothing())
        .execute();
      // Another contract may have taken one of them between the read and the insert.
      const owners = new Map(
        (
          await db
            .selectFrom('devices')
            .select(['dsim_id', 'contract_id'])
            .where(
              'dsim_id',
              'in',
              fresh.map((r) => r.dsimId),
            )
            .execute()
        ).map((d) => [d.dsim_id, d.contract_id]),
      );
      for (const row of fresh.splice(0)) {
        if (owners.get(row.dsimId) === contract.id) fresh.push(row);
        else sink.rejected(duplicate(row.line, row.dsimId, 'it belongs to another contract'));
      }
      held.count += fresh.length;
    }
    for (const row of again) {
      await db
        .updateTable('devices')
        .set({ ...base, registration_server: row.registrationServer, upload_line: row.line })
        .where('dsim_id', '=', row.dsimId)
        .execute();
    }
    const toRegister = [...fresh, ...again];
    if (toRegister.length === 0) return;
    // Rows stay `pending` if this fails: nothing is marked registered that the server did not accept,
    // and adding them again registers them (re-registering is idempotent there).
    const summary = await this.o.operator.registerDevices(
      this.o.credentialingUrl(),
      toRegister.map((r) => ({ dsimId: r.dsimId, registrationServer: r.registrationServer })),
      undefined,
      // Each upload is an order at the credentialing server, named after its contract.
      { label: `contract ${contract.id}` },
    );
    const refused = new Map<number, { code: string; message: string }>();
    for (const r of summary.rejected) refused.set(r.line, r);
    const registered: string[] = [];
    for (const [i, row] of toRegister.entries()) {
      const refusal = refused.get(i + 1);
      if (!refusal) {
        registered.push(row.dsimId);
        continue;
      }
      const why = refusal.message.replace(/^line \d+:\s*/, '');
      await this.setState(row.dsimId, 'rejected', `${refusal.code}: ${why}`);
      sink.rejected({
        line: row.line,
        dsimId: row.dsimId,
        code: refusal.code,
        message: `line ${row.line}: ${why}`,
      });
    }
    for (const ids of slices(registered, 500)) {
      await db
        .updateTable('devices')
        .set({ state: 'registered', updated_at: this.now() })
        .where('dsim_id', 'in', ids)
        .where('state', '=', 'pending')
        .execute();
    }
    sink.accepted(registered);
    if (sink.publishDevices) {
      const devices = await Promise.all(toRegister.map((row) => this.deviceRow(row.dsimId)));
      await this.publishDevices(devices, contract.owner_id);
    }
  }

  // --- helpers ------------------------------------------------------------------------------

  /** The contract if the account may see it: an owner only their own, an operator any. */
  private async contractRow(account: PortalAccount, contractId: string): Promise<PortalTables['contracts']> {
    const row = await this.o.db
      .selectFrom('contracts')
      .selectAll()
      .where('id', '=', contractId)
      .executeTakeFirst();
    if (!row || (account.kind === 'owner' && row.owner_id !== account.id)) {
      throw new SimcredError('SIMCRED_CONTRACT_UNKNOWN', `no contract ${contractId}`);
    }
    return row;
  }

  /** A contract the owner may add devices to: paid, and with room left under its plan. */
  private async admissible(owner: PortalAccount, contractId: string): Promise<PortalTables['contracts']> {
    const contract = await this.contractRow(owner, contractId);
    if (contract.payment_status !== 'authorised') {
      throw new SimcredError(
        'SIMCRED_PAYMENT_DECLINED',
        `contract ${contractId}: the payment was declined (${contract.payment_reason ?? 'no reason given'}); authorise a new payment first`,
      );
    }
    const limit = this.plan(contract.plan_id)?.maxDevices ?? 0;
    if ((await this.heldDevices(contractId)) >= limit) {
      throw new SimcredError(
        'SIMCRED_PLAN_LIMIT',
        `contract ${contractId}: the plan allows at most ${limit} devices`,
      );
    }
    return contract;
  }

  /** Devices the plan's limit counts: every device of the contract that is not refused. */
  private async heldDevices(contractId: string): Promise<number> {
    const held = await this.o.db
      .selectFrom('devices')
      .select(sql<number>`count(*)`.as('n'))
      .where('contract_id', '=', contractId)
      .where('state', '!=', 'rejected')
      .executeTakeFirstOrThrow();
    return Number(held.n);
  }

  private contractQuery() {
    return this.o.db
      .selectFrom('contracts')
      .innerJoin('accounts', 'accounts.id', 'contracts.owner_id')
      .selectAll('contracts')
      .select('accounts.email as owner_email');
  }

  private async contractViews(rows: PortalTables['contracts'][]): Promise<ContractView[]> {
    if (rows.length === 0) return [];
    const emails = new Map(
      (
        await this.o.db
          .selectFrom('accounts')
          .select(['id', 'email'])
          .where(
            'id',
            'in',
            rows.map((r) => r.owner_id),
          )
          .execute()
      ).map((a) => [a.id, a.email]),
    );
    const counts = await stateCounts(
      this.o.db,
      rows.map((r) => r.id),
    );
    return rows.map((row) => {
      const totals = emptyTotals();
      let devices = 0;
      for (const [state, n] of counts.get(row.id) ?? []) {
        totals[state as DeviceState] = n;
        devices += n;
      }
      return {
        id: row.id,
        ownerId: row.owner_id,
        ownerEmail: emails.get(row.owner_id) ?? '',
        planId: row.plan_id,
        billing: JSON.parse(row.billing) as z.infer<typeof Billing>,
        payment: {
          status: row.payment_status,
          reference: row.payment_reference,
          reason: row.payment_reason,
          at: row.payment_at,
        },
        createdAt: row.created_at,
        totals,
        devices,
      };
    });
  }

  private plan(id: string): PlanView | undefined {
    return this.o.plans.find((p) => p.id === id);
  }

  private deviceRow(dsimId: string) {
    return this.o.db.selectFrom('devices').selectAll().where('dsim_id', '=', dsimId).executeTakeFirst();
  }

  private async ownerOf(contractId: string): Promise<string> {
    const row = await this.o.db
      .selectFrom('contracts')
      .select('owner_id')
      .where('id', '=', contractId)
      .executeTakeFirst();
    return row?.owner_id ?? '';
  }

  private async setState(dsimId: string, state: DeviceState, reason: string | null): Promise<void> {
    await this.o.db
      .updateTable('devices')
      .set({ state, reason, updated_at: this.now() })
      .where('dsim_id', '=', dsimId)
      .execute();
  }

  private async saveUpload(upload: UploadView, ownerId: string): Promise<void> {
    await this.o.db
      .updateTable('uploads')
      .set({
        state: upload.state,
        rows: upload.rows,
        accepted: upload.accepted,
        rejected_count: upload.rejectedCount,
        rejected: JSON.stringify(upload.rejected),
        finished_at: upload.finishedAt,
      })
      .where('id', '=', upload.id)
      .execute();
    await this.o.events.publish([
      { type: 'upload', ownerId, data: sortRejections({ ...upload, rejected: [...upload.rejected] }) },
    ]);
  }

  private publishDevices(rows: (PortalTables['devices'] | undefined)[], ownerId: string): Promise<void> {
    return this.o.events.publish(
      rows.flatMap((row) => (row ? [{ type: 'device' as const, ownerId, data: deviceView(row) }] : [])),
    );
  }

  /**
   * The funnel is pushed to this instance's operators at most twice a second, however many devices
   * change (on any instance: called for every device or upload event it reads).
   */
  scheduleFunnel(): void {
    if (this.funnelTimer || !this.o.hub.hasOperators()) return;
    this.funnelTimer = setTimeout(() => {
      this.funnelTimer = undefined;
      this.funnel().then(
        (data) => this.o.hub.publish({ type: 'funnel', data }),
        (err: unknown) => this.o.log.warn({ err }, 'funnel not computed'),
      );
    }, 500);
    this.funnelTimer.unref();
  }

  private now(): string {
    return this.o.clock().toISOString();
  }
}

function duplicate(line: number, dsimId: string, why: string): RejectionView {
  const code: ErrorCode = 'SIMCRED_DEVICE_DUPLICATE';
  return { line, dsimId, code, message: `line ${line}: ${dsimId}: ${why}` };
}

function emptyTotals(): Record<DeviceState, number> {
  return Object.fromEntries(PortalDeviceState.options.map((s) => [s, 0])) as Record<DeviceState, number>;
}

function deviceView(row: PortalTables['devices']): DeviceView {
  return {
    dsimId: row.dsim_id,
    contractId: row.contract_id,
    state: row.state as DeviceState,
    reason: row.reason,
    imsi: row.imsi,
    updatedAt: row.updated_at,
  };
}

function uploadView(row: PortalTables['uploads']): UploadView {
  return {
    id: row.id,
    contractId: row.contract_id,
    fileName: row.file_name,
    state: row.state,
    rows: row.rows,
    accepted: row.accepted,
    rejectedCount: row.rejected_count,
    rejected: JSON.parse(row.rejected) as RejectionView[],
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

function sortRejections(upload: UploadView): UploadView {
  upload.rejected.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
  return upload;
}

function* slices<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** Counts the rows (and the last line) as they pass. */
async function* counted(
  rows: AsyncIterable<DeviceRow>,
  onRow: (line: number, n: number) => void,
): AsyncGenerator<DeviceRow> {
  for await (const row of rows) {
    onRow(row.line, 1);
    yield row;
  }
}

/** Which role wrote an audit event of the credentialing server's trail (DESIGN §2), by its name. */
export function roleOfEvent(event: string): string {
  if (event === 'delivered') return 'provisioning';
  if (event === 'completed') return 'device';
  if (event === 'withdrawn') return 'registration';
  if (event.startsWith('subscriber-') || event === 'attached') return 'hss';
  return 'credentialing';
}
