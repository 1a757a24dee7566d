import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { AsnConvert } from '@peculiar/asn1-schema';
import { SimcredError } from '../errors/index.js';
import { issuerFromCertificate, MANUFACTURER_ORG, validityFrom } from './certificates.js';
import {
  makeDeviceCredentials,
  prepareDeviceIssuer,
  type DeviceCredential,
  type TpmDeviceCredential,
  type DeviceIssuingContext,
} from './device-certificates.js';
import {
  appendFile,
  ensureDir,
  ioError,
  PUBLIC_MODE,
  readText,
  SECRET_MODE,
  writeFile,
} from '../storage/files.js';
import { readManifest, VALIDITY_YEARS } from './init.js';
import { loadPkiSigningKey, loadPrivateKey, type KeyType } from './keys.js';
import type { SigningKey } from '../keys/signing-key.js';
import { deviceDir, DEVICES_DIR } from './layout.js';
import {
  FACTORY_IMAGE_VERSION,
  type DeviceModuleKind,
  type FactoryImage,
  type FactoryServers,
} from './factory-image.js';
import { makeTpmDeviceCredentials } from './tpm-device.js';
import { Tpm } from '../device/tpm.js';
import { DEFAULT_HOST, DEFAULT_PORTS } from '../config/config.js';
import { CaStore, type IssuedCertificate, type ManufacturedDevice } from './store.js';
import type { WorkerRequest, WorkerResponse } from './manufacture-worker.js';

/** The two embedded registration servers of the loopback demo (config ports.registration). */
export const DEFAULT_REGISTRATION_SERVERS = DEFAULT_PORTS.registration.map(
  (port) => `https://${DEFAULT_HOST}:${port}`,
);

/** The loopback demo's PHLR, OCSP responder and HSS at their default ports (docs/configuration.md). */
export const DEFAULT_FACTORY_SERVERS: FactoryServers = {
  phlr: `https://${DEFAULT_HOST}:${DEFAULT_PORTS.phlr}`,
  ocsp: `http://${DEFAULT_HOST}:${DEFAULT_PORTS.ocsp}`,
  hss: `https://${DEFAULT_HOST}:${DEFAULT_PORTS.hss}`,
};

/** Preliminary IMSIs: MCC 001 / MNC 01 (the test network) + a 10-digit MSIN from the 'pimsi' counter. */
export const PIMSI_PREFIX = '00101';
const MSIN_DIGITS = 10;
export const PHLR_SUBSCRIBERS_FILE = 'phlr/subscribers.ndjson';

export const MAX_DEVICES_PER_RUN = 10_000_000;

export interface ManufactureOptions {
  dir: string;
  count: number;
  keyType?: KeyType;
  registrationServers?: string[];
  /**
   * How many registration servers each device lists, in the order it tries them (default 1): its
   * round-robin one first, then the ones after it in `registrationServers`.
   */
  registrationServersPerDevice?: number;
  /** The PHLR, OCSP responder and HSS burnt into every device; each defaults to DEFAULT_FACTORY_SERVERS. */
  servers?: Partial<FactoryServers>;
  /** Called after each batch is on disk and recorded, with the batch size. */
  onProgress?: (done: number) => void;
  /** Worker threads for EC batches; default: one per core, at most 4 (0 = main thread only). */
  workers?: number;
  /** Package formats the devices open, written into their images (absent: not written, JOSE only). */
  packageFormats?: ('jose' | 'xml')[];
  /**
   * The devices' trusted module: `software` (default: SK_dsim made here, written as device.key.pem)
   * or `tpm` (SK_dsim made in the TPM at `tpm`, certified from a CSR signed there; no key file).
   */
  module?: DeviceModuleKind;
  /** The TCTI of the devices' TPM (module `tpm`), e.g. `swtpm:host=127.0.0.1,port=2321`. */
  tpm?: string;
}

export interface DeviceFiles {
  dsimId: string;
  certificate: string;
  /** The key file of a software device; a TPM device has none. */
  privateKey?: string;
  factoryImage: string;
}

export interface ManufactureResult {
  dir: string;
  count: number;
  keyType: KeyType;
  devices: DeviceFiles[];
  elapsedMs: number;
}

/** A preliminary subscription as the factory hands it to the preliminary HLR's operator. */
export interface PreliminarySubscriber {
  pimsi: string;
  dsimId: string;
  kPimsi: string;
  opcPimsi: string;
}

/**
 * Manufactures `count` new devices: DSIM_ID, key pair, device certificate from the device CA,
 * preliminary credentials and a factory image each, which names the servers the device will talk to
 * (registration server round-robin from `registrationServers`; PHLR, OCSP responder and HSS). Batches are made in worker threads while
 * the main thread writes the previous batch's files and records it in ca.db.
 *
 * @example
 *   const { devices } = await manufactureDevices({ dir: '/data/pki', count: 1000 });
 *   const image = await loadFactoryImage('/data/pki', devices[0].dsimId);
 */
export async function manufactureDevices(options: ManufactureOptions): Promise<ManufactureResult> {
  const started = performance.now();
  const dir = resolve(options.dir);
  const keyType = options.keyType ?? 'ec';
  const count = options.count;
  if (!Number.isInteger(count) || count < 1 || count > MAX_DEVICES_PER_RUN) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `count must be an integer from 1 to ${MAX_DEVICES_PER_RUN}`,
    );
  }
  const servers = validateServers(options.registrationServers ?? DEFAULT_REGISTRATION_SERVERS);
  const perDevice = options.registrationServersPerDevice ?? 1;
  if (!Number.isInteger(perDevice) || perDevice < 1 || perDevice > Math.min(servers.length, 8)) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `registration servers per device must be from 1 to ${Math.min(servers.length, 8)} (the servers given, at most 8)`,
    );
  }
  const otherServers: FactoryServers = { ...DEFAULT_FACTORY_SERVERS };
  for (const [name, url] of Object.entries(options.servers ?? {}) as [
    keyof FactoryServers,
    string | undefined,
  ][]) {
    if (url !== undefined) otherServers[name] = validateServers([url], `--${name}`)[0]!;
  }
  const module = options.module ?? 'software';
  if (module === 'tpm' && (options.tpm === undefined || options.tpm === '')) {
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', 'a TPM module needs --tpm <tcti> (where the TPM is)');
  }
  if (module === 'tpm' && keyType !== 'ec') {
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', 'a TPM device key is EC P-256 (--key ec)');
  }
  if (module === 'software' && options.tpm !== undefined) {
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', '--tpm is for --module tpm');
  }
  const manifest = readManifest(dir);

  const deviceCaPem = readText(join(dir, manifest.manufacturer.deviceCa.cert));
  const deviceCaCert = new X509Certificate(deviceCaPem);
  const deviceCaKey = loadPkiSigningKey(dir, manifest.manufacturer.deviceCa.key, {
    publicKey: deviceCaCert.publicKey,
    name: manifest.manufacturer.deviceCa.cert,
  });
  const deviceCaDer = Buffer.from(deviceCaCert.raw);
  const trustRoots = {
    manufacturer: readText(join(dir, manifest.manufacturer.root.cert)),
    operator: readText(join(dir, manifest.operator.root.cert)),
  };
  const issuer = issuerFromCertificate(deviceCaDer, deviceCaKey);
  const validity = validityFrom(new Date(), VALIDITY_YEARS.device);
  const context: DeviceIssuingContext = {
    // A token key stays in the token: no PEM to hand to worker threads (see runInline's caller).
    ...(deviceCaKey.inToken
      ? {}
      : {
          caKeyPem: loadPrivateKey(join(dir, manifest.manufacturer.deviceCa.key))
            .export({ type: 'pkcs8', format: 'pem' })
            .toString(),
        }),
    issuerNameDer: new Uint8Array(AsnConvert.serialize(issuer.name)),
    issuerKeyId: issuer.keyId,
    notBefore: validity.notBefore.toISOString(),
    notAfter: validity.notAfter.toISOString(),
    keyType,
  };

  ensureDir(join(dir, DEVICES_DIR));
  ensureDir(join(dir, 'phlr'));
  const store = await CaStore.open(dir);
  try {
    // Reserved before anything is made: a crashed run burns its range, it never reuses one.
    const firstMsin = await store.reserve('pimsi', count, 0);
    if (firstMsin + count > 10 ** MSIN_DIGITS) {
      throw new SimcredError(
        'SIMCRED_CLI_ARGUMENT',
        'the preliminary IMSI range 00101xxxxxxxxxx is exhausted',
      );
    }
    const dsimIds = await newDsimIds(store, count);
    const manufacturedAt = new Date().toISOString();

    const persist = async (
      offset: number,
      credentials: (DeviceCredential | TpmDeviceCredential)[],
    ): Promise<DeviceFiles[]> => {
      const files: DeviceFiles[] = [];
      const issued: IssuedCertificate[] = [];
      const devices: ManufacturedDevice[] = [];
      let subscribers = '';
      credentials.forEach((cred, i) => {
        const index = offset + i;
        const pimsi = PIMSI_PREFIX + String(firstMsin + index).padStart(MSIN_DIGITS, '0');
        // Round-robin continues across runs because it follows the PIMSI counter.
        const first = (firstMsin + index) % servers.length;
        const listed = Array.from({ length: perDevice }, (_, k) => servers[(first + k) % servers.length]!);
        const registrationServer = listed[0]!;
        const preliminary = {
          pimsi,
          kPimsi: randomBytes(16).toString('hex'),
          opcPimsi: randomBytes(16).toString('hex'),
        };
        const folder = deviceDir(dir, cred.dsimId);
        try {
          mkdirSync(folder);
        } catch (err) {
          throw ioError('create folder', folder, err);
        }
        const image: FactoryImage = {
          version: FACTORY_IMAGE_VERSION,
          dsimId: cred.dsimId,
          keyType,
          certificate: 'device.crt.pem',
          ...(cred.tpm
            ? { module: 'tpm' as const, tpm: { tcti: options.tpm!, ...cred.tpm } }
            : { privateKey: 'device.key.pem' }),
          chainPem: [deviceCaPem],
          trustRoots,
          preliminary,
          registrationServer,
          ...(listed.length > 1 ? { registrationServers: listed } : {}),
          servers: otherServers,
          ...(options.packageFormats ? { packageFormats: options.packageFormats } : {}),
          manufacturedAt,
        };
        const entry: DeviceFiles = {
          dsimId: cred.dsimId,
          certificate: join(folder, image.certificate),
          ...(image.privateKey ? { privateKey: join(folder, image.privateKey) } : {}),
          factoryImage: join(folder, 'factory.json'),
        };
        if (entry.privateKey && cred.keyPem) writeFile(entry.privateKey, cred.keyPem, SECRET_MODE);
        writeFile(entry.certificate, cred.certPem, PUBLIC_MODE);
        // The factory image holds K_PIMSI and OPc_PIMSI: as secret as the key.
        writeFile(entry.factoryImage, `${JSON.stringify(image, null, 2)}\n`, SECRET_MODE);
        subscribers += `${JSON.stringify({ pimsi, dsimId: cred.dsimId, kPimsi: preliminary.kPimsi, opcPimsi: preliminary.opcPimsi } satisfies PreliminarySubscriber)}\n`;
        issued.push({
          issuer: 'device-ca',
          serialHex: cred.serialHex,
          subject: `O=${MANUFACTURER_ORG}, serialNumber=${cred.dsimId}, CN=${cred.dsimId}`,
          dsimId: cred.dsimId,
          notAfter: validity.notAfter,
          certPath: `${DEVICES_DIR}/${cred.dsimId}/${image.certificate}`,
        });
        devices.push({ dsimId: cred.dsimId, serialHex: cred.serialHex, pimsi, keyType, registrationServer });
        files.push(entry);
      });
      appendFile(join(dir, PHLR_SUBSCRIBERS_FILE), subscribers, SECRET_MODE);
      await store.recordIssued(issued);
      await store.recordDevices(devices);
      options.onProgress?.(credentials.length);
      return files;
    };

    const batchSize = keyType === 'ec' ? 500 : 16;
    const batches: string[][] = [];
    for (let i = 0; i < count; i += batchSize) batches.push(dsimIds.slice(i, i + batchSize));
    // A device CA key in a PKCS#11 token signs in this thread only: the library is initialised once
    // per process and its logged-in session belongs to this thread, and the token (one signing queue)
    // is the bound anyway; workers would only add key generation in parallel.
    const workerCount = deviceCaKey.inToken
      ? 0
      : (options.workers ?? (keyType === 'ec' && count >= 2000 ? Math.min(availableParallelism(), 4) : 0));
    const results =
      module === 'tpm'
        ? await runInline(context, batches, persist, batchSize, deviceCaKey, new Tpm(options.tpm!))
        : workerCount > 0
          ? await runInWorkers(context, batches, Math.min(workerCount, batches.length), persist, batchSize)
          : await runInline(context, batches, persist, batchSize, deviceCaKey);
    return {
      dir,
      count,
      keyType,
      devices: results.flat(),
      elapsedMs: Math.round(performance.now() - started),
    };
  } finally {
    await store.close();
  }
}

type Persist = (
  offset: number,
  credentials: (DeviceCredential | TpmDeviceCredential)[],
) => Promise<DeviceFiles[]>;

async function runInline(
  context: DeviceIssuingContext,
  batches: string[][],
  persist: Persist,
  batchSize: number,
  signer: SigningKey,
  tpm?: Tpm,
): Promise<DeviceFiles[][]> {
  const issuer = prepareDeviceIssuer(context, signer);
  const results: DeviceFiles[][] = [];
  for (const [i, batch] of batches.entries()) {
    const credentials = tpm
      ? await makeTpmDeviceCredentials(issuer, batch, tpm)
      : await makeDeviceCredentials(issuer, batch);
    results.push(await persist(i * batchSize, credentials));
  }
  return results;
}

/**
 * Each worker takes the next batch when it hands one back; the main thread persists batches one
 * at a time (in completion order) while the workers compute the next ones.
 */
function runInWorkers(
  context: DeviceIssuingContext,
  batches: string[][],
  workerCount: number,
  persist: Persist,
  batchSize: number,
): Promise<DeviceFiles[][]> {
  return new Promise((resolvePromise, reject) => {
    const results: DeviceFiles[][] = new Array(batches.length);
    const workers: Worker[] = [];
    let next = 0;
    let persisted = 0;
    let failed = false;
    let chain = Promise.resolve();
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      for (const w of workers) void w.terminate();
      reject(err);
    };
    const feed = (worker: Worker) => {
      if (next < batches.length) {
        worker.postMessage({ batch: next, dsimIds: batches[next]! } satisfies WorkerRequest);
        next++;
      } else {
        void worker.terminate();
      }
    };
    for (let i = 0; i < workerCount; i++) {
      const worker = new Worker(new URL('./manufacture-worker.js', import.meta.url), { workerData: context });
      workers.push(worker);
      worker.on('error', fail);
      worker.on('message', (response: WorkerResponse) => {
        if ('error' in response) {
          fail(new SimcredError('SIMCRED_INTERNAL', `device worker failed: ${response.error}`));
          return;
        }
        feed(worker);
        chain = chain
          .then(async () => {
            if (failed) return;
            results[response.batch] = await persist(response.batch * batchSize, response.credentials);
            if (++persisted === batches.length) resolvePromise(results);
          })
          .catch(fail);
      });
      feed(worker);
    }
  });
}

/** DSIM_ID = "DSIM" + 16 upper-case hex digits from 8 random bytes; redrawn on the rare collision. */
async function newDsimIds(store: CaStore, count: number): Promise<string[]> {
  const ids = new Set<string>();
  for (;;) {
    while (ids.size < count) ids.add(`DSIM${randomBytes(8).toString('hex').toUpperCase()}`);
    const known = await store.knownDsimIds([...ids]);
    if (known.size === 0) return [...ids];
    for (const id of known) ids.delete(id);
  }
}

function validateServers(servers: string[], option = '--registration-server'): string[] {
  if (servers.length === 0) {
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', 'at least one registration server is needed');
  }
  for (const server of servers) {
    let url: URL | undefined;
    try {
      url = new URL(server);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw new SimcredError(
        'SIMCRED_CLI_ARGUMENT',
        `${option} must be an http(s) URL, got ${JSON.stringify(server)}`,
      );
    }
  }
  return servers;
}
