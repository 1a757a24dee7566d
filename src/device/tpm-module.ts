/**
 * The trusted module on a TPM 2.0 (docs/device.md "Trusted module"): SK_dsim was made in the TPM and
 * never leaves it — proofs, receipts and transfer confirmations are signed there (TPM2_Sign, ECDSA
 * P-256 / SHA-256, returned as the ES256 r‖s the protocol carries), and the package's key agreement is
 * done there (TPM2_ECDH_ZGen; the KDF, key unwrap and AES-GCM after it are the software path's, see
 * src/crypto/jwe-ecdh-es.ts). The storage key that seals module.json and state.bin is a data object
 * the TPM sealed at the factory: only that TPM unseals it, once, when the module opens. The package's
 * format, its checks and the storage layout are the software module's (DeviceModule).
 */
import { signDeviceMessageWith, type ExternalDeviceKey } from '../crypto/device-key.js';
import { lookupProofMessage, transferFetchProofMessage } from '../crypto/lookup-proof.js';
import { proofOfPossessionMessage, toBase64url, type PackageFormat } from '../crypto/index.js';
import { SimcredError } from '../errors/index.js';
import type { LoadedFactoryImage } from '../pki/index.js';
import { sha256, Tpm, type TpmObjectBlobs } from './tpm.js';
import {
  DeviceModule,
  pemToBase64Der,
  TrustedModule,
  type ModuleSignature,
  type TransferConfirmation,
} from './trusted-module.js';

/** SK_dsim in the TPM, as the crypto layer sees it: ES256 and ECDH, each a TPM command. */
class TpmDeviceKey implements ExternalDeviceKey {
  readonly kind = 'ec-p256' as const;

  constructor(
    private readonly tpm: Tpm,
    private readonly blobs: TpmObjectBlobs,
  ) {}

  signEs256(message: Uint8Array): Promise<Buffer> {
    return this.tpm.signDigest(this.blobs, sha256(message));
  }

  ecdhZ(peerPoint: Uint8Array): Promise<Buffer> {
    return this.tpm.ecdhZ(this.blobs, peerPoint);
  }

  /** Never the key (there is none here): the TPM that holds it. */
  toJSON(): { tpm: string } {
    return { tpm: this.tpm.tcti };
  }
}

/**
 * @example
 *   const module = await TpmModule.open(await loadFactoryImage(pkiDir, dsimId));
 *   const proof = await module.signProof({ challenge, sessionNonce });
 */
export class TpmModule extends DeviceModule {
  private constructor(
    dsimId: string,
    private readonly key: TpmDeviceKey,
    /** Unsealed by the TPM when the module opened; kept in memory while it runs, as SK_dsim is in software. */
    private readonly unsealedStorageKey: Buffer,
    certificateChain: string[],
    storageDir: string | undefined,
    preliminary: { pimsi: string; kPimsi: string; opcPimsi: string },
    packageFormats: PackageFormat[] | undefined,
  ) {
    super(dsimId, key, certificateChain, storageDir, preliminary, packageFormats);
  }

  /**
   * Opens the module of a TPM device: its TPM (the image's TCTI, unless `tcti` names another) unseals
   * the storage key, then the sealed storage is read. SIMCRED_TPM_REFUSED when the blobs were made
   * in another TPM; SIMCRED_TPM_UNAVAILABLE when the TPM cannot be reached.
   */
  static async open(
    image: LoadedFactoryImage,
    options: { persist?: boolean; tcti?: string } = {},
  ): Promise<TpmModule> {
    const tpmImage = image.image.tpm;
    if (image.module !== 'tpm' || !tpmImage) {
      throw new SimcredError('SIMCRED_PKI_INCONSISTENT', `${image.image.dsimId} is not a TPM device`);
    }
    const tpm = new Tpm(options.tcti ?? tpmImage.tcti);
    const blob = (base64: string) => Buffer.from(base64, 'base64');
    const storageKey = await tpm.unseal({
      publicBlob: blob(tpmImage.storagePublic),
      privateBlob: blob(tpmImage.storagePrivate),
    });
    if (storageKey.length !== 32) {
      throw new SimcredError('SIMCRED_TPM_REFUSED', 'the sealed storage key is not 32 bytes');
    }
    const module = new TpmModule(
      image.image.dsimId,
      new TpmDeviceKey(tpm, { publicBlob: blob(tpmImage.keyPublic), privateBlob: blob(tpmImage.keyPrivate) }),
      storageKey,
      image.chainPem.map(pemToBase64Der),
      options.persist === false ? undefined : image.dir,
      image.image.preliminary,
      image.image.packageFormats,
    );
    module.load();
    return module;
  }

  signLookup(challenge: Buffer): Promise<ModuleSignature> {
    return this.sign(lookupProofMessage({ challenge, dsimId: this.dsimId }));
  }

  signProof(input: { challenge: Buffer; sessionNonce: Buffer }): Promise<ModuleSignature> {
    return this.sign(proofOfPossessionMessage({ ...input, dsimId: this.dsimId }));
  }

  signTransferFetch(challenge: Buffer): Promise<ModuleSignature> {
    return this.sign(transferFetchProofMessage({ challenge, dsimId: this.dsimId }));
  }

  async signTransferConfirmation(): Promise<TransferConfirmation> {
    const { transferId, packageId, message } = this.transferConfirmation();
    return { transferId, packageId, ...(await this.sign(message)) };
  }

  protected storageKey(): Buffer {
    return this.unsealedStorageKey;
  }

  private async sign(message: Buffer): Promise<ModuleSignature> {
    const { alg, signature } = await signDeviceMessageWith(this.key, message);
    return { alg, signature: toBase64url(signature) };
  }
}

/**
 * The module a factory image names: the software one (at once) or the TPM one (after its TPM unsealed
 * the storage key).
 *
 * @example
 *   const module = await openDeviceModule(await loadFactoryImage(pkiDir, dsimId));
 */
export async function openDeviceModule(
  image: LoadedFactoryImage,
  options: { persist?: boolean } = {},
): Promise<DeviceModule> {
  return image.module === 'tpm'
    ? TpmModule.open(image, options)
    : TrustedModule.fromFactoryImage(image, options);
}
