import { writeFileSync } from 'node:fs';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { Option, type Command } from 'commander';
import { z } from 'zod';
import { SimcredError } from '../errors/index.js';
import { loadPki } from '../pki/index.js';
import {
  fromBase64url,
  inspectAnyPackage,
  openAnyPackage,
  packageFormatOf,
  PACKAGE_FORMATS,
  sealPackageAs,
  type PackageFormat,
} from '../crypto/index.js';
import { action, printJsonLine, readInputFile } from './run.js';

/** What `package seal --in` reads: the content and binding of one package. */
const sealRequestSchema = z
  .object({
    credentials: z
      .object({
        imsi: z.string(),
        k: z.string(),
        opc: z.string(),
        amf: z.string(),
        sqn: z.string(),
        plmn: z.string(),
      })
      .strict(),
    dsimId: z.string(),
    /** base64url, 16–64 bytes. */
    deviceNonce: z.string(),
    packageId: z.string().optional(),
    ttlSeconds: z.number().int().positive().optional(),
  })
  .strict();

/**
 * `simcred package seal` and `simcred package open`: make and inspect a credential package by hand,
 * in either format, with the operator's package signer of a PKI folder — so a package can be checked
 * with other tools (xmlsec1, any JOSE library) and one made elsewhere can be opened here.
 */
export function registerPackageCommands(program: Command): void {
  const pkg = program
    .command('package')
    .description('seal or open a credential package by hand (JOSE or XML; docs/crypto.md §6)');

  pkg
    .command('seal')
    .description("seal credentials to a device with the PKI's operator package signer")
    .requiredOption('--pki <DIR>', 'the PKI folder (`simcred pki init`): signer, operator CA')
    .requiredOption(
      '--device <FILE>',
      "the device's certificate or key, PEM (an RSA device's XML package needs the certificate)",
    )
    .addOption(new Option('--format <FORMAT>', 'package format').choices(PACKAGE_FORMATS).default('jose'))
    .requiredOption(
      '--in <FILE>',
      'JSON: {credentials: {imsi, k, opc, amf, sqn, plmn}, dsimId, deviceNonce (base64url), packageId?, ttlSeconds?} (- for stdin)',
    )
    .requiredOption('--out <FILE>', 'where to write the package')
    .action(
      action(
        async (options: { pki: string; device: string; format: PackageFormat; in: string; out: string }) => {
          const request = readSealRequest(options.in);
          const device = readInputFile('--device', options.device).toString('utf8');
          const pki = await loadPki(options.pki);
          const signer = pki.operator.packageSigner;
          const text = await sealPackageAs(options.format, {
            credentials: request.credentials,
            dsimId: request.dsimId,
            deviceNonce: fromBase64url(request.deviceNonce, 'deviceNonce', 'SIMCRED_CLI_ARGUMENT'),
            devicePublicKey: device,
            operatorSigningKey: signer.signingKey(),
            operatorChainPem: [signer.pem, pki.operator.operatorCa.pem],
            ttlSeconds: request.ttlSeconds ?? 24 * 3600,
            ...(request.packageId !== undefined ? { packageId: request.packageId } : {}),
          });
          const info = await inspectAnyPackage(text, { operatorRoots: [pki.operator.root.pem] });
          writeFileSync(options.out, text);
          printJsonLine({
            format: options.format,
            out: options.out,
            packageId: info.packageId,
            dsimId: info.dsimId,
            exp: info.exp,
            keyManagement: info.keyManagement,
          });
        },
      ),
    );

  pkg
    .command('open')
    .description(
      "verify a package against the PKI's operator root and decrypt it with a device key (prints the credentials)",
    )
    .requiredOption('--pki <DIR>', 'the PKI folder whose operator root the package must chain to')
    .requiredOption('--device-key <FILE>', "the device's private key, PEM")
    .requiredOption('--in <FILE>', 'the package, JOSE or XML (- for stdin)')
    .option('--dsim <ID>', "the device's DSIM_ID, if the package must name it (default: the one it names)")
    .option(
      '--device-nonce <B64URL>',
      'the session nonce the package must carry (default: the one it carries)',
    )
    .action(
      action(
        async (options: {
          pki: string;
          deviceKey: string;
          in: string;
          dsim?: string;
          deviceNonce?: string;
        }) => {
          const text = readInputFile('--in', options.in).toString('utf8');
          const devicePrivateKey = readPrivateKey(options.deviceKey);
          const pki = await loadPki(options.pki);
          const operatorRoots = [pki.operator.root.pem];
          // The binding checked against what the user gave, or else against the package's own (its
          // signature and chain are verified either way).
          const info = await inspectAnyPackage(text, { operatorRoots, allowExpired: true });
          const opened = await openAnyPackage(text, {
            operatorRoots,
            dsimId: options.dsim ?? info.dsimId,
            deviceNonce: fromBase64url(
              options.deviceNonce ?? info.deviceNonce,
              '--device-nonce',
              'SIMCRED_CLI_ARGUMENT',
            ),
            devicePrivateKey,
          });
          printJsonLine({
            format: packageFormatOf(text),
            packageId: opened.packageId,
            dsimId: info.dsimId,
            deviceNonce: info.deviceNonce,
            iat: info.iat,
            exp: opened.exp,
            keyManagement: info.keyManagement,
            signer: opened.signerCertificate.subject,
            credentials: opened.credentials,
          });
        },
      ),
    );
}

function readSealRequest(path: string): z.infer<typeof sealRequestSchema> {
  let json: unknown;
  try {
    json = JSON.parse(readInputFile('--in', path).toString('utf8'));
  } catch (cause) {
    if (cause instanceof SimcredError) throw cause;
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', `--in ${path}: not JSON`);
  }
  const parsed = sealRequestSchema.safeParse(json);
  if (!parsed.success) {
    // Name the fields, never their values (K and OPc).
    const fields = [...new Set(parsed.error.issues.map((i) => i.path.join('.') || '(top level)'))].join(', ');
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', `--in ${path}: malformed: ${fields}`);
  }
  return parsed.data;
}

function readPrivateKey(path: string): KeyObject {
  const pem = readInputFile('--device-key', path);
  try {
    return createPrivateKey(pem);
  } catch (cause) {
    throw new SimcredError('SIMCRED_CRYPTO_KEY_UNSUPPORTED', `--device-key ${path}: not a PEM private key`, {
      cause,
    });
  }
}
