import type { Command } from 'commander';
import { join } from 'node:path';
import { SimcredError } from '../errors/index.js';
import { action, positiveInt, printJsonLine } from '../cli/run.js';
import { startProgress } from '../cli/progress.js';
import { initPki } from './init.js';
import { parseTlsHosts } from './tls-names.js';
import { parseKeyType } from './keys.js';
import { ISSUERS, TLS_ROLES, tlsChainPath, type CertKeyPaths } from './layout.js';
import {
  DEFAULT_FACTORY_SERVERS,
  DEFAULT_REGISTRATION_SERVERS,
  manufactureDevices,
  MAX_DEVICES_PER_RUN,
} from './manufacture.js';
import { parseIssuer, parseReason, parseSerial, revokeCertificate, type RevokeTarget } from './revoke.js';
import { REVOCATION_REASONS } from './store.js';
import { DEVICE_MODULES, type DeviceModuleKind } from './factory-image.js';
import { isPkcs11Uri, parsePkcs11Uri, Pkcs11UriError } from '../keys/pkcs11-uri.js';

/** --pkcs11 names a token (its keys get simcred's labels): a URI naming an object is refused. */
function checkTokenUri(value: string): void {
  let uri;
  try {
    uri = parsePkcs11Uri(value);
  } catch (err) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `--pkcs11: ${err instanceof Pkcs11UriError ? err.message : 'not a pkcs11: URI'}`,
    );
  }
  if (
    uri.object !== undefined ||
    uri.id !== undefined ||
    uri.type !== undefined ||
    uri.pinValue !== undefined
  ) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      '--pkcs11 names a token (token=, serial=, module-path=, pin-source=), not a key: object=, id=, type= and pin-value= are not accepted',
    );
  }
}

interface JsonOption {
  json?: boolean;
}

/** `simcred pki init|revoke` and `simcred devices manufacture`. */
export function registerPkiCommands(program: Command): void {
  const pki = program.command('pki').description('the demo PKI: manufacturer and operator CAs');

  pki
    .command('init')
    .description(
      'create the PKI folder, or fill in what is missing (existing keys and certificates are kept)',
    )
    .requiredOption('--dir <dir>', 'PKI folder')
    .option(
      '--host <ROLE=NAME,…>',
      "host names and IP addresses of a role's TLS certificate, besides localhost and 127.0.0.1 (repeatable); a role whose names changed gets a new certificate for its kept key",
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option(
      '--pkcs11 <URI>',
      'a new PKI whose CA, OCSP-signer and package-signer keys are generated in this PKCS#11 token (RFC 7512 URI, e.g. pkcs11:token=simcred); PIN from SIMCRED_PKCS11_PIN, SIMCRED_PKCS11_PIN_FILE or pin-source; TLS keys stay files',
    )
    .option('--json', 'print one JSON object naming the files as the last line')
    .action(
      action(async (opts: { dir: string; host?: string[]; pkcs11?: string } & JsonOption) => {
        const hosts = parseTlsHosts(opts.host ?? []);
        if (opts.pkcs11 !== undefined) checkTokenUri(opts.pkcs11);
        const result = await initPki(opts.dir, new Date(), {
          hosts,
          ...(opts.pkcs11 !== undefined ? { pkcs11: opts.pkcs11 } : {}),
        });
        // A key in a token is named by its pkcs11: URI, a file by its absolute path.
        const abs = (p: CertKeyPaths) => ({
          cert: join(result.dir, p.cert),
          key: isPkcs11Uri(p.key) ? p.key : join(result.dir, p.key),
        });
        const m = result.manifest.manufacturer;
        const o = result.manifest.operator;
        if (opts.json) {
          printJsonLine({
            dir: result.dir,
            manifest: result.manifestPath,
            manufacturerRoot: abs(m.root),
            deviceCa: abs(m.deviceCa),
            operatorRoot: abs(o.root),
            operatorCa: abs(o.operatorCa),
            packageSigner: abs(o.packageSigner),
            ocspSigners: { 'device-ca': abs(m.deviceCaOcsp), 'operator-ca': abs(o.operatorCaOcsp) },
            tls: Object.fromEntries(
              TLS_ROLES.map((role) => [
                role,
                { ...abs(o.tls[role]), chain: join(result.dir, tlsChainPath(o.tls[role])) },
              ]),
            ),
            created: result.created,
            reissued: result.reissued,
          });
        } else {
          console.log(
            result.created.length === 0
              ? `PKI in ${result.dir} is complete; nothing created`
              : `PKI in ${result.dir}: created ${result.created.length} files (manifest ${result.manifestPath})`,
          );
          for (const cert of result.reissued) console.log(`issued again for new host names: ${cert}`);
        }
      }),
    );

  pki
    .command('revoke')
    .description(
      'revoke a device certificate (--dsim) or any certificate of an issuing CA (--serial --issuer)',
    )
    .requiredOption('--dir <dir>', 'PKI folder')
    .option('--dsim <id>', 'DSIM_ID of the device to revoke')
    .option('--serial <hex>', 'certificate serial number (hex)')
    .option('--issuer <ca>', `issuing CA of --serial: ${ISSUERS.join(' | ')}`)
    .option(
      '--reason <reason>',
      `RFC 5280 CRLReason: ${Object.keys(REVOCATION_REASONS).join(' | ')}`,
      'unspecified',
    )
    .option('--json', 'print one JSON object as the last line')
    .action(
      action(
        async (
          opts: { dir: string; dsim?: string; serial?: string; issuer?: string; reason: string } & JsonOption,
        ) => {
          const reason = parseReason(opts.reason);
          let target: RevokeTarget;
          if (opts.dsim !== undefined && opts.serial === undefined && opts.issuer === undefined) {
            target = { dsimId: opts.dsim };
          } else if (opts.dsim === undefined && opts.serial !== undefined && opts.issuer !== undefined) {
            target = { serialHex: parseSerial(opts.serial), issuer: parseIssuer(opts.issuer) };
          } else {
            throw new SimcredError(
              'SIMCRED_CLI_ARGUMENT',
              'give either --dsim ID or both --serial HEX and --issuer CA',
            );
          }
          const result = await revokeCertificate(opts.dir, target, reason);
          if (opts.json) printJsonLine(result);
          else
            console.log(
              `revoked ${result.dsimId ? `device ${result.dsimId} (` : ''}${result.issuer} serial ${result.serial}` +
                `${result.dsimId ? ')' : ''}: ${result.reason} at ${result.revokedAt}`,
            );
        },
      ),
    );

  const devices = program.command('devices').description('the device factory');
  devices
    .command('manufacture')
    .description('make N new devices: DSIM_ID, key, certificate, preliminary credentials, factory image')
    .requiredOption('--dir <dir>', 'PKI folder (made by `simcred pki init`)')
    .requiredOption('--count <n>', 'number of devices')
    .option('--key <type>', 'device key type: ec (P-256) | rsa (2048)', 'ec')
    .option(
      '--registration-server <url>',
      `registration server burnt into the devices, round-robin; repeatable (default ${DEFAULT_REGISTRATION_SERVERS.join(', ')})`,
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option(
      '--registration-servers-per-device <N>',
      'how many of the registration servers each device lists, tried in order (default 1)',
    )
    .option(
      '--phlr <url>',
      `preliminary HLR burnt into the devices (default ${DEFAULT_FACTORY_SERVERS.phlr})`,
    )
    .option('--ocsp <url>', `OCSP responder burnt into the devices (default ${DEFAULT_FACTORY_SERVERS.ocsp})`)
    .option('--hss <url>', `home HSS burnt into the devices (default ${DEFAULT_FACTORY_SERVERS.hss})`)
    .option(
      '--package-formats <list>',
      'credential package formats the devices open, comma-separated: jose, xml (default: not written, jose only)',
    )
    .option(
      '--module <kind>',
      "the devices' trusted module: software (key file, the default) | tpm (key made in the TPM named by --tpm)",
      'software',
    )
    .option(
      '--tpm <tcti>',
      'with --module tpm: the TPM 2.0 the devices use, as a TCTI (e.g. swtpm:host=127.0.0.1,port=2321)',
    )
    .option('--json', 'print one JSON object naming the files as the last line')
    .action(
      action(
        async (
          opts: {
            dir: string;
            count: string;
            key: string;
            module: string;
            tpm?: string;
            registrationServer?: string[];
            registrationServersPerDevice?: string;
            phlr?: string;
            ocsp?: string;
            hss?: string;
            packageFormats?: string;
          } & JsonOption,
        ) => {
          const count = positiveInt('--count', opts.count, MAX_DEVICES_PER_RUN);
          const packageFormats =
            opts.packageFormats === undefined ? undefined : parsePackageFormats(opts.packageFormats);
          const keyType = parseKeyType(opts.key);
          const module = parseModule(opts.module, opts.tpm);
          const progress = startProgress('manufacturing', count);
          let result;
          try {
            result = await manufactureDevices({
              dir: opts.dir,
              count,
              keyType,
              registrationServers: opts.registrationServer,
              ...(opts.registrationServersPerDevice !== undefined
                ? {
                    registrationServersPerDevice: positiveInt(
                      '--registration-servers-per-device',
                      opts.registrationServersPerDevice,
                      8,
                    ),
                  }
                : {}),
              servers: { phlr: opts.phlr, ocsp: opts.ocsp, hss: opts.hss },
              ...(packageFormats ? { packageFormats } : {}),
              module,
              ...(opts.tpm !== undefined ? { tpm: opts.tpm } : {}),
              onProgress: (n) => progress.increment(n),
            });
          } finally {
            progress.stop();
          }
          if (opts.json) printJsonLine(result);
          else
            console.log(
              `manufactured ${result.count} ${keyType.toUpperCase()} devices in ${result.elapsedMs} ms ` +
                `(${Math.round((result.count * 1000) / Math.max(result.elapsedMs, 1))}/s) under ${join(result.dir, 'devices')}`,
            );
        },
      ),
    );
}

/** `--module software|tpm`, and `--tpm` only (and always) with tpm; checked before any work. */
function parseModule(value: string, tcti: string | undefined): DeviceModuleKind {
  if (!(DEVICE_MODULES as readonly string[]).includes(value)) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `--module must be ${DEVICE_MODULES.join(' or ')}, got ${JSON.stringify(value)}`,
    );
  }
  if ((value === 'tpm') !== (tcti !== undefined) || tcti === '') {
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', '--tpm <tcti> is needed with --module tpm, and only then');
  }
  return value as DeviceModuleKind;
}

/** `--package-formats jose,xml`: each known format once. */
function parsePackageFormats(value: string): ('jose' | 'xml')[] {
  const formats = value.split(',').map((f) => f.trim());
  if (
    formats.length === 0 ||
    formats.some((f) => f !== 'jose' && f !== 'xml') ||
    new Set(formats).size !== formats.length
  ) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `--package-formats must list jose and/or xml, comma-separated, got ${JSON.stringify(value)}`,
    );
  }
  return formats as ('jose' | 'xml')[];
}
