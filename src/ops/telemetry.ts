import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric simcred exports besides the process metrics (prom-client's collectDefaultMetrics,
 * unprefixed): name, help and labels, declared once. docs/operations.md lists them, and a test checks
 * that the list there and this one agree.
 */
export const METRICS = {
  httpRequests: {
    name: 'simcred_http_requests_total',
    help: 'Requests answered, by role, declared route id, method and HTTP status.',
    labels: ['role', 'route', 'method', 'status'],
  },
  httpDuration: {
    name: 'simcred_http_request_duration_seconds',
    help: 'Time from request to response, by role, declared route id, method and HTTP status.',
    labels: ['role', 'route', 'method', 'status'],
  },
  onboardings: {
    name: 'simcred_onboardings',
    help: "The credentialing server's devices, by registration state (one row per device).",
    labels: ['role', 'state'],
  },
  outboxBacklog: {
    name: 'simcred_outbox_backlog',
    help: 'Messages owed to others and not yet delivered: peer_actions (to registration servers and the HSS), webhook_deliveries.',
    labels: ['role', 'outbox'],
  },
  batchBacklog: {
    name: 'simcred_batch_backlog',
    help: 'Registrations of operator batches (step 0b) not yet pushed to their registration server.',
    labels: ['role'],
  },
  hssSubscribers: {
    name: 'simcred_hss_subscribers',
    help: "The HSS's subscribers, by state (provisioned: package issued; active: attached).",
    labels: ['role', 'state'],
  },
  ocspResponses: {
    name: 'simcred_ocsp_responses_total',
    help: 'OCSP answers: certificate statuses of signed responses (good, revoked, unknown) and error responses (malformedRequest, tryLater, internalError, unauthorized).',
    labels: ['role', 'status'],
  },
  collectErrors: {
    name: 'simcred_metrics_collect_errors_total',
    help: 'Gauge reads (store count queries) that failed or timed out during a scrape.',
    labels: ['role', 'metric'],
  },
} as const;

/** The gauges a role fills from its store at scrape time. */
export type CountedMetric = 'onboardings' | 'outboxBacklog' | 'batchBacklog' | 'hssSubscribers';

/** Latency buckets (seconds): simcred's requests take milliseconds; a slow peer shows up in seconds. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** How long one gauge read may take before the scrape goes on without it. */
export const DEFAULT_COLLECT_TIMEOUT_MS = 2000;

type CountSource = { role: string; read: () => Promise<Record<string, number>> };
type Check = { role: string; name: string; run: () => Promise<unknown> };

export interface ReadinessReport {
  ready: boolean;
  /** Per role, each check: 'ok' or why it failed. */
  roles: Record<string, Record<string, string>>;
}

export interface TelemetryOptions {
  /** prom-client's process metrics (CPU, memory, event loop lag, handles); on by default. */
  processMetrics?: boolean;
  collectTimeoutMs?: number;
  /** How long one readiness check may take (default 2 s). */
  readinessTimeoutMs?: number;
  /** How long a readiness answer is reused (default 1 s): probes do not hammer stores and peers. */
  readinessCacheMs?: number;
  /** The time readiness caching reads (tests set it). */
  now?: () => number;
}

/**
 * One process's metrics and readiness: a prom-client registry (not the global one: a test runs many
 * systems in one process) shared by every role the process serves, each role's series labelled with
 * its name.
 *
 * @example
 *   const telemetry = new Telemetry();
 *   const hss = telemetry.role('hss');
 *   hss.count('hssSubscribers', () => store.countByState());
 *   const text = await telemetry.registry.metrics();
 */
export class Telemetry {
  readonly registry = new Registry();
  private readonly requests: Counter;
  private readonly latency: Histogram;
  private readonly ocsp: Counter;
  private readonly collectErrors: Counter;
  private readonly sources = new Map<CountedMetric, CountSource[]>();
  private readonly checks: Check[] = [];
  private readonly roles = new Map<string, RoleTelemetry>();
  private readonly collectTimeoutMs: number;
  private readonly readinessTimeoutMs: number;
  private readonly readinessCacheMs: number;
  private readonly now: () => number;
  private readiness: { at: number; report: Promise<ReadinessReport> } | undefined;
  private draining = false;

  constructor(options: TelemetryOptions = {}) {
    this.collectTimeoutMs = options.collectTimeoutMs ?? DEFAULT_COLLECT_TIMEOUT_MS;
    this.readinessTimeoutMs = options.readinessTimeoutMs ?? 2000;
    this.readinessCacheMs = options.readinessCacheMs ?? 1000;
    this.now = options.now ?? Date.now;
    const registers = [this.registry];
    const spec = (m: { name: string; help: string; labels: readonly string[] }) => ({
      name: m.name,
      help: m.help,
      labelNames: [...m.labels],
      registers,
    });
    this.requests = new Counter(spec(METRICS.httpRequests));
    this.latency = new Histogram({ ...spec(METRICS.httpDuration), buckets: LATENCY_BUCKETS });
    this.ocsp = new Counter(spec(METRICS.ocspResponses));
    this.collectErrors = new Counter(spec(METRICS.collectErrors));
    for (const key of ['onboardings', 'outboxBacklog', 'batchBacklog', 'hssSubscribers'] as const) {
      this.countedGauge(key, spec(METRICS[key]));
    }
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The telemetry of one role this process serves (`registration-2` for a second instance). */
  role(name: string): RoleTelemetry {
    let role = this.roles.get(name);
    if (!role) this.roles.set(name, (role = new RoleTelemetry(name, this)));
    return role;
  }

  /** The roles registered so far, in order. */
  roleNames(): string[] {
    return [...this.roles.keys()];
  }

  /** From now on not ready (SIGTERM): load balancers stop sending while in-flight requests finish. */
  startDraining(): void {
    this.draining = true;
    this.readiness = undefined;
  }

  /**
   * Every role's checks (its store answers, its required peers answer), each bounded by the
   * readiness timeout; the answer is reused for the cache time. Not ready while draining.
   */
  async ready(): Promise<ReadinessReport> {
    const now = this.now();
    if (this.readiness && now - this.readiness.at < this.readinessCacheMs) return this.readiness.report;
    const report = this.runChecks();
    this.readiness = { at: now, report };
    return report;
  }

  private async runChecks(): Promise<ReadinessReport> {
    const roles: ReadinessReport['roles'] = {};
    for (const name of this.roles.keys()) roles[name] = {};
    const results = await Promise.all(
      this.checks.map(async (check) => {
        try {
          await bounded(check.run(), this.readinessTimeoutMs);
          return { check, result: 'ok' };
        } catch (err) {
          return { check, result: (err as Error).message || 'failed' };
        }
      }),
    );
    for (const { check, result } of results) (roles[check.role] ??= {})[check.name] = result;
    if (this.draining) for (const checks of Object.values(roles)) checks.draining = 'shutting down';
    const ready = Object.values(roles).every((checks) => Object.values(checks).every((r) => r === 'ok'));
    return { ready, roles };
  }

  /** @internal */
  addCheck(check: Check): void {
    this.checks.push(check);
    this.readiness = undefined;
  }

  /** @internal */
  addSource(metric: CountedMetric, source: CountSource): void {
    const list = this.sources.get(metric) ?? [];
    list.push(source);
    this.sources.set(metric, list);
  }

  /** @internal */
  observeRequest(role: string, route: string, method: string, status: number, seconds: number): void {
    const labels = { role, route, method, status: String(status) };
    this.requests.inc(labels);
    this.latency.observe(labels, seconds);
  }

  /** @internal */
  ocspAnswer(role: string, status: string): void {
    this.ocsp.inc({ role, status });
  }

  /**
   * A gauge read at scrape time from each role's store: one count query per role, bounded by the
   * collect timeout; a read that fails or times out leaves that role's series out of this scrape
   * and is counted in simcred_metrics_collect_errors_total.
   */
  private countedGauge(
    metric: CountedMetric,
    spec: { name: string; help: string; labelNames: string[]; registers: Registry[] },
  ): void {
    const sources = () => this.sources.get(metric) ?? [];
    const timeoutMs = () => this.collectTimeoutMs;
    const errors = this.collectErrors;
    const [, label] = spec.labelNames;
    new Gauge({
      ...spec,
      // Every worker of `up --workers N` reads the same store: the pool's value is any one of them.
      aggregator: 'max',
      async collect() {
        this.reset();
        await Promise.all(
          sources().map(async (source) => {
            let counts: Record<string, number>;
            try {
              counts = await bounded(source.read(), timeoutMs());
            } catch {
              errors.inc({ role: source.role, metric: spec.name });
              return;
            }
            for (const [value, count] of Object.entries(counts)) {
              this.set(label ? { role: source.role, [label]: value } : { role: source.role }, count);
            }
          }),
        );
      },
    });
  }
}

/**
 * What one role reports: its requests (createHttpServer calls observeRequest), its store counts and
 * its readiness checks.
 */
export class RoleTelemetry {
  constructor(
    readonly name: string,
    private readonly owner: Telemetry,
  ) {}

  observeRequest(route: string, method: string, status: number, seconds: number): void {
    this.owner.observeRequest(this.name, route, method, status, seconds);
  }

  /** One OCSP answer: a certificate status of a signed response, or an error response status. */
  ocspAnswer(status: string): void {
    this.owner.ocspAnswer(this.name, status);
  }

  /**
   * A gauge filled at scrape time: `read` returns label value → count (for simcred_batch_backlog,
   * which has no second label, the key is ignored). Keep it one cheap count query.
   */
  count(metric: CountedMetric, read: () => Promise<Record<string, number>>): void {
    this.owner.addSource(metric, { role: this.name, read });
  }

  /** A readiness check: resolves when the dependency answers. */
  readyWhen(name: string, run: () => Promise<unknown>): void {
    this.owner.addCheck({ role: this.name, name, run });
  }
}

/** `promise`, or a rejection once `ms` have passed (the timer does not keep the process alive). */
export function bounded<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
