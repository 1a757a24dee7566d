import type { FastifyInstance } from 'fastify';
import { mountRoute } from '../http/index.js';
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

export function mountRegistrationApi(app: FastifyInstance, processor: RegistrationProcessor): void {
  mountRoute(app, pushRegistrations, ({ body, caller }) =>
    processor.push(body, caller.kind === 'peer' ? caller.subject : 'unknown'),
  );
  mountRoute(app, withdrawRegistrations, ({ body }) => processor.withdraw(body));
  mountRoute(app, pushGroups, ({ body, caller }) =>
    processor.pushGroups(body, caller.kind === 'peer' ? caller.subject : 'unknown'),
  );
  mountRoute(app, lookupChallenge, async ({ body }) => processor.challenge(body));
  mountRoute(app, lookup, ({ body }) => processor.lookup(body));
  mountRoute(app, pushTransferStatements, ({ body, caller }) =>
    processor.pushTransferStatements(body, caller.kind === 'peer' ? caller.subject : 'unknown'),
  );
  mountRoute(app, fetchTransferStatement, ({ body }) => processor.fetchTransferStatement(body));
}
