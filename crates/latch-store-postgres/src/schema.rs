//! Versioned schema migrations, run at start under a session advisory lock so that two
//! hosts never migrate at once.

use std::time::Duration;

use crate::{PgError, deadline};

/// The advisory lock key of migrations ("latchmig").
const MIGRATION_LOCK: i64 = 0x6c61_7463_686d_6967;

/// Each migration, in order; version N is `MIGRATIONS[N - 1]`.
const MIGRATIONS: &[&str] = &[
    // 1: the log and the checkpoints.
    "CREATE TABLE latch_log (
         seq bigint PRIMARY KEY CHECK (seq > 0),
         origin text NOT NULL,
         payload bytea NOT NULL,
         appended_at timestamptz NOT NULL DEFAULT now()
     );
     CREATE TABLE latch_checkpoint (
         seq bigint PRIMARY KEY CHECK (seq >= 0),
         origin text NOT NULL,
         auth bytea,
         provider bytea,
         totp bytea,
         latch_totp bytea,
         written_at timestamptz NOT NULL DEFAULT now()
     );",
    // 2: checkpoints stored out of line but uncompressed: a host's start-up reads the
    // whole checkpoint, and decompressing tens of megabytes cost more than reading them.
    "ALTER TABLE latch_checkpoint
         ALTER COLUMN auth SET STORAGE EXTERNAL,
         ALTER COLUMN provider SET STORAGE EXTERNAL,
         ALTER COLUMN totp SET STORAGE EXTERNAL,
         ALTER COLUMN latch_totp SET STORAGE EXTERNAL;",
];

/// The schema version this build writes.
pub(crate) const VERSION: i32 = 2;

/// Brings the schema to [`VERSION`].
pub(crate) async fn migrate(
    client: &mut tokio_postgres::Client,
    limit: Duration,
) -> Result<(), PgError> {
    // Another host may hold the lock while it migrates: wait for it, a while.
    deadline(
        limit * 10,
        client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]),
    )
    .await??;
    let result = run(client, limit).await;
    let unlock = deadline(
        limit,
        client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]),
    )
    .await;
    result?;
    unlock??;
    Ok(())
}

async fn run(client: &mut tokio_postgres::Client, limit: Duration) -> Result<(), PgError> {
    deadline(
        limit,
        client.batch_execute("CREATE TABLE IF NOT EXISTS latch_schema (version integer NOT NULL);"),
    )
    .await??;
    let row = deadline(
        limit,
        client.query_opt("SELECT max(version) FROM latch_schema", &[]),
    )
    .await??;
    let current: i32 = row.and_then(|r| r.get::<_, Option<i32>>(0)).unwrap_or(0);
    if current > VERSION {
        return Err(PgError::SchemaTooNew {
            found: current,
            known: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let tx = deadline(limit, client.transaction()).await??;
        deadline(limit, tx.batch_execute(sql)).await??;
        deadline(
            limit,
            tx.execute(
                "INSERT INTO latch_schema (version) VALUES ($1)",
                &[&version],
            ),
        )
        .await??;
        deadline(limit, tx.commit()).await??;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}
