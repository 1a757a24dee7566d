import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import {
  Kysely,
  sql,
  Migrator,
  PostgresDialect,
  SqliteAdapter,
  SqliteDialect,
  type ColumnDefinitionBuilder,
  type Migration,
  type MigrationProvider,
} from 'kysely';
import { SimcredError } from '../errors/index.js';
import { ensureDir } from './files.js';

/** Where a role keeps its state: an embedded SQLite file (default) or a PostgreSQL database. */
export type DatabaseConfig =
  { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string; schema?: string };

/** Versioned migrations of one store, applied in name order (name them 0001_…, 0002_…). */
export type Migrations = Record<string, Migration>;

class StaticMigrations implements MigrationProvider {
  constructor(private readonly migrations: Migrations) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return this.migrations;
  }
}

/**
 * Opens a role's store and brings its schema up to date. Role code sees only Kysely<DB>,
 * so the PostgreSQL dialect drops in without touching it.
 *
 * @example
 *   const db = await openDatabase<CaTables>({ kind: 'sqlite', file: 'data/pki/ca.db' }, caMigrations);
 */
export async function openDatabase<DB>(config: DatabaseConfig, migrations: Migrations): Promise<Kysely<DB>> {
  const db = new Kysely<DB>({ dialect: createDialect(config) });
  if (config.kind === 'postgres' && config.schema) {
    // Each role its own schema on a shared server; the pool's search_path points there.
    await sql`create schema if not exists ${sql.id(config.schema)}`.execute(db);
  }
  const migrator = new Migrator({
    db,
    provider: new StaticMigrations(migrations),
    // Kysely looks for its bookkeeping tables in every schema unless told which: another role's
    // schema on the same server would make it skip creating this role's own.
    ...(config.kind === 'postgres' && config.schema ? { migrationTableSchema: config.schema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    await db.destroy();
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new SimcredError('SIMCRED_IO', `database migration ${failed} failed: ${describe(error)}`, {
      cause: error,
    });
  }
  return db;
}

/** How long a new PostgreSQL connection may take before the request fails as an outage. */
const CONNECT_TIMEOUT_MS = 5_000;

function createDialect(config: DatabaseConfig) {
  if (config.kind === 'sqlite') {
    if (config.file !== ':memory:') ensureDir(dirname(config.file));
    let database: SQLite.Database;
    try {
      database = new SQLite(config.file);
    } catch (err) {
      throw new SimcredError('SIMCRED_IO', `cannot open database ${config.file}: ${describe(err)}`, {
        cause: err,
      });
    }
    // WAL lets readers (the OCSP responder, the CLI) see writes without blocking the writer.
    database.pragma('journal_mode = WAL');
    database.pragma('synchronous = NORMAL');
    database.pragma('busy_timeout = 5000');
    database.pragma('foreign_keys = ON');
    cachePreparedStatements(database);
    return new SqliteDialect({ database });
  }
  const pool = new pg.Pool({
    connectionString: config.url,
    max: 10,
    // A server that does not answer (a partition, not a refusal) fails the request as a 503 within
    // seconds instead of holding it for the kernel's connect timeout; keepalive finds dead idle links.
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    // Set at connection start, so no query can run before it (schema names are [a-z0-9_]).
    ...(config.schema ? { options: `-c search_path=${config.schema.replace(/[^A-Za-z0-9_]/g, '')}` } : {}),
  });
  // A connection's error when no query waits on it (the server restarted: 57P01, "Connection
  // terminated unexpectedly") is emitted as an 'error' event, and an unheard one ends the process.
  // The pool hears its idle clients' ('error' below); a client Kysely holds between the statements
  // of a transaction is heard here. Its next statement then fails (a retryable 503, isDatabaseOutage),
  // and the pool drops it on release (it is no longer queryable), so the next query connects afresh.
  pool.on('connect', (client) => client.on('error', () => undefined));
  pool.on('error', () => undefined);
  return new PostgresDialect({ pool });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * An auto-numbered primary key in either dialect (SQLite AUTOINCREMENT, PostgreSQL identity),
 * for migrations: `.addColumn('id', 'integer', (c) => autoIncrementKey(db, c))`.
 */
export function autoIncrementKey(
  db: Kysely<unknown>,
  column: ColumnDefinitionBuilder,
): ColumnDefinitionBuilder {
  return db.getExecutor().adapter instanceof SqliteAdapter
    ? column.primaryKey().autoIncrement()
    : column.primaryKey().generatedByDefaultAsIdentity();
}

/** Most distinct SQL texts whose prepared statements are kept per SQLite connection. */
const STATEMENT_CACHE_SIZE = 256;

/**
 * Kysely prepares every query afresh; a role runs the same few dozen SQL texts over and over, so
 * keeping their prepared statements saves a parse and plan per query (better-sqlite3 statements are
 * reusable; kysely runs them with all()/run(), never two iterations at once).
 */
function cachePreparedStatements(database: SQLite.Database): void {
  const prepare = database.prepare.bind(database);
  const statements = new Map<string, SQLite.Statement>();
  database.prepare = ((sql: string) => {
    let statement = statements.get(sql);
    if (!statement) {
      // Every transaction here writes. A deferred BEGIN would take the write lock only at its first
      // write, and a second process (simcred up --workers) that committed in between makes that
      // upgrade fail at once with SQLITE_BUSY; IMMEDIATE takes it at BEGIN, waiting in busy_timeout.
      statement = prepare(sql === 'begin' ? 'begin immediate' : sql);
      if (statements.size >= STATEMENT_CACHE_SIZE) statements.delete(statements.keys().next().value!);
      statements.set(sql, statement);
    }
    return statement;
  }) as SQLite.Database['prepare'];
}

/** SQLite result codes that mean "the database is unavailable now", not "this request is wrong". */
const SQLITE_OUTAGES = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL|NOMEM)/;

/**
 * PostgreSQL SQLSTATE classes that mean the server is away or cannot serve now: 08 connection
 * exception, 53 insufficient resources (too many connections, disk full), 57P operator intervention
 * (57P01 admin_shutdown on a restart, 57P02 crash_shutdown, 57P03 cannot_connect_now while it starts
 * or recovers), and 40001/40P01 once transact's attempts (src/storage/transactions.ts) are spent (still a race lost, never
 * a wrong request).
 */
const POSTGRES_OUTAGES = /^(08|53|57P|40001$|40P01$)/;

/** Socket errors of the connection to the database server. */
const SOCKET_OUTAGES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/**
 * node-postgres's own errors, which carry no code: the server went away during a query ("Connection
 * terminated unexpectedly"), a client that lost its connection being used again (by Kysely's
 * ROLLBACK after the failure), and the pool's connect timeout.
 */
const DRIVER_OUTAGES =
  /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Query read timeout)/;

/**
 * True when a driver error means the database is down or overloaded (DESIGN §4.6: a retryable 503,
 * SIMCRED_DEPENDENCY_UNAVAILABLE), as opposed to a bug such as a constraint violation. The one place
 * that knows both drivers' outage errors; src/http/server.ts maps them to the answer, background
 * loops log them as a wait rather than a failure.
 */
export function isDatabaseOutage(err: unknown): boolean {
  if (err instanceof AggregateError) return err.errors.some(isDatabaseOutage);
  const code = String((err as { code?: unknown } | undefined)?.code ?? '');
  if (SQLITE_OUTAGES.test(code) || POSTGRES_OUTAGES.test(code) || SOCKET_OUTAGES.has(code)) return true;
  return err instanceof Error && code === '' && DRIVER_OUTAGES.test(err.message);
}
