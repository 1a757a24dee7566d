import { Writable } from 'node:stream';
import { loadConfig, type SimcredConfig } from '../../src/config/index.js';
import { loadTlsIdentity, type RunningServer } from '../../src/http/index.js';
import { startRole } from '../../src/system/roles.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { manufactureDevices } from '../../src/pki/index.js';
import { OperatorClient } from '../../src/portal/operator-client.js';
import { roleDatabase, startSystem, type RunningSystem } from '../../src/system/start.js';
import { PeerClient } from '../../src/http/index.js';
import { HssStore, type Subscriber } from '../../src/hss/store.js';
import { loadFactoryImage, type LoadedFactoryImage } from '../../src/pki/index.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { TrustedModule } from '../../src/device/trusted-module.js';

export interface TestDevice {
  image: LoadedFactoryImage;
  module: TrustedModule;
  agent: DeviceAgent;
}
import { tempDir } from '../helpers/cli.js';
import type { Clock } from '../../src/time/clock.js';

/** Limits no test reaches (config `abuse`). */
export const GENEROUS_ABUSE_LIMITS = {
  perAddress: { requests: 10_000_000 },
  perIdentity: { requests: 10_000_000 },
  perIdentityAndAddress: { requests: 10_000_000 },
  akaChallenges: { requests: 10_000_000 },
  akaChallengesPerAddress: { requests: 10_000_000 },
};

/** Every role on loopback (free ports) over a fresh data folder, with the logs captured. */
export interface TestSystem {
  config: SimcredConfig;
  system: RunningSystem;
  logs: () => string;
  logger: Logger;
  manufacture(count: number, keyType?: 'ec' | 'rsa'): Promise<string[]>;
  register(dsimIds: string[]): ReturnType<OperatorClient['registerDevices']>;
  /** A simulated device with its trusted module, steps callable one by one. */
  device(dsimId: string): Promise<TestDevice>;
  /** What the HSS holds for a DSIM_ID (undefined: no IMSI was ever allocated). */
  subscriber(dsimId: string): Promise<Subscriber | undefined>;
  operator: OperatorClient;
  deviceClient: PeerClient;
  close(): Promise<void>;
}

/**
 * `options.clock`: the time the PHLR, registration and credentialing servers and the test's devices
 * decide expiry by (a ManualClock from test/helpers/clock.ts); the real clock when omitted.
 */
export async function startTestSystem(
  overrides: Record<string, unknown> = {},
  options: { clock?: Clock } = {},
): Promise<TestSystem> {
  const dir = tempDir('simcred-flow-');
  let captured = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      captured += chunk.toString();
      done();
    },
  });
  const config = loadConfig({
    overrides: {
      dataDir: dir.path,
      ports: {
        credentialing: 0,
        registration: [0, 0],
        ocsp: 0,
        hss: 0,
        provisioning: [0, 0],
        phlr: 0,
        portal: 0,
      },
      // Trace level: the secrets test greps every line any role could write.
      log: { level: 'trace' },
      // The abuse limits count every device request here too, but refuse none: these tests drive one
      // device dozens of times a minute from one address. test/flow/flood.test.ts and
      // test/http/rate-limit.test.ts test the refusals.
      abuse: GENEROUS_ABUSE_LIMITS,
      ...overrides,
    },
  });
  const logger = createLogger({ name: 'test', level: 'trace', destination });
  const system = await startSystem(config, logger, options.clock ? { clock: options.clock } : {});
  const operator = new OperatorClient(loadTlsIdentity(config.pkiDir, 'portal'));
  const deviceClient = new PeerClient({ tls: { ca: [system.pki.operator.root.pem] } });
  return {
    config,
    system,
    logger,
    logs: () => captured,
    async manufacture(count, keyType = 'ec') {
      const result = await manufactureDevices({
        dir: config.pkiDir,
        count,
        keyType,
        registrationServers: system.urls.registration,
        servers: { phlr: system.urls.phlr, ocsp: system.urls.ocsp, hss: system.urls.hss },
        workers: 0,
      });
      return result.devices.map((d) => d.dsimId);
    },
    register(dsimIds) {
      // Each device goes to the registration server burnt into its factory image (round-robin at manufacture).
      return operator.registerDevices(
        system.urls.credentialing,
        dsimIds.map((dsimId, i) => ({
          dsimId,
          registrationServer: system.urls.registration[i % system.urls.registration.length]!,
        })),
      );
    },
    operator,
    deviceClient,
    async device(dsimId) {
      const image = await loadFactoryImage(config.pkiDir, dsimId);
      const module = TrustedModule.fromFactoryImage(image, { persist: false });
      // The device finds every server through its factory image, as an independent client would.
      const agent = DeviceAgent.fromFactoryImage(image, {
        module,
        client: deviceClient,
        maxAttempts: 1,
        ...(options.clock ? { clock: options.clock } : {}),
      });
      return { image, module, agent };
    },
    async subscriber(dsimId) {
      const hss = await HssStore.open(roleDatabase(config, 'hss'));
      try {
        return await hss.findByDsimId(dsimId);
      } finally {
        await hss.close();
      }
    },
    async close() {
      await deviceClient.close();
      await operator.close();
      await system.close();
      dir.cleanup();
    },
  };
}

/**
 * Stops the test system's credentialing server and starts it again on the same port and store (a
 * restart, as an operator's would be); the caller closes the one returned.
 */
export async function restartCredentialing(t: TestSystem): Promise<RunningServer> {
  const { urls } = t.system;
  await t.system.servers.credentialing.close();
  return startRole(
    { ...t.config, ports: { ...t.config.ports, credentialing: Number(new URL(urls.credentialing).port) } },
    'credentialing',
    1,
    t.logger,
    { ocsp: urls.ocsp, hss: urls.hss, provisioning: urls.provisioning },
  );
}
