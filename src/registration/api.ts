import type { FastifyInstance } from 'fastify';
import { mountRoute, type CallerIdentity } from '../http/index.js';
import {
  fetchTransferStatement,
  lookup,
  lookupChallenge,
  pushGroups,
  pushRegistrations,
  pushTransferStatements,
  withdrawRegistrations,
} from '../protocol/registration.js';
import type { RegistrationProcessor } from './processor.js';
import type { Writer } from './store.js';

/** The pushing credentialing server as a record's owner (peer routes only reach here authenticated). */
function writerOf(caller: CallerIdentity): Writer {
  return caller.kind === 'peer' ? { owner: caller.owner, legacyName: caller.subject } : { owner: 'unknown' };
}

export function mountRegistrationApi(app: FastifyInstance, processor: RegistrationProcessor): void {
  mountRoute(app, pushRegistrations, ({ body, caller }) => processor.push(body, writerOf(caller)));
  mountRoute(app, withdrawRegistrations, ({ body, caller }) => processor.withdraw(body, writerOf(caller)));
  mountRoute(app, pushGroups, ({ body, caller }) => processor.pushGroups(body, writerOf(caller)));
  mountRoute(app, lookupChallenge, async ({ body }) => processor.challenge(body));
  mountRoute(app, lookup, ({ body }) => processor.lookup(body));
  mountRoute(app, pushTransferStatements, ({ body, caller }) =>
    processor.pushTransferStatements(body, writerOf(caller)),
  );
  mountRoute(app, fetchTransferStatement, ({ body }) => processor.fetchTransferStatement(body));
}
