/**
 * The factory's side of a TPM device (`simcred devices manufacture --module tpm`): the device key is
 * made in the device's TPM, the device proves it holds it with a PKCS#10 request (RFC 2986) signed in
 * the TPM, and the manufacturer's device CA certifies the key from that request — after checking the
 * signature and that the key is the one in the TPM's public blob, non-exportable. The module's storage
 * key is sealed by the same TPM. No private key is ever in this process or on disk.
 */
import { randomBytes } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AlgorithmIdentifier, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import * as x509 from '../crypto/x509.js';
import { SimcredError } from '../errors/index.js';
import { devicePublicKeyOfBlob, sha256, Tpm, type TpmObjectBlobs } from '../device/tpm.js';
import { OID } from './certificates.js';
import {
  deviceSubject,
  issueDeviceCertificate,
  type DeviceIssuer,
  type TpmDeviceCredential,
} from './device-certificates.js';

/** Bytes of the module's storage key (AES-256-GCM), sealed by the TPM. */
const STORAGE_KEY_BYTES = 32;

/**
 * Device side: a CSR for the TPM key, signed in the TPM (ecdsa-with-SHA256, RFC 5758 §3.2).
 *
 * @example
 *   const csrDer = await tpmKeyCsr(tpm, key, dsimId);
 */
export async function tpmKeyCsr(
  tpm: Tpm,
  key: TpmObjectBlobs & { spkiDer: Buffer },
  dsimId: string,
): Promise<Buffer> {
  const info = new CertificationRequestInfo({
    subject: deviceSubject(dsimId),
    subjectPKInfo: AsnConvert.parse(key.spkiDer, SubjectPublicKeyInfo),
  });
  const infoDer = Buffer.from(AsnConvert.serialize(info));
  const p1363 = await tpm.signDigest(key, sha256(infoDer));
  const csr = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: OID.ecdsaWithSha256 }),
    signature: new Uint8Array(p1363ToDer(p1363)).buffer,
  });
  return Buffer.from(AsnConvert.serialize(csr));
}

/**
 * Manufacturer side: the CSR's signature verifies (proof that the device holds the key), and its key
 * is the one in the TPM's public blob, which says the key was made in the TPM and cannot leave it
 * (fixedTPM, fixedParent, sensitiveDataOrigin). Returns the SPKI to certify; SIMCRED_PKI_INCONSISTENT
 * otherwise.
 *
 * @example
 *   const spkiDer = await checkTpmKeyCsr(csrDer, keyPublicBlob);
 */
export async function checkTpmKeyCsr(csrDer: Buffer, keyPublicBlob: Buffer): Promise<Buffer> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrDer);
  } catch (cause) {
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', 'the device CSR is not a PKCS#10 request', { cause });
  }
  if (!(await csr.verify())) {
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', 'the device CSR signature does not verify');
  }
  const spkiDer = Buffer.from(csr.publicKey.rawData);
  if (!spkiDer.equals(devicePublicKeyOfBlob(keyPublicBlob).spkiDer)) {
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', "the device CSR's key is not the TPM's key");
  }
  return spkiDer;
}

/**
 * A TPM device per DSIM_ID, one after the other (one TPM command stream): key in the TPM, CSR signed
 * there and checked, certificate, storage key sealed. The TPM's SRK is made first if it has none.
 *
 * @example
 *   const creds = await makeTpmDeviceCredentials(prepareDeviceIssuer(ctx), dsimIds, new Tpm(tcti));
 */
export async function makeTpmDeviceCredentials(
  di: DeviceIssuer,
  dsimIds: readonly string[],
  tpm: Tpm,
): Promise<TpmDeviceCredential[]> {
  if (di.keyType !== 'ec') {
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', 'a TPM device key is EC P-256 (--key ec)');
  }
  await tpm.ensureStorageRootKey();
  const made: TpmDeviceCredential[] = [];
  for (const dsimId of dsimIds) {
    const key = await tpm.createDeviceKey();
    const spkiDer = await checkTpmKeyCsr(await tpmKeyCsr(tpm, key, dsimId), key.publicBlob);
    const storageKey = randomBytes(STORAGE_KEY_BYTES);
    let storage: TpmObjectBlobs;
    try {
      storage = await tpm.seal(storageKey);
    } finally {
      storageKey.fill(0);
    }
    made.push({
      dsimId,
      ...issueDeviceCertificate(di, dsimId, spkiDer),
      tpm: {
        keyPublic: key.publicBlob.toString('base64'),
        keyPrivate: key.privateBlob.toString('base64'),
        storagePublic: storage.publicBlob.toString('base64'),
        storagePrivate: storage.privateBlob.toString('base64'),
      },
    });
  }
  return made;
}

/** r‖s (32 bytes each) → ECDSA-Sig-Value DER, what X.509 and PKCS#10 carry. */
function p1363ToDer(signature: Buffer): Buffer {
  const integer = (bytes: Buffer) => {
    let value = bytes;
    while (value.length > 1 && value[0] === 0 && value[1]! < 0x80) value = value.subarray(1);
    if (value[0]! >= 0x80) value = Buffer.concat([Buffer.of(0), value]);
    return Buffer.concat([Buffer.of(0x02, value.length), value]);
  };
  const body = Buffer.concat([integer(signature.subarray(0, 32)), integer(signature.subarray(32))]);
  return Buffer.concat([Buffer.of(0x30, body.length), body]);
}
