/**
 * The embedded driver's database layout and its migrations, versioned with `PRAGMA user_version`.
 * Every table is STRICT (a wrong type is an error, not a silent conversion).
 *
 * `revocation_log` is what lets other processes on the same file follow changes exactly: every
 * revocation or partner status change appends its event in the same transaction, and a process
 * that sees `PRAGMA data_version` move reads the events after the last one it applied — with the
 * actor of an unrevoke, in commit order, at the cost of the new rows only. `meta.log_floor` is the
 * highest sequence number pruned from the log: a process behind it reloads the tables instead.
 */
import type { DatabaseSync } from 'node:sqlite';

/** The layout this code reads and writes. */
export const SCHEMA_VERSION = 1;

const MIGRATIONS: readonly string[] = [
  // 0 → 1
  `
  CREATE TABLE revocations (
    kind TEXT NOT NULL CHECK (kind IN ('token', 'credential', 'certificate')),
    key TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (kind, key)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX revocations_expiry ON revocations (expires_at) WHERE expires_at IS NOT NULL;

  CREATE TABLE partner_status (
    partner_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'offboarded')),
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    at INTEGER NOT NULL
  ) STRICT;

  -- AUTOINCREMENT: a sequence number is never reused, even after the newest rows are pruned.
  CREATE TABLE revocation_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    event TEXT NOT NULL
  ) STRICT;

  CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) STRICT;
  INSERT INTO meta (name, value) VALUES ('log_floor', 0);

  CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at INTEGER
  ) STRICT;
  CREATE INDEX kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;

  CREATE TABLE gcra (
    key TEXT PRIMARY KEY,
    tat REAL NOT NULL
  ) STRICT;
  CREATE INDEX gcra_tat ON gcra (tat);

  CREATE TABLE quota (
    key TEXT NOT NULL,
    window_end INTEGER NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (key, window_end)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX quota_window ON quota (window_end);
  `,
];

/**
 * Brings the database to SCHEMA_VERSION inside one `BEGIN IMMEDIATE` transaction, so processes
 * opening a new file at the same moment migrate it once. A file written by a newer version is
 * refused rather than guessed at (fail closed).
 */
export function migrate(db: DatabaseSync, path: string): void {
  db.exec('BEGIN IMMEDIATE');
  try {
    const row = db.prepare('PRAGMA user_version').get() as { user_version: number };
    const version = row.user_version;
    if (version > SCHEMA_VERSION) {
      throw new Error(`state database ${path} has schema version ${version}; this Portcullis reads up to ${SCHEMA_VERSION} (was it written by a newer version?)`);
    }
    for (let next = version; next < SCHEMA_VERSION; next++) db.exec(MIGRATIONS[next]!);
    // PRAGMA takes no bound parameters; the value is our own integer constant.
    if (version !== SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec('COMMIT');
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}
