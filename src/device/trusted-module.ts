import { createHash, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '../crypto/x509.js';
import { signDeviceMessage } from '../crypto/device-signature.js';
import { lookupProofMessage, transferFetchProofMessage } from '../crypto/lookup-proof.js';
import {
  transferConfirmationMessage,
  verifyTransferStatement,
  type TransferStatementClaims,
} from '../crypto/transfer-statement.js';
import {
  DEFAULT_PACKAGE_FORMAT,
  openAnyPackage,
  packageFormatOf,
  openSecret,
  proofOfPossessionMessage,
  sealSecret,
  signReceipt,
  toBase64url,
  type Credentials,
  type DevicePrivateKey,
  type PackageFormat,
} from '../crypto/index.js';
import { SimcredError } from '../errors/index.js';
import type { DeviceSignatureAlgorithm } from '../crypto/algorithms.js';
import type { LoadedFactoryImage } from '../pki/index.js';
import { UsimSqnState, type UsimSqnStateJson } from '../aka/sqn.js';
import { Usim } from '../aka/usim.js';
import { SlottedSealedFile } from './module-storage.js';

/** The module's installed subscription (sealed); its presence means "credentials downloaded". */
export const MODULE_STATE_FILE = 'module.json';
/**
 * What the module rewrites as it goes — the USIMs' SQN state and where an unfinished onboarding
 * stands (ticket, nonces) — in two sealed slots written in place (see SlottedSealedFile). Kept apart
 * from module.json so that a device that only attached to the PHLR still counts as new.
 */
export const STATE_FILE = 'state.bin';
/** Earlier layout: the USIMs' SQN state (sealed); read when there is no state.bin yet. */
export const USIM_STATE_FILE = 'usim.json';
/** Earlier layout: where an unfinished onboarding stands (sealed); read when there is no state.bin yet. */
export const PROGRESS_FILE = 'progress.json';

/** Which credentials an AKA runs on: the factory's preliminary ones (step 1) or the downloaded ones (step 12). */
export type AkaCredentials = 'preliminary' | 'subscription';

/** The module's answer to an AKA challenge: RES, or AUTS when the SQN is not fresh. CK/IK stay inside. */
export type ModuleAkaAnswer = { kind: 'success'; res: Buffer } | { kind: 'sync-failure'; auts: Buffer };

/** What the module reveals about what it holds: never K or OPc. */
export interface InstalledSubscription {
  imsi: string;
  plmn: string;
  packageId: string;
  installedAt: string;
}

/** A device signature as the protocol carries it (alg, base64url signature). */
export interface ModuleSignature {
  alg: DeviceSignatureAlgorithm;
  signature: string;
}

/** A value now (the software module) or later (a TPM's command). */
export type MaybePromise<T> = T | Promise<T>;

/**
 * The device's trusted module (42): it holds SK_dsim and, after step 12, {IMSI, K, OPc}. Keys never
 * leave it; callers get signatures, and the module itself opens and stores the package. Its storage
 * (devices/<id>/module.json once a package is installed, devices/<id>/state.bin for SQN state and
 * onboarding progress) is sealed with the module's storage key, as a secure element binds its storage
 * to itself. It writes only when what it must keep changes (the persist points are marked where they
 * are), and every write is atomic.
 *
 * Two implementations: {@link TrustedModule} in software (SK_dsim in memory; the default, and what
 * large fleets run) and TpmModule (src/device/tpm-module.ts: SK_dsim in a TPM 2.0). The agent takes
 * either and awaits what it signs.
 *
 * @example
 *   const module: DeviceModule = await openDeviceModule(await loadFactoryImage(pkiDir, dsimId));
 *   const proof = await module.signProof({ challenge, sessionNonce });
 */
export abstract class DeviceModule {
  private installed: { subscription: InstalledSubscription; credentials: Credentials } | undefined;
  /** The USIM on K_PIMSI/OPc_PIMSI (step 1). */
  private preliminaryUsim: Usim;
  /** The USIM on the downloaded K/OPc, once installed (step 12). */
  private subscriptionUsim: Usim | undefined;
  /** The often-rewritten part of the module's storage; undefined when the module does not persist. */
  private readonly stateFile: SlottedSealedFile | undefined;
  /** That part in memory: SQN state and onboarding progress. */
  private state: StoredState = {};
  /** `state` as last read or written (JSON), so that a write that would change nothing is skipped. */
  private persistedState = '{}';

  protected constructor(
    readonly dsimId: string,
    /** SK_dsim: a KeyObject (software) or the TPM's key (its operations run in the TPM). */
    protected readonly deviceKey: DevicePrivateKey,
    /** Device certificate then its issuing CA, base64 DER. */
    readonly certificateChain: string[],
    private readonly storageDir: string | undefined,
    private readonly preliminary: { pimsi: string; kPimsi: string; opcPimsi: string },
    /** The package formats the factory image says the module opens (undefined: JOSE only, not declared). */
    readonly packageFormats: PackageFormat[] | undefined = undefined,
  ) {
    this.preliminaryUsim = new Usim({
      k: Buffer.from(preliminary.kPimsi, 'hex'),
      opc: Buffer.from(preliminary.opcPimsi, 'hex'),
    });
    this.stateFile = storageDir
      ? new SlottedSealedFile(join(storageDir, STATE_FILE), () => this.storageKey(), `state:${dsimId}`)
      : undefined;
  }

  /** The key that seals the module's storage (module.json, state.bin). */
  protected abstract storageKey(): Buffer;

  /** Step 2: signature over the registration server's challenge. */
  abstract signLookup(challenge: Buffer): MaybePromise<ModuleSignature>;

  /** Step 4: signature over (challenge ‖ session nonce ‖ DSIM_ID). */
  abstract signProof(input: { challenge: Buffer; sessionNonce: Buffer }): MaybePromise<ModuleSignature>;

  /** Signature over a registration server's challenge, to fetch this device's transfer statement. */
  abstract signTransferFetch(challenge: Buffer): MaybePromise<ModuleSignature>;

  /**
   * The confirmation the old operator gets once the new operator's package is installed, signed
   * with SK_dsim over (transferId ‖ DSIM_ID ‖ package id).
   */
  abstract signTransferConfirmation(): MaybePromise<TransferConfirmation>;

  /** The preliminary IMSI the device presents to the preliminary HLR (step 1). */
  get pimsi(): string {
    return this.preliminary.pimsi;
  }

  /**
   * The USIM side of AKA (TS 33.102 §6.3.3) on the preliminary credentials (step 1) or, once a
   * package is installed, on the downloaded ones (step 12). Throws SIMCRED_AKA_MAC_FAILURE when AUTN
   * was not made with this K; answers RES, or AUTS when the SQN is not fresh. The SQN state is kept
   * in the module's sealed storage after every accepted challenge.
   *
   * @example
   *   const answer = module.authenticate('preliminary', rand, autn);
   */
  authenticate(credentials: AkaCredentials, rand: Buffer, autn: Buffer): ModuleAkaAnswer {
    const usim = credentials === 'preliminary' ? this.preliminaryUsim : this.subscriptionUsim;
    if (!usim) throw new Error('no package installed');
    const answer = usim.authenticate(rand, autn);
    if (answer.kind === 'sync-failure') return { kind: 'sync-failure', auts: answer.auts };
    this.saveUsims();
    return { kind: 'success', res: answer.res };
  }

  /**
   * Step 11–12: a package in a format the factory image declares (JOSE, or XML: docs/crypto.md §6b);
   * verify the operator signature and chain, that the package names this module's DSIM_ID and device
   * nonce, the signer's status (the caller's OCSP check), then decrypt and store. After an operator
   * change the module trusts the new operator's root only, whatever roots the caller passes: a
   * package its old operator signs is refused.
   */
  async installPackage(
    packageText: string,
    options: {
      deviceNonce: Buffer;
      operatorRoots: x509.X509Certificate[];
      checkSigner(signer: x509.X509Certificate, issuer: x509.X509Certificate): Promise<void>;
    },
  ): Promise<InstalledSubscription> {
    const format = packageFormatOf(packageText);
    if (!(this.packageFormats ?? [DEFAULT_PACKAGE_FORMAT]).includes(format)) {
      throw new SimcredError(
        'SIMCRED_PACKAGE_FORMAT_UNSUPPORTED',
        `this module does not open ${format} packages`,
      );
    }
    const opened = await openAnyPackage(packageText, {
      operatorRoots: this.operatorRoots(options.operatorRoots),
      dsimId: this.dsimId,
      deviceNonce: options.deviceNonce,
      devicePrivateKey: this.deviceKey,
    });
    await options.checkSigner(opened.signerCertificate, opened.issuerCertificate);
    const subscription: InstalledSubscription = {
      imsi: opened.credentials.imsi,
      plmn: opened.credentials.plmn,
      packageId: opened.packageId,
      installedAt: new Date().toISOString(),
    };
    this.installed = { subscription, credentials: opened.credentials };
    this.subscriptionUsim = usimFor(opened.credentials);
    // Persist point: the downloaded subscription is the whole point of the onboarding; it is stored
    // before the receipt tells the operator the device holds it (step 12).
    this.save();
    // The new USIM's SQN state is a function of the package (usimFor), which is exactly what load()
    // rebuilds when the stored state has no subscription entry: it is written only if one is there.
    if (this.state.usims?.subscription !== undefined) this.saveUsims();
    return subscription;
  }

  /** Step 12: the signed receipt for the installed package. */
  receipt(deviceNonce: Buffer): Promise<string> {
    if (!this.installed) throw new Error('no package installed');
    return signReceipt(this.deviceKey, {
      dsimId: this.dsimId,
      packageId: this.installed.subscription.packageId,
      deviceNonce,
    });
  }

  // --- Operator change (docs/architecture.md "Operator change") ---------------------------------

  /** The trust an operator change gave the module, if any: it replaces the factory image's operator. */
  get transferTrust(): TransferTrust | undefined {
    const stored = this.state.trust;
    if (!stored) return undefined;
    return { ...stored, operatorRoot: new x509.X509Certificate(Buffer.from(stored.operatorRoot, 'base64')) };
  }

  /** The operator roots the module trusts for credentials now: the transferred one, else the caller's (factory). */
  operatorRoots(factoryRoots: readonly x509.X509Certificate[]): x509.X509Certificate[] {
    const trust = this.transferTrust;
    return trust ? [trust.operatorRoot] : [...factoryRoots];
  }

  /**
   * Takes a transfer statement: verified against the roots the module trusts NOW (the caller's
   * factory roots, or those of an earlier transfer) for this DSIM_ID and this device key, its
   * signer checked by the caller (OCSP), then the new trust — B's root, registration servers and
   * servers — stored in the sealed state in one atomic write. From then on only B's root is trusted
   * for packages. The same statement again changes nothing.
   */
  async acceptTransfer(
    statement: string,
    options: {
      operatorRoots: readonly x509.X509Certificate[];
      checkSigner(signer: x509.X509Certificate, issuer: x509.X509Certificate): Promise<void>;
      /** The home network of the credential held now: where it still attaches until the new one is in. */
      previousHss?: string;
      now?: Date;
    },
  ): Promise<TransferTrust> {
    const verified = await verifyTransferStatement(statement, {
      operatorRoots: this.operatorRoots(options.operatorRoots),
      dsimId: this.dsimId,
      devicePublicKey: new x509.X509Certificate(Buffer.from(this.certificateChain[0]!, 'base64')),
      ...(options.now ? { now: options.now } : {}),
    });
    await options.checkSigner(verified.signerCertificate, verified.issuerCertificate);
    const { claims } = verified;
    if (this.state.trust?.transferId === claims.transferId) return this.transferTrust!;
    this.state.trust = {
      ...storedTrust(claims),
      acceptedAt: (options.now ?? new Date()).toISOString(),
      ...(options.previousHss ? { previousHss: options.previousHss } : {}),
    };
    // Persist point: the new trust anchor, in one sealed write (the previous slot stays whole).
    this.persistState();
    return this.transferTrust!;
  }

  /** What {@link signTransferConfirmation} signs: the transfer followed and the package installed since. */
  protected transferConfirmation(): { transferId: string; packageId: string; message: Buffer } {
    const trust = this.state.trust;
    const packageId = this.installed?.subscription.packageId;
    if (!trust || !packageId) throw new Error('no transfer followed, or no package installed');
    const message = transferConfirmationMessage({
      transferId: trust.transferId,
      dsimId: this.dsimId,
      packageId,
    });
    return { transferId: trust.transferId, packageId, message };
  }

  /**
   * True once the credential the module holds came after the transfer statement (the new operator's):
   * until then the old credential serves, at the old operator's network.
   */
  get holdsTransferredCredential(): boolean {
    const trust = this.state.trust;
    const installed = this.installed?.subscription;
    return trust !== undefined && installed !== undefined && installed.installedAt >= trust.acceptedAt;
  }

  /** True while an onboarding's progress is stored (its receipt not yet sent). */
  get onboardingUnderWay(): boolean {
    return this.state.progress !== undefined;
  }

  /** Records that the old operator accepted the confirmation (nothing more is owed to it). */
  markTransferConfirmed(packageId: string): void {
    if (!this.state.trust) return;
    this.state.trust = { ...this.state.trust, confirmedPackageId: packageId };
    this.persistState();
  }

  get subscription(): InstalledSubscription | undefined {
    return this.installed?.subscription;
  }

  /** The module keeps its secrets out of logs and JSON. */
  toJSON(): { dsimId: string; imsi: string | null } {
    return { dsimId: this.dsimId, imsi: this.installed?.subscription.imsi ?? null };
  }

  /** The subscription, written once (a new file: sealed text to module.json.tmp, then renamed). */
  private save(): void {
    if (!this.storageDir || !this.installed) return;
    const sealed = sealSecret(Buffer.from(JSON.stringify(this.installed)), {
      kek: this.storageKey(),
      context: `module:${this.dsimId}`,
    });
    const path = join(this.storageDir, MODULE_STATE_FILE);
    // Atomic: a crash mid-write leaves a stray .tmp (overwritten next time), never half a module.json.
    writeFileSync(`${path}.tmp`, JSON.stringify({ version: 1, sealed }), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  /**
   * SQN state of both USIMs (no keys: they are in the factory image and the sealed subscription).
   * Persist point: after every accepted challenge (TS 33.102 Annex C), before RES leaves the module,
   * so a restarted module never accepts a challenge it has already answered (no replayed AUTN).
   */
  private saveUsims(): void {
    this.state.usims = {
      preliminary: this.preliminaryUsim.toJSON().sqn,
      subscription: this.subscriptionUsim?.toJSON().sqn,
      subscriptionPackageId: this.installed?.subscription.packageId,
    };
    this.persistState();
  }

  /**
   * Where an onboarding stands (registration route and nonce, session nonces, ticket, package), so a
   * device that restarts after step 6 resumes with the same ticket instead of being locked out of a
   * used registration. Sealed like the rest of the module's storage; `undefined` clears it. A record
   * equal to the one stored is not written again.
   */
  saveProgress(progress: unknown): void {
    if (!this.stateFile) return;
    if (progress === undefined) delete this.state.progress;
    else this.state.progress = progress;
    this.persistState();
  }

  /** The progress record as stored (a copy), if any. */
  loadProgress<T>(): T | undefined {
    if (!this.stateFile) return undefined;
    return (JSON.parse(this.persistedState) as StoredState).progress as T | undefined;
  }

  /** Writes the state (SQN, progress) into its next slot, unless it is what is stored already. */
  private persistState(): void {
    if (!this.stateFile) return;
    const json = JSON.stringify(this.state);
    if (json === this.persistedState) return;
    this.stateFile.write(json);
    this.persistedState = json;
  }

  /** Earlier layout: one sealed JSON file per record ({version: 1, sealed}). */
  private readSealedFile<T>(file: string, purpose: string): T {
    const { sealed } = JSON.parse(readFileSync(join(this.storageDir!, file), 'utf8')) as { sealed: string };
    const plain = openSecret(sealed, { kek: this.storageKey(), context: `${purpose}:${this.dsimId}` });
    return JSON.parse(plain.toString('utf8')) as T;
  }

  /** Reads the module's storage: one directory listing, then only the files that are there. */
  protected load(): void {
    if (!this.storageDir || !this.stateFile) return;
    let files: Set<string>;
    try {
      files = new Set(readdirSync(this.storageDir));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return;
    }
    if (files.has(MODULE_STATE_FILE)) {
      this.installed = this.readSealedFile<NonNullable<typeof this.installed>>(MODULE_STATE_FILE, 'module');
    }
    if (files.has(STATE_FILE)) {
      this.state = JSON.parse(this.stateFile.read() ?? '{}') as StoredState;
    } else {
      // A module from before state.bin: its next write moves both records there.
      if (files.has(USIM_STATE_FILE)) this.state.usims = this.readSealedFile(USIM_STATE_FILE, 'usim');
      if (files.has(PROGRESS_FILE)) this.state.progress = this.readSealedFile(PROGRESS_FILE, 'progress');
    }
    this.persistedState = JSON.stringify(this.state);
    const usims = this.state.usims;
    if (usims?.preliminary) {
      this.preliminaryUsim = new Usim(
        {
          k: Buffer.from(this.preliminary.kPimsi, 'hex'),
          opc: Buffer.from(this.preliminary.opcPimsi, 'hex'),
        },
        UsimSqnState.fromJSON(usims.preliminary),
      );
    }
    if (this.installed) {
      // SQN state of another credential (the one a re-provisioning replaced, its state not yet
      // rewritten when the module stopped) does not apply: the new USIM starts from its package.
      const own =
        usims?.subscription !== undefined &&
        (usims.subscriptionPackageId === undefined ||
          usims.subscriptionPackageId === this.installed.subscription.packageId);
      this.subscriptionUsim = usimFor(
        this.installed.credentials,
        own ? UsimSqnState.fromJSON(usims.subscription!) : undefined,
      );
    }
  }
}

/**
 * The trusted module in software: SK_dsim is a node KeyObject from the factory image's key file, and
 * the storage key is derived from it. Every operation is synchronous and costs what node:crypto does;
 * the default, and what fleets of thousands run.
 *
 * @example
 *   const module = TrustedModule.fromFactoryImage(await loadFactoryImage(pkiDir, dsimId));
 *   const proof = module.signProof({ challenge, sessionNonce });
 */
export class TrustedModule extends DeviceModule {
  /** The storage key, derived once from SK_dsim (which the module holds anyway) on first use. */
  private sealingKey: Buffer | undefined;

  private constructor(
    dsimId: string,
    private readonly privateKey: KeyObject,
    certificateChain: string[],
    storageDir: string | undefined,
    preliminary: { pimsi: string; kPimsi: string; opcPimsi: string },
    packageFormats: PackageFormat[] | undefined,
  ) {
    super(dsimId, privateKey, certificateChain, storageDir, preliminary, packageFormats);
  }

  static fromFactoryImage(image: LoadedFactoryImage, options: { persist?: boolean } = {}): TrustedModule {
    const module = new TrustedModule(
      image.image.dsimId,
      image.privateKey,
      image.chainPem.map(pemToBase64Der),
      options.persist === false ? undefined : image.dir,
      image.image.preliminary,
      image.image.packageFormats,
    );
    module.load();
    return module;
  }

  signLookup(challenge: Buffer): ModuleSignature {
    return this.sign(lookupProofMessage({ challenge, dsimId: this.dsimId }));
  }

  signProof(input: { challenge: Buffer; sessionNonce: Buffer }): ModuleSignature {
    return this.sign(proofOfPossessionMessage({ ...input, dsimId: this.dsimId }));
  }

  signTransferFetch(challenge: Buffer): ModuleSignature {
    return this.sign(transferFetchProofMessage({ challenge, dsimId: this.dsimId }));
  }

  signTransferConfirmation(): TransferConfirmation {
    const { transferId, packageId, message } = this.transferConfirmation();
    return { transferId, packageId, ...this.sign(message) };
  }

  /**
   * The key that seals the module's storage: SHA-256 over a label and SK_dsim (PKCS#8 DER), so the
   * storage is bound to the device key as a secure element binds its storage to itself. Derived once
   * per module instance and kept in memory, next to SK_dsim itself.
   */
  protected storageKey(): Buffer {
    if (this.sealingKey === undefined) {
      const der = this.privateKey.export({ format: 'der', type: 'pkcs8' });
      this.sealingKey = createHash('sha256').update('simcred/v1/module-storage').update(der).digest();
    }
    return this.sealingKey;
  }

  private sign(message: Buffer): ModuleSignature {
    const { alg, signature } = signDeviceMessage(this.privateKey, message);
    return { alg, signature: toBase64url(signature) };
  }
}

/** The signed confirmation of an operator change (DeviceModule.signTransferConfirmation). */
export interface TransferConfirmation extends ModuleSignature {
  transferId: string;
  packageId: string;
}

/** The often-rewritten part of the module's storage (state.bin). */
interface StoredState {
  usims?: StoredUsims;
  progress?: unknown;
  /** Operator change: the trust that replaced the factory image's operator. */
  trust?: StoredTrust;
}

/** The trust an operator change gives the module (the operator root as base64 DER). */
interface StoredTrust {
  transferId: string;
  operatorRoot: string;
  registrationServers: string[];
  servers: { ocsp: string; hss: string };
  /** The old operator's credentialing server, owed the confirmation. */
  confirmUrl: string;
  /** When the module took the statement: a package installed since is the new operator's. */
  acceptedAt: string;
  /** The old operator's home network, where the credential held before still attaches. */
  previousHss?: string;
  /** Set once the old operator accepted the confirmation for this (new) package. */
  confirmedPackageId?: string;
}

/** What the module trusts after an operator change (docs/architecture.md "Operator change"). */
export interface TransferTrust extends Omit<StoredTrust, 'operatorRoot'> {
  operatorRoot: x509.X509Certificate;
}

function storedTrust(claims: TransferStatementClaims): Omit<StoredTrust, 'acceptedAt'> {
  return {
    transferId: claims.transferId,
    operatorRoot: claims.newOperatorRoot,
    registrationServers: claims.newRegistrationServers,
    servers: claims.newServers,
    confirmUrl: claims.confirmUrl,
  };
}

interface StoredUsims {
  preliminary: UsimSqnStateJson;
  subscription?: UsimSqnStateJson | undefined;
  /** Which installed package `subscription` belongs to (absent in state written before re-provisioning). */
  subscriptionPackageId?: string | undefined;
}

/**
 * The USIM for downloaded credentials. A new one starts from the package's SQN (an SQN the network
 * has already used, 0 for a new subscriber), so the HSS's next SQN is fresh.
 */
function usimFor(credentials: Credentials, sqn?: UsimSqnState): Usim {
  let state = sqn;
  if (!state) {
    state = new UsimSqnState();
    const initial = Number.parseInt(credentials.sqn, 16);
    if (Number.isSafeInteger(initial) && initial > 0) state.accept(initial);
  }
  return new Usim({ k: Buffer.from(credentials.k, 'hex'), opc: Buffer.from(credentials.opc, 'hex') }, state);
}

/** A certificate's PEM as base64 DER, as the module presents its chain. */
export function pemToBase64Der(pem: string): string {
  return pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
}
