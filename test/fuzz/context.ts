// What the fuzz targets share: one running simcred system (every role on loopback, its PKI, two
// manufactured and registered devices, EC and RSA) and the valid objects the inputs are derived from.
import { Writable } from 'node:stream';
import { loadConfig, type SimcredConfig } from '../../src/config/index.js';
import * as x509 from '../../src/crypto/x509.js';
import { loadTlsIdentity } from '../../src/http/index.js';
import { createLogger } from '../../src/log/logger.js';
import { loadFactoryImage, manufactureDevices, type LoadedFactoryImage } from '../../src/pki/index.js';
import { OperatorClient } from '../../src/portal/operator-client.js';
import { manufacturerRoots, startSystem, type RunningSystem } from '../../src/system/start.js';
import { tempDir } from '../helpers/cli.js';

export interface FuzzContext {
  config: SimcredConfig;
  system: RunningSystem;
  devices: LoadedFactoryImage[];
  /** The manufacturer roots a device chain must reach (as the registration and credentialing servers use). */
  manufacturerRoots: x509.X509Certificate[];
  operatorRoot: x509.X509Certificate;
  /** Log lines at level error (a SIMCRED_INTERNAL is logged there), the last few kept. */
  errorLines(): string[];
  close(): Promise<void>;
}

/**
 * Starts every role on loopback (free ports) over a fresh data folder, as test/flow/harness.ts does,
 * but logging only errors, and only the last few: a long run sends millions of requests.
 */
export async function startFuzzContext(): Promise<FuzzContext> {
  const dir = tempDir('simcred-fuzz-');
  const errors: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      errors.push(chunk.toString());
      if (errors.length > 20) errors.shift();
      done();
    },
  });
  const config = loadConfig({
    overrides: {
      dataDir: dir.path,
      ports: { credentialing: 0, registration: [0], ocsp: 0, hss: 0, provisioning: [0], phlr: 0, portal: 0 },
      log: { level: 'error' },
      // Fuzzing aims at the parsers and handlers: a million requests from one address would meet the
      // abuse limits (docs/abuse-limits.md) after the first few thousand.
      abuse: { enabled: false },
    },
  });
  const logger = createLogger({ name: 'fuzz', level: 'error', destination });
  const system = await startSystem(config, logger);
  try {
    const made = await manufactureDevices({
      dir: config.pkiDir,
      count: 1,
      keyType: 'ec',
      registrationServers: system.urls.registration,
      workers: 0,
    });
    const madeRsa = await manufactureDevices({
      dir: config.pkiDir,
      count: 1,
      keyType: 'rsa',
      registrationServers: system.urls.registration,
      workers: 0,
    });
    const ids = [...made.devices, ...madeRsa.devices].map((d) => d.dsimId);
    const operator = new OperatorClient(loadTlsIdentity(config.pkiDir, 'portal'));
    try {
      await operator.registerDevices(
        system.urls.credentialing,
        ids.map((dsimId) => ({ dsimId, registrationServer: system.urls.registration[0]! })),
      );
    } finally {
      await operator.close();
    }
    const devices = await Promise.all(ids.map((id) => loadFactoryImage(config.pkiDir, id)));
    return {
      config,
      system,
      devices,
      manufacturerRoots: manufacturerRoots(system.pki),
      operatorRoot: new x509.X509Certificate(system.pki.operator.root.der),
      errorLines: () => [...errors],
      async close() {
        await system.close();
        dir.cleanup();
      },
    };
  } catch (err) {
    await system.close();
    dir.cleanup();
    throw err;
  }
}

/** DER of a PEM certificate. */
export function derOfPem(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
}
