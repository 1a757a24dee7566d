import { resolve } from 'node:path';
import { SimcredError } from '../errors/index.js';
import { readManifest } from './init.js';
import { ISSUERS, type IssuerName } from './layout.js';
import { CaStore, normaliseSerial, REVOCATION_REASONS, type RevocationReason } from './store.js';

export type RevokeTarget = { dsimId: string } | { serialHex: string; issuer: IssuerName };

export interface RevokeResult {
  dsimId?: string;
  issuer: IssuerName;
  serial: string;
  reason: RevocationReason;
  revokedAt: string;
}

/**
 * Revokes a device (by DSIM_ID) or any certificate an issuing CA issued (by serial). The OCSP
 * responder reads ca.db, so the next response says "revoked". Revoking again keeps the first
 * time and reason (RFC 5280 §3.3: revocation is final), and the result reports those.
 *
 * @example
 *   await revokeCertificate('/data/pki', { dsimId: 'DSIM0123456789ABCDEF' }, 'keyCompromise');
 */
export async function revokeCertificate(
  dirArg: string,
  target: RevokeTarget,
  reason: RevocationReason = 'unspecified',
  now = new Date(),
): Promise<RevokeResult> {
  const dir = resolve(dirArg);
  readManifest(dir);
  const store = await CaStore.open(dir);
  try {
    let issuer: IssuerName;
    let serial: string;
    let dsimId: string | undefined;
    if ('dsimId' in target) {
      const device = await store.findDevice(target.dsimId);
      if (!device) {
        throw new SimcredError(
          'SIMCRED_PKI_UNKNOWN_DEVICE',
          `no device ${target.dsimId} was manufactured in ${dir}`,
        );
      }
      issuer = 'device-ca';
      serial = device.serialHex;
      dsimId = device.dsimId;
    } else {
      issuer = target.issuer;
      serial = normaliseSerial(target.serialHex);
      // RFC 6960 §2.2 lets a responder call unissued serials "revoked", but a typo should not
      // silently revoke nothing: only serials this CA issued are accepted.
      if ((await store.status(issuer, serial)).status === 'unknown') {
        throw new SimcredError('SIMCRED_PKI_UNKNOWN_CERTIFICATE', `${issuer} never issued serial ${serial}`);
      }
    }
    await store.revoke(issuer, serial, now, REVOCATION_REASONS[reason]);
    const status = await store.status(issuer, serial);
    if (status.status !== 'revoked') {
      throw new SimcredError('SIMCRED_INTERNAL', `revocation of ${issuer} serial ${serial} was not recorded`);
    }
    const recordedReason =
      (Object.entries(REVOCATION_REASONS).find(
        ([, code]) => code === status.reason,
      )?.[0] as RevocationReason) ?? reason;
    return {
      ...(dsimId ? { dsimId } : {}),
      issuer,
      serial,
      reason: recordedReason,
      revokedAt: status.revokedAt.toISOString(),
    };
  } finally {
    await store.close();
  }
}

export function parseReason(value: string): RevocationReason {
  if (Object.hasOwn(REVOCATION_REASONS, value)) return value as RevocationReason;
  throw new SimcredError(
    'SIMCRED_CLI_ARGUMENT',
    `--reason must be one of ${Object.keys(REVOCATION_REASONS).join(', ')}, got ${JSON.stringify(value)}`,
  );
}

export function parseIssuer(value: string): IssuerName {
  if ((ISSUERS as readonly string[]).includes(value)) return value as IssuerName;
  throw new SimcredError(
    'SIMCRED_CLI_ARGUMENT',
    `--issuer must be one of ${ISSUERS.join(', ')}, got ${JSON.stringify(value)}`,
  );
}

export function parseSerial(value: string): string {
  const hex = value.replace(/:/g, '');
  if (!/^[0-9a-fA-F]{1,40}$/.test(hex)) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `--serial must be hex (at most 20 octets), got ${JSON.stringify(value)}`,
    );
  }
  return normaliseSerial(hex.length % 2 ? `0${hex}` : hex);
}
