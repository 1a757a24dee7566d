import { X509Certificate, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { issuerFromCertificate, signTbs, validityFrom } from '../../src/pki/certificates.js';
import { deviceTbs, makeDeviceCredentials, prepareDeviceIssuer } from '../../src/pki/device-certificates.js';
import { loadPrivateKey, readManifest } from '../../src/pki/index.js';

/** A device certificate made outside the factory's records, with its key, as a device would present it. */
export interface ForgedDevice {
  /** Leaf then issuing CA, base64 DER (the shape of a route's certificateChain). */
  certificateChain: string[];
  privateKey: KeyObject;
  serialHex: string;
}

/**
 * Issues a device certificate for `dsimId` with the device CA of the PKI folder `pkiDir`, without
 * recording it in that PKI's CA store: a clone made with a stolen CA key (the OCSP responder does not
 * know it), a certificate of another manufacturer's PKI (not trusted here), or, with `validity`, one
 * outside its validity period.
 *
 * @example
 *   const clone = await forgeDeviceCertificate(t.config.pkiDir, dsimId);
 */
export async function forgeDeviceCertificate(
  pkiDir: string,
  dsimId: string,
  validity: { notBefore: Date; notAfter: Date } = validityFrom(new Date(), 1),
  /** The device key to certify (any type or size); a fresh P-256 key when omitted. */
  deviceKey?: KeyObject,
): Promise<ForgedDevice> {
  const manifest = readManifest(pkiDir);
  const caCert = new X509Certificate(readFileSync(join(pkiDir, manifest.manufacturer.deviceCa.cert)));
  const caKey = loadPrivateKey(join(pkiDir, manifest.manufacturer.deviceCa.key));
  const issuer = issuerFromCertificate(caCert.raw, caKey);
  const deviceIssuer = prepareDeviceIssuer({
    caKeyPem: caKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    issuerNameDer: new Uint8Array(AsnConvert.serialize(issuer.name)),
    issuerKeyId: issuer.keyId,
    notBefore: validity.notBefore.toISOString(),
    notAfter: validity.notAfter.toISOString(),
    keyType: 'ec',
  });
  if (deviceKey) {
    const serial = randomBytes(16);
    serial[0] = (serial[0]! & 0x3f) | 0x40;
    const spki = createPublicKey(deviceKey).export({ type: 'spki', format: 'der' });
    const der = signTbs(deviceTbs(deviceIssuer, dsimId, serial, spki), caKey);
    return {
      certificateChain: [der.toString('base64'), caCert.raw.toString('base64')],
      privateKey: deviceKey,
      serialHex: serial.toString('hex'),
    };
  }
  const [made] = await makeDeviceCredentials(deviceIssuer, [dsimId]);
  return {
    certificateChain: [pemToBase64(made!.certPem), caCert.raw.toString('base64')],
    privateKey: createPrivateKey(made!.keyPem),
    serialHex: made!.serialHex,
  };
}

function pemToBase64(pem: string): string {
  return pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
}
