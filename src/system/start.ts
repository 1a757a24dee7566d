import type { Logger } from 'pino';
import type { SimcredConfig } from '../config/index.js';
import type { RunningServer } from '../http/index.js';
import { startOcspResponder, type OcspResponder } from '../ocsp/index.js';
import { initPki, loadPki, type LoadedPki } from '../pki/index.js';
import { startPhlr, startPortal, startRole, type RoleDependencies } from './roles.js';
import { listenAddress, ocspSignerKeys } from './wiring.js';
export { roleDatabase, manufacturerRoots } from './wiring.js';

export interface RunningSystem {
  pki: LoadedPki;
  urls: {
    credentialing: string;
    registration: string[];
    provisioning: string[];
    hss: string;
    phlr: string;
    ocsp: string;
    portal: string;
  };
  /** Each role's server, so an operator tool or a test can stop one (a dependency outage). */
  servers: {
    ocsp: OcspResponder;
    hss: RunningServer;
    phlr: RunningServer;
    credentialing: RunningServer;
    registration: RunningServer[];
    provisioning: RunningServer[];
    portal: RunningServer;
  };
  close(): Promise<void>;
}

/**
 * Every role on loopback in this process (the embedded default, DESIGN §5): the OCSP responder, the
 * HSS, the preliminary HLR, the registration and provisioning servers, then the credentialing server
 * that ties them, and the contract portal.
 * Creates the demo PKI on first run. `dependencies.clock` is the time the PHLR, registration and
 * credentialing servers decide expiry by, and the HSS its IMSI quarantine (tests set it; the OCSP
 * responder, the HSS's attach challenges and the provisioning servers keep the real clock).
 *
 * @example
 *   const system = await startSystem(loadConfig(), logger);
 *   console.log(system.urls.credentialing);
 *   await system.close();
 */
export async function startSystem(
  config: SimcredConfig,
  logger: Logger,
  dependencies: RoleDependencies = {},
): Promise<RunningSystem> {
  await initPki(config.pkiDir);
  const pki = await loadPki(config.pkiDir);
  const started: { close(): Promise<void> }[] = [];
  const log = (role: string) => logger.child({ role });
  try {
    const ocsp = await startOcspResponder({
      pkiDir: config.pkiDir,
      host: listenAddress(config, 'ocsp'),
      port: config.ports.ocsp,
      logger: log('ocsp'),
      generationCheckMs: config.ocsp.revocationCheckMs,
      signerKeys: ocspSignerKeys(config),
      telemetry: dependencies.telemetry?.role('ocsp'),
    });
    started.push(ocsp);
    const hss = await startRole(config, 'hss', 1, log('hss'), undefined, dependencies);
    started.push(hss);
    const phlr = await startPhlr(config, log('phlr'), dependencies);
    started.push(phlr);
    const registration: RunningServer[] = [];
    for (let i = 1; i <= config.ports.registration.length; i++) {
      registration.push(
        await startRole(config, 'registration', i, log(`registration-${i}`), undefined, dependencies),
      );
      started.push(registration[i - 1]!);
    }
    const provisioning: RunningServer[] = [];
    for (let i = 1; i <= config.ports.provisioning.length; i++) {
      provisioning.push(
        await startRole(config, 'provisioning', i, log(`provisioning-${i}`), undefined, dependencies),
      );
      started.push(provisioning[i - 1]!);
    }
    // Started last, with the peers' actual URLs (ports may have been 0).
    const credentialing = await startRole(
      config,
      'credentialing',
      1,
      log('credentialing'),
      { ocsp: ocsp.url, hss: hss.url, provisioning: provisioning.map((p) => p.url) },
      dependencies,
    );
    started.push(credentialing);
    // The portal last: a client of the credentialing server's operator API.
    const portal = await startPortal(
      config,
      log('portal'),
      { credentialing: credentialing.url, registration: registration.map((r) => r.url) },
      dependencies,
    );
    started.push(portal);
    return {
      pki,
      urls: {
        credentialing: credentialing.url,
        registration: registration.map((r) => r.url),
        provisioning: provisioning.map((p) => p.url),
        hss: hss.url,
        phlr: phlr.url,
        ocsp: ocsp.url,
        portal: portal.url,
      },
      servers: { ocsp, hss, phlr, credentialing, registration, provisioning, portal },
      close: () => closeAll(started),
    };
  } catch (err) {
    await closeAll(started);
    throw err;
  }
}

async function closeAll(servers: { close(): Promise<void> }[]): Promise<void> {
  // Reverse order: the credentialing server stops taking devices before its peers go away.
  for (const server of [...servers].reverse()) await server.close().catch(() => undefined);
}
