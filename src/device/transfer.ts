import type * as x509 from '../crypto/x509.js';
import { fromBase64url } from '../crypto/index.js';
import { isSimcredError } from '../errors/index.js';
import type { PeerClient } from '../http/index.js';
import type { CertificateStatusChecker } from '../ocsp/checker.js';
import { confirmTransfer } from '../protocol/credentialing.js';
import { fetchTransferStatement, lookupChallenge } from '../protocol/registration.js';
import type { DeviceAgent, OnboardingResult } from './agent.js';
import type { DeviceModule, InstalledSubscription } from './trusted-module.js';

/** The operator a device deals with now: the factory image's, or the one it was transferred to. */
export interface CurrentOperator {
  /** In the order the device tries them. */
  registrationServers: string[];
  hssUrl: string;
  operatorRoots: x509.X509Certificate[];
  ocsp: CertificateStatusChecker;
}

export interface TransferOutcome {
  transferId: string;
  /** The onboarding at the new operator (null when an earlier run had installed its package already). */
  onboarding: OnboardingResult | null;
  subscription: InstalledSubscription;
}

/**
 * The device side of an operator change (docs/architecture.md "Operator change"), in order:
 * 1. unless a transfer is already under way, fetch the statement from the current registration
 *    server, proving itself as at step 2 (access grant, challenge, signature, certificate chain);
 * 2. the trusted module verifies it against the roots it trusts now, the signer's status is checked
 *    at the current OCSP responder, and the module stores the new trust — from here on the agent
 *    talks to the new operator and the module trusts only its root;
 * 3. onboard at the new operator (steps 1–12; the new package replaces the old credential), unless
 *    a package was installed since the module took the statement (a restart after the install);
 * 4. confirm to the old operator, signed with the device key, that the new credential is installed:
 *    the old operator then deletes its subscription.
 *
 * @example
 *   const { transferId, subscription } = await agent.followTransfer();
 */
export async function followTransfer(
  agent: DeviceAgent,
  module: DeviceModule,
  client: PeerClient,
  access: { current(): CurrentOperator; accessGrant(): Promise<string> },
): Promise<TransferOutcome> {
  let trust = module.transferTrust;
  if (!trust || trust.confirmedPackageId !== undefined) {
    const { registrationServers, operatorRoots, ocsp, hssUrl } = access.current();
    const statement = await fetchStatement(module, client, registrationServers, await access.accessGrant());
    trust = await module.acceptTransfer(statement, {
      operatorRoots,
      checkSigner: (signer, issuer) => ocsp.requireGood(signer, issuer),
      previousHss: hssUrl,
    });
  }
  let onboarding: OnboardingResult | null = null;
  if (!installedSince(module)) onboarding = await agent.onboard();
  const subscription = module.subscription!;
  if (trust.confirmedPackageId !== subscription.packageId) {
    await client.call(trust.confirmUrl, confirmTransfer, {
      body: { dsimId: module.dsimId, ...(await module.signTransferConfirmation()) },
    });
    module.markTransferConfirmed(subscription.packageId);
  }
  return { transferId: trust.transferId, onboarding, subscription };
}

/**
 * The transfer statement waiting for this device at one of its registration servers, tried in
 * order: one that has none (or is down) passes it to the next; when none has it, a 503 if any was
 * down, else SIMCRED_TRANSFER_UNKNOWN.
 */
async function fetchStatement(
  module: DeviceModule,
  client: PeerClient,
  registrationServers: string[],
  grant: string,
): Promise<string> {
  let down: unknown;
  let none: unknown;
  for (const server of registrationServers) {
    try {
      return await fetchStatementAt(module, client, server, grant);
    } catch (err) {
      if (isSimcredError(err) && err.status === 503) down ??= err;
      else if (isSimcredError(err) && err.code === 'SIMCRED_TRANSFER_UNKNOWN') none = err;
      else throw err;
    }
  }
  throw down ?? none;
}

async function fetchStatementAt(
  module: DeviceModule,
  client: PeerClient,
  registrationServer: string,
  grant: string,
): Promise<string> {
  const dsimId = module.dsimId;
  const { challenge } = await client.call(registrationServer, lookupChallenge, { body: { dsimId } });
  const proof = await module.signTransferFetch(fromBase64url(challenge, 'challenge'));
  const fetched = await client.call(registrationServer, fetchTransferStatement, {
    body: { dsimId, grant, challenge, certificateChain: module.certificateChain, ...proof },
  });
  return fetched.statement;
}

/** A package installed after the module took the statement: the new operator's (a restart after install). */
function installedSince(module: DeviceModule): boolean {
  return module.holdsTransferredCredential && !module.onboardingUnderWay;
}
