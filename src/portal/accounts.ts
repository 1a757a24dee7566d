import { timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { z } from 'zod';
import { SimcredError } from '../errors/index.js';
import type { Account, AccountKind } from '../protocol/portal.js';
import type { Clock } from '../time/clock.js';
import { newId, newToken, tokenDigest } from './ids.js';
import { hashPassword, verifyPassword } from './passwords.js';
import { AttemptLimiter } from './rate-limit.js';
import type { PortalTables } from './store.js';

export type PortalAccount = z.infer<typeof Account>;

/** A signed-in browser: its account, CSRF token, and the session id only the cookie holds. */
export interface SignedIn {
  account: PortalAccount;
  csrfToken: string;
  sessionId: string;
  expiresAt: Date;
}

export interface AccountOptions {
  db: Kysely<PortalTables>;
  clock: Clock;
  sessionTtlSeconds: number;
  loginAttempts: number;
  loginWindowSeconds: number;
}

/** Sign-ups allowed per client address within the login window (a brake on account spraying). */
const SIGNUPS_PER_WINDOW = 20;

/**
 * Accounts and sessions (step 0a): owners sign up, owners and operators sign in. Passwords are
 * scrypt-hashed with a per-account salt; session ids are 32 random bytes, stored as their SHA-256;
 * failed sign-ins are limited per e-mail and per client address.
 *
 * @example
 *   const signedIn = await accounts.logIn({ email, password }, request.ip);
 */
export class AccountService {
  private readonly failures: AttemptLimiter;
  private readonly signUps: AttemptLimiter;
  private dummyHash: Promise<string> | undefined;

  constructor(private readonly options: AccountOptions) {
    const window = { db: options.db, windowSeconds: options.loginWindowSeconds, clock: options.clock };
    this.failures = new AttemptLimiter({ scope: 'sign-in', limit: options.loginAttempts, ...window });
    this.signUps = new AttemptLimiter({ scope: 'sign-up', limit: SIGNUPS_PER_WINDOW, ...window });
  }

  async signUp(
    input: { email: string; password: string; name: string },
    clientAddress: string,
  ): Promise<SignedIn> {
    this.throttle(await this.signUps.retryAfter(`ip:${clientAddress}`), 'sign-ups from this address');
    const db = this.options.db;
    const existing = await db
      .selectFrom('accounts')
      .select('id')
      .where('email', '=', input.email)
      .executeTakeFirst();
    if (existing)
      throw new SimcredError(
        'SIMCRED_ACCOUNT_EXISTS',
        `email: an account with ${input.email} already exists`,
      );
    await this.signUps.fail(`ip:${clientAddress}`);
    const account: PortalAccount = { id: newId('A'), email: input.email, name: input.name, kind: 'owner' };
    try {
      await db
        .insertInto('accounts')
        .values({
          id: account.id,
          email: account.email,
          name: account.name,
          kind: 'owner',
          password_hash: await hashPassword(input.password),
          created_at: this.now().toISOString(),
        })
        .execute();
    } catch (err) {
      // Two sign-ups with one address at once: the unique index decides.
      const again = await db
        .selectFrom('accounts')
        .select('id')
        .where('email', '=', input.email)
        .executeTakeFirst();
      if (again)
        throw new SimcredError(
          'SIMCRED_ACCOUNT_EXISTS',
          `email: an account with ${input.email} already exists`,
        );
      throw err;
    }
    return this.openSession(account);
  }

  async logIn(input: { email: string; password: string }, clientAddress: string): Promise<SignedIn> {
    const keys = [`email:${input.email}`, `ip:${clientAddress}`];
    const waits = await Promise.all(keys.map((k) => this.failures.retryAfter(k)));
    this.throttle(Math.max(...waits), 'failed sign-ins');
    const row = await this.options.db
      .selectFrom('accounts')
      .selectAll()
      .where('email', '=', input.email)
      .executeTakeFirst();
    // An unknown address costs the same scrypt as a wrong password: timing tells nothing.
    const ok = row
      ? await verifyPassword(input.password, row.password_hash)
      : (await verifyPassword(input.password, await (this.dummyHash ??= hashPassword(newToken()))), false);
    if (!row || !ok) {
      for (const key of keys) await this.failures.fail(key);
      throw new SimcredError('SIMCRED_LOGIN_FAILED', 'the e-mail address or the password is wrong');
    }
    await this.failures.reset(`email:${input.email}`);
    return this.openSession({ id: row.id, email: row.email, name: row.name, kind: row.kind });
  }

  /** The session a cookie names, if it exists and has not expired. */
  async session(sessionId: string | undefined): Promise<SignedIn | undefined> {
    if (!sessionId || sessionId.length > 100) return undefined;
    const row = await this.options.db
      .selectFrom('sessions')
      .innerJoin('accounts', 'accounts.id', 'sessions.account_id')
      .select(['accounts.id', 'email', 'name', 'kind', 'csrf_token', 'expires_at'])
      .where('id_digest', '=', tokenDigest(sessionId))
      .executeTakeFirst();
    if (!row || new Date(row.expires_at) <= this.now()) return undefined;
    return {
      account: { id: row.id, email: row.email, name: row.name, kind: row.kind },
      csrfToken: row.csrf_token,
      sessionId,
      expiresAt: new Date(row.expires_at),
    };
  }

  async logOut(sessionId: string): Promise<void> {
    await this.options.db.deleteFrom('sessions').where('id_digest', '=', tokenDigest(sessionId)).execute();
  }

  /**
   * An operator account from the config or `simcred portal add-operator`: created, or its password
   * and name replaced. Operators are never signed up from the browser.
   */
  async ensureOperator(input: { email: string; password: string; name: string }): Promise<PortalAccount> {
    const db = this.options.db;
    const hash = await hashPassword(input.password);
    const existing = await db
      .selectFrom('accounts')
      .selectAll()
      .where('email', '=', input.email)
      .executeTakeFirst();
    if (existing) {
      if (existing.kind !== 'operator') {
        throw new SimcredError('SIMCRED_ACCOUNT_EXISTS', `${input.email} is an owner account`);
      }
      await db
        .updateTable('accounts')
        .set({ password_hash: hash, name: input.name })
        .where('id', '=', existing.id)
        .execute();
      return { id: existing.id, email: existing.email, name: input.name, kind: 'operator' };
    }
    const account: PortalAccount = { id: newId('A'), email: input.email, name: input.name, kind: 'operator' };
    // Several worker processes may start at once with the same config: one insert wins, the rest see it.
    await db
      .insertInto('accounts')
      .values({ ...account, password_hash: hash, created_at: this.now().toISOString() })
      .onConflict((oc) => oc.column('email').doNothing())
      .execute();
    const row = await db
      .selectFrom('accounts')
      .selectAll()
      .where('email', '=', input.email)
      .executeTakeFirstOrThrow();
    return { id: row.id, email: row.email, name: row.name, kind: row.kind };
  }

  private async openSession(account: PortalAccount): Promise<SignedIn> {
    const sessionId = newToken();
    const csrfToken = newToken();
    const now = this.now();
    const expiresAt = new Date(now.getTime() + this.options.sessionTtlSeconds * 1000);
    await this.options.db
      .insertInto('sessions')
      .values({
        id_digest: tokenDigest(sessionId),
        account_id: account.id,
        csrf_token: csrfToken,
        expires_at: expiresAt.toISOString(),
        created_at: now.toISOString(),
      })
      .execute();
    // Expired sessions are swept as new ones open, so the table stays small without a timer.
    await this.options.db.deleteFrom('sessions').where('expires_at', '<', now.toISOString()).execute();
    return { account, csrfToken, sessionId, expiresAt };
  }

  private throttle(retryAfter: number, what: string): void {
    if (retryAfter > 0) {
      throw new SimcredError('SIMCRED_RATE_LIMITED', `too many ${what}: try again in ${retryAfter} s`, {
        retryAfter,
      });
    }
  }

  private now(): Date {
    return this.options.clock();
  }
}

/** Whether a request's CSRF header is the session's token (constant-time compare). */
export function csrfMatches(header: unknown, token: string): boolean {
  if (typeof header !== 'string') return false;
  const a = Buffer.from(header);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export type { AccountKind };
