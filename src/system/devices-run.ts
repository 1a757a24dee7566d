import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SimcredConfig } from '../config/index.js';
import { DeviceAgent } from '../device/agent.js';
import { runFleet, type DeviceOutcome } from '../device/fleet.js';
import { MODULE_STATE_FILE } from '../device/trusted-module.js';
import { openDeviceModule } from '../device/tpm-module.js';
import { SimcredError, isSimcredError } from '../errors/index.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../http/index.js';
import { CaStore, deviceDir, imageServers, loadFactoryImage, readFactoryImage } from '../pki/index.js';
import { deviceState } from '../protocol/credentialing.js';
import { configuredUrls } from './wiring.js';

export interface DevicesRunOptions {
  /** One device by DSIM_ID … */
  dsimId?: string;
  /** … or the next `count` devices registered at the credentialing server and not yet onboarded. */
  count?: number;
  concurrency?: number;
  onPhase?(phase: 'select' | 'run', total: number): void;
  onProgress?(done: number): void;
}

/**
 * What one device did: onboarded (steps 1–12); or, already holding a credential, checked in and
 * attached only, or found a fresh registration and onboarded again (re-provisioned).
 */
export interface DeviceRun {
  dsimId: string;
  action: 'onboard' | 'attach' | 'reprovision';
  ok: boolean;
  imsi: string | null;
  ms: number;
  error: { code: string; message: string } | null;
}

export interface DevicesRunSummary {
  devices: number;
  onboarded: number;
  attached: number;
  reprovisioned: number;
  failed: number;
  elapsedMs: number;
  results: DeviceRun[];
}

/** The registration states in which a device is waiting to onboard (or is part way through). */
const WAITING = new Set(['registered', 'authenticating', 'referred']);

/**
 * `simcred devices run`: simulated devices, the same agent `simcred demo` drives, against the
 * system `simcred up` runs on this data folder. Each device is its factory image in the PKI folder
 * (its trusted module persists there, `module.json`, so a second run finds its credential). A
 * device that holds a credential checks in (DeviceAgent.checkIn): it finishes an onboarding under
 * way, or goes through the flow again if the operator re-provisioned it, else attaches only; the
 * others go through steps 1–12.
 *
 * Which devices `count` takes: the data folder's devices in manufacturing order (ca.db), without a
 * credential in their module, whose factory image names this system's servers, and which the
 * credentialing server holds as registered and not yet delivered (asked through the operator API
 * with the portal's certificate, as `simcred operator state` does).
 *
 * @example
 *   const summary = await runDevices(loadConfig({ overrides: { dataDir } }), { count: 10 });
 */
export async function runDevices(
  config: SimcredConfig,
  options: DevicesRunOptions,
): Promise<DevicesRunSummary> {
  const started = performance.now();
  const urls = configuredUrls(config);
  const identity = loadTlsIdentity(config.pkiDir, 'portal');
  const operator = new PeerClient({ tls: clientTls(identity), timeoutMs: 10_000 });
  try {
    await requireRunning(operator, urls.credentialing);
    const dsimIds = options.dsimId
      ? [await requireDevice(config, options.dsimId)]
      : await waitingDevices(config, operator, options.count ?? 1, options.onPhase);
    const attachOnly = dsimIds.filter((d) => holdsCredential(config, d));
    const onboard = dsimIds.filter((d) => !attachOnly.includes(d));
    options.onPhase?.('run', dsimIds.length);
    let done = 0;
    const results: DeviceRun[] = [];
    for (const dsimId of attachOnly) {
      results.push(await attach(config, dsimId));
      options.onProgress?.(++done);
    }
    if (onboard.length > 0) {
      const report = await runFleet({
        pkiDir: config.pkiDir,
        dsimIds: onboard,
        ocspOptions: { clockSkewSeconds: config.ocsp.clockSkewSeconds, timeoutMs: config.ocsp.timeoutMs },
        concurrency: options.concurrency ?? 16,
        maxRetryDelayMs: 2000,
        onDeviceDone: () => options.onProgress?.(++done),
      });
      const byId = new Map(report.outcomes.map((o) => [o.dsimId, o]));
      for (const dsimId of onboard) results.push(fromOutcome(byId.get(dsimId)!));
    }
    return {
      devices: results.length,
      onboarded: results.filter((r) => r.ok && r.action === 'onboard').length,
      attached: results.filter((r) => r.ok && r.action === 'attach').length,
      reprovisioned: results.filter((r) => r.ok && r.action === 'reprovision').length,
      failed: results.filter((r) => !r.ok).length,
      elapsedMs: Math.round(performance.now() - started),
      results,
    };
  } finally {
    await operator.close();
  }
}

async function requireRunning(client: PeerClient, credentialingUrl: string): Promise<void> {
  let status = 0;
  try {
    status = (await client.send(`${credentialingUrl}/health`, 'GET', undefined, '')).statusCode;
  } catch {
    // Not listening: said below.
  }
  if (status !== 200) {
    throw new SimcredError(
      'SIMCRED_DEPENDENCY_UNAVAILABLE',
      `no running system answers at ${credentialingUrl}: start \`simcred up\` on this data folder first`,
      { retryAfter: 2 },
    );
  }
}

/** A DSIM_ID the data folder has a factory image for. */
async function requireDevice(config: SimcredConfig, dsimId: string): Promise<string> {
  try {
    readFactoryImage(config.pkiDir, dsimId);
  } catch {
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', `--dsim ${dsimId}: no factory image in ${config.pkiDir}`);
  }
  return dsimId;
}

function holdsCredential(config: SimcredConfig, dsimId: string): boolean {
  return existsSync(join(deviceDir(config.pkiDir, dsimId), MODULE_STATE_FILE));
}

async function waitingDevices(
  config: SimcredConfig,
  operator: PeerClient,
  count: number,
  onPhase: DevicesRunOptions['onPhase'],
): Promise<string[]> {
  onPhase?.('select', count);
  const urls = configuredUrls(config);
  const registrationServers = new Set(urls.registration);
  const store = await CaStore.open(config.pkiDir);
  const found: string[] = [];
  try {
    for (const device of await store.listDevices()) {
      if (found.length >= count) break;
      if (!registrationServers.has(device.registrationServer)) continue;
      if (holdsCredential(config, device.dsimId)) continue;
      if (!namesSystem(config, device.dsimId, urls)) continue;
      if (await waitsAtCredentialing(operator, urls.credentialing, device.dsimId)) found.push(device.dsimId);
    }
  } finally {
    await store.close();
  }
  return found;
}

/** Whether a device's factory image names this system's PHLR, OCSP responder and HSS. */
function namesSystem(
  config: SimcredConfig,
  dsimId: string,
  urls: ReturnType<typeof configuredUrls>,
): boolean {
  try {
    const servers = imageServers(readFactoryImage(config.pkiDir, dsimId));
    return servers.phlr === urls.phlr && servers.ocsp === urls.ocsp && servers.hss === urls.hss;
  } catch {
    return false;
  }
}

async function waitsAtCredentialing(
  operator: PeerClient,
  credentialingUrl: string,
  dsimId: string,
): Promise<boolean> {
  try {
    const state = await operator.call(credentialingUrl, deviceState, { params: { dsimId } });
    return WAITING.has(state.state);
  } catch (err) {
    if (isSimcredError(err) && err.code === 'SIMCRED_REGISTRATION_UNKNOWN') return false;
    throw err;
  }
}

/**
 * A device that holds its credential checks in (a re-provisioning or an unfinished onboarding runs
 * the flow again), then step 12 again: Milenage AKA with the HSS on what it holds now.
 */
async function attach(config: SimcredConfig, dsimId: string): Promise<DeviceRun> {
  const started = performance.now();
  const image = await loadFactoryImage(config.pkiDir, dsimId);
  const module = await openDeviceModule(image);
  const client = new PeerClient({ tls: { ca: [image.image.trustRoots.operator] } });
  const imsi = module.subscription?.imsi ?? null;
  try {
    // The servers, trust roots and OCSP responder its factory image names.
    const agent = DeviceAgent.fromFactoryImage(image, {
      module,
      client,
      maxAttempts: 3,
      maxRetryDelayMs: 2000,
    });
    if (!imsi) throw new SimcredError('SIMCRED_CLI_ARGUMENT', `${dsimId}: its module holds no credential`);
    const checkedIn = await agent.checkIn();
    if (checkedIn !== 'up-to-date') {
      return {
        dsimId,
        action: 'reprovision',
        ok: true,
        imsi: checkedIn.subscription.imsi,
        ms: elapsed(started),
        error: null,
      };
    }
    await agent.attach();
    return { dsimId, action: 'attach', ok: true, imsi, ms: elapsed(started), error: null };
  } catch (err) {
    return {
      dsimId,
      action: 'attach',
      ok: false,
      imsi,
      ms: elapsed(started),
      error: errorOf(err),
    };
  } finally {
    await client.close();
  }
}

function fromOutcome(o: DeviceOutcome): DeviceRun {
  return {
    dsimId: o.dsimId,
    action: 'onboard',
    ok: o.ok,
    imsi: o.imsi ?? null,
    ms: Math.round(o.totalMs),
    error: o.error ?? null,
  };
}

const elapsed = (started: number) => Math.round(performance.now() - started);

function errorOf(err: unknown): { code: string; message: string } {
  return isSimcredError(err)
    ? { code: err.code, message: err.message }
    : { code: 'SIMCRED_INTERNAL', message: err instanceof Error ? err.message : String(err) };
}
