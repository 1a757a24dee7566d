import { createHash, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as x509 from '../crypto/x509.js';
import { signDeviceMessage } from '../crypto/device-signature.js';
import { lookupProofMessage } from '../crypto/lookup-proof.js';
import {
  openPackage,
  openSecret,
  proofOfPossessionMessage,
  sealSecret,
  signReceipt,
  toBase64url,
  type Credentials,
} from '../crypto/index.js';
import type { DeviceSignatureAlgorithm } from '../crypto/algorithms.js';
import type { LoadedFactoryImage } from '../pki/index.js';

export const MODULE_STATE_FILE = 'module.json';

/** What the module reveals about what it holds: never K or OPc. */
export interface InstalledSubscription {
  imsi: string;
  plmn: string;
  packageId: string;
  installedAt: string;
}

/**
 * The device's trusted module (42), in software: it holds SK_dsim and, after step 12, {IMSI, K, OPc}.
 * Keys never leave it; callers get signatures, and the module itself opens and stores the package.
 * Its storage (devices/<id>/module.json) is sealed with a key derived from SK_dsim, as a secure
 * element would bind its storage to itself.
 *
 * @example
 *   const module = TrustedModule.fromFactoryImage(await loadFactoryImage(pkiDir, dsimId));
 *   const proof = module.signProof({ challenge, sessionNonce });
 */
export class TrustedModule {
  private installed: { subscription: InstalledSubscription; credentials: Credentials } | undefined;

  private constructor(
    readonly dsimId: string,
    private readonly privateKey: KeyObject,
    /** Device certificate then its issuing CA, base64 DER. */
    readonly certificateChain: string[],
    private readonly storageDir: string | undefined,
  ) {}

  static fromFactoryImage(image: LoadedFactoryImage, options: { persist?: boolean } = {}): TrustedModule {
    const chain = image.chainPem.map(pemToBase64Der);
    const module = new TrustedModule(
      image.image.dsimId,
      image.privateKey,
      chain,
      options.persist === false ? undefined : image.dir,
    );
    module.load();
    return module;
  }

  /** Step 2: signature over the registration server's challenge. */
  signLookup(challenge: Buffer): { alg: DeviceSignatureAlgorithm; signature: string } {
    const { alg, signature } = signDeviceMessage(
      this.privateKey,
      lookupProofMessage({ challenge, dsimId: this.dsimId }),
    );
    return { alg, signature: toBase64url(signature) };
  }

  /** Step 4: signature over (challenge ‖ session nonce ‖ DSIM_ID). */
  signProof(input: { challenge: Buffer; sessionNonce: Buffer }): {
    alg: DeviceSignatureAlgorithm;
    signature: string;
  } {
    const message = proofOfPossessionMessage({ ...input, dsimId: this.dsimId });
    const { alg, signature } = signDeviceMessage(this.privateKey, message);
    return { alg, signature: toBase64url(signature) };
  }

  /**
   * Step 11–12: verify the operator signature and chain, that the package names this module's
   * DSIM_ID and device nonce, the signer's status (the caller's OCSP check), then decrypt and store.
   */
  async installPackage(
    jws: string,
    options: {
      deviceNonce: Buffer;
      operatorRoots: x509.X509Certificate[];
      checkSigner(signer: x509.X509Certificate, issuer: x509.X509Certificate): Promise<void>;
    },
  ): Promise<InstalledSubscription> {
    const opened = await openPackage(jws, {
      operatorRoots: options.operatorRoots,
      dsimId: this.dsimId,
      deviceNonce: options.deviceNonce,
      devicePrivateKey: this.privateKey,
    });
    await options.checkSigner(opened.signerCertificate, opened.issuerCertificate);
    const subscription: InstalledSubscription = {
      imsi: opened.credentials.imsi,
      plmn: opened.credentials.plmn,
      packageId: opened.packageId,
      installedAt: new Date().toISOString(),
    };
    this.installed = { subscription, credentials: opened.credentials };
    this.save();
    return subscription;
  }

  /** Step 12: the signed receipt for the installed package. */
  receipt(deviceNonce: Buffer): Promise<string> {
    if (!this.installed) throw new Error('no package installed');
    return signReceipt(this.privateKey, {
      dsimId: this.dsimId,
      packageId: this.installed.subscription.packageId,
      deviceNonce,
    });
  }

  get subscription(): InstalledSubscription | undefined {
    return this.installed?.subscription;
  }

  /** The module keeps its secrets out of logs and JSON. */
  toJSON(): { dsimId: string; imsi: string | null } {
    return { dsimId: this.dsimId, imsi: this.installed?.subscription.imsi ?? null };
  }

  private storageKey(): Buffer {
    const der = this.privateKey.export({ format: 'der', type: 'pkcs8' });
    return createHash('sha256').update('simcred/v1/module-storage').update(der).digest();
  }

  private save(): void {
    if (!this.storageDir || !this.installed) return;
    const sealed = sealSecret(Buffer.from(JSON.stringify(this.installed)), {
      kek: this.storageKey(),
      context: `module:${this.dsimId}`,
    });
    writeFileSync(join(this.storageDir, MODULE_STATE_FILE), JSON.stringify({ version: 1, sealed }), {
      mode: 0o600,
    });
  }

  private load(): void {
    if (!this.storageDir) return;
    const path = join(this.storageDir, MODULE_STATE_FILE);
    if (!existsSync(path)) return;
    const { sealed } = JSON.parse(readFileSync(path, 'utf8')) as { sealed: string };
    const plain = openSecret(sealed, { kek: this.storageKey(), context: `module:${this.dsimId}` });
    this.installed = JSON.parse(plain.toString('utf8')) as typeof this.installed;
  }
}

function pemToBase64Der(pem: string): string {
  return pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
}
