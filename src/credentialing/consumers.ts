import type { PeerClient } from '../http/index.js';
import {
  deleteSubscribers,
  issueCredentials,
  signTransferStatement,
  releaseSubscribers,
  resumeSubscribers,
  subscriberEvents,
  suspendSubscribers,
} from '../protocol/hss.js';
import { referral } from '../protocol/provisioning.js';
import {
  pushGroups,
  pushRegistrations,
  pushTransferStatements,
  withdrawRegistrations,
  type GroupRecord,
  type RegistrationRecord,
  type TransferStatementRecord,
} from '../protocol/registration.js';
import type { BodyOf, QueryOf, ResponseOf } from '../protocol/route.js';

/** The credentialing server's clients of its peers, all over mutual TLS (one shared connection pool). */
export class CredentialingConsumers {
  constructor(private readonly client: PeerClient) {}

  /** Step 0b. */
  pushRegistrations(
    registrationServer: string,
    registrations: RegistrationRecord[],
  ): Promise<ResponseOf<typeof pushRegistrations>> {
    return this.client.call(registrationServer, pushRegistrations, { body: { registrations } });
  }

  /** Enrollment groups, to the registration servers that admit their devices. */
  pushGroups(registrationServer: string, groups: GroupRecord[]): Promise<unknown> {
    return this.client.call(registrationServer, pushGroups, { body: { groups } });
  }

  /** Operator change: the transfer statements the devices fetch there. */
  pushTransferStatements(
    registrationServer: string,
    statements: TransferStatementRecord[],
  ): Promise<unknown> {
    return this.client.call(registrationServer, pushTransferStatements, { body: { statements } });
  }

  /** Removes (or with `used`, retires) records; `upToGeneration` spares newer ones pushed since. */
  withdrawRegistrations(
    registrationServer: string,
    dsimIds: string[],
    options: { used?: boolean; upToGeneration?: Record<string, number> } = {},
  ): Promise<ResponseOf<typeof withdrawRegistrations>> {
    return this.client.call(registrationServer, withdrawRegistrations, { body: { dsimIds, ...options } });
  }

  /** Step 5. */
  issueCredentials(
    hssUrl: string,
    body: BodyOf<typeof issueCredentials>,
  ): Promise<ResponseOf<typeof issueCredentials>> {
    return this.client.call(hssUrl, issueCredentials, { body });
  }

  /** A revoked device's subscriber, released at the HSS. */
  releaseSubscribers(
    hssUrl: string,
    body: BodyOf<typeof releaseSubscribers>,
  ): Promise<ResponseOf<typeof releaseSubscribers>> {
    return this.client.call(hssUrl, releaseSubscribers, { body });
  }

  /** The operator's lifecycle decisions, applied at the HSS (each idempotent). */
  suspendSubscribers(
    hssUrl: string,
    body: BodyOf<typeof suspendSubscribers>,
  ): Promise<ResponseOf<typeof suspendSubscribers>> {
    return this.client.call(hssUrl, suspendSubscribers, { body });
  }

  resumeSubscribers(
    hssUrl: string,
    body: BodyOf<typeof resumeSubscribers>,
  ): Promise<ResponseOf<typeof resumeSubscribers>> {
    return this.client.call(hssUrl, resumeSubscribers, { body });
  }

  deleteSubscribers(
    hssUrl: string,
    body: BodyOf<typeof deleteSubscribers>,
  ): Promise<ResponseOf<typeof deleteSubscribers>> {
    return this.client.call(hssUrl, deleteSubscribers, { body });
  }

  /** Operator change: the HSS signs the transfer statement with the package signer. */
  signTransferStatement(
    hssUrl: string,
    body: BodyOf<typeof signTransferStatement>,
  ): Promise<ResponseOf<typeof signTransferStatement>> {
    return this.client.call(hssUrl, signTransferStatement, { body });
  }

  /** First attaches after a cursor (step 12), waiting up to query.waitSeconds for one. */
  subscriberEvents(
    hssUrl: string,
    query: QueryOf<typeof subscriberEvents>,
    signal?: AbortSignal,
  ): Promise<ResponseOf<typeof subscriberEvents>> {
    return this.client.call(hssUrl, subscriberEvents, { query, signal });
  }

  /** Step 6, to the provisioning server. */
  refer(provisioningUrl: string, body: BodyOf<typeof referral>): Promise<unknown> {
    return this.client.call(provisioningUrl, referral, { body });
  }
}
