//! The PostgreSQL schema, its embedded migrations, and how they are applied.
//!
//! # Tables (schema version 4)
//!
//! Every table lives in one PostgreSQL schema (`sluice` by default), so
//! several gateways, or a gateway and its tests, can share a database.
//! Text columns that are keys or sorted on use `COLLATE "C"`: byte order,
//! the same order as Rust's `str` and SQLite's `BINARY`, and cheaper to
//! compare.
//!
//! - `queue`: one row per event waiting for delivery, list-partitioned on
//!   `part` into `QUEUE_PARTS` tables `queue_p0…` that take inserts in
//!   turn and are truncated once drained (version 4, see `rotation`).
//!   `id` comes from the sequence `queue_ids`, so ids are never reused
//!   and grow with arrival; the primary key is `(id, part)` because a
//!   partitioned table's unique keys must contain the partition key, and
//!   it serves `id = ANY(…)` probes on its leading column. Indexed by
//!   `(pixel_id, due_ms, (id + 0))` (the lease scan, in lease order; see
//!   below for the `+ 0`) and `hold_until_ms` (partial,
//!   for `stats`). `user_keys` is deliberately *not* indexed: a GIN index
//!   on it cost 40 % of the queue's insert rate (measured), for the sake of
//!   `forget`, a rare operator action that scans the queue instead (the
//!   queue holds only undelivered events; the DLQ, which can grow, keeps
//!   its GIN index).
//!   **A lease writes only `leased_until_ms` and `lease_batch`, which no
//!   index covers**, so PostgreSQL applies it as a HOT update: a new tuple
//!   on the same page (the table keeps 30 % free with `fillfactor = 70`),
//!   no index insertions, and a WAL record that omits the unchanged payload
//!   at the tuple's end. Measured before this design (1000-row lease +
//!   ack, 700 B payloads): 1.5-2x the throughput of moving `due_ms` on lease
//!   (what the SQLite backend does, which forces index updates) and of a
//!   payload side table. A leasable row is therefore one with
//!   `due_ms <= now AND (leased_until_ms IS NULL OR leased_until_ms <= now)`;
//!   rows under lease stay at the head of the index and each lease steps
//!   over them, a cost bounded by the events in flight.
//! - `lease_batches`: one row per `lease` call (not per event): pixel,
//!   expiry, and how many of its events are still under that lease. Acks,
//!   retries, releases, dead-lettering and `forget` decrement it, so
//!   `stats` counts leased events by summing live batches instead of
//!   indexing `leased_until_ms` (which would forbid the HOT update above).
//!   A batch whose lease expired stops counting by itself; `purge` deletes it.
//! - `dead_letters`: the DLQ, with the reason; ids are a separate identity.
//! - `dedup_ledger`: one row per key `(pixel_id, event_name, event_id)`,
//!   the primary key. The unique index is what makes deduplication correct
//!   across nodes (see `writer`). `first_seen_ms` is indexed for `purge`.
//!   `sources` is the `SourceSet` bitmask.
//! - `pixel_counters`: per pixel *and shard*, the counters `stats` reads
//!   instead of `COUNT(*)`. Every write adds its deltas to one of
//!   `COUNTER_SHARDS` (16) rows of the pixel, chosen per call, so that nodes
//!   (and concurrent calls on one node) do not queue behind one row lock
//!   held until each other's commit. `stats` sums the shards.
//! - `store_meta`: `writable_probe`, bumped by `check_writable`.
//! - `consent_audit` (version 2): one row per consent decision, by time.
//! - Version 3 (dual tracking): `dedup_ledger` gains `order_id` (the first
//!   copy's order id, capped), `id_origin` (`EventIdOrigin` code) and
//!   `merged` (copies merged into the held first copy), for the dedup
//!   report, which scans the live ledger (no index added on the hot insert
//!   path). `queue_held_by_key` indexes held rows by dedup key for
//!   `merge_held`; it is partial (`hold_until_ms IS NOT NULL`), so only
//!   events enqueued under a merge hold pay for it, and a lease (which
//!   writes neither the key nor `hold_until_ms`) stays a HOT update.
//! - `schema_migrations`: one row per applied version.
//!
//! # Plans that survive bad statistics
//!
//! A queue table is often empty when (auto)vacuum or analyze looks at it,
//! so its statistics may claim zero rows while a backlog of millions
//! builds up. With such statistics PostgreSQL once served `id = ANY($1)`
//! by a full scan of an index that merely *contained* `id` as its last
//! column, and each ack took seconds. So no secondary index here contains
//! the primary key column as such: the lease index ends in the expression
//! `id + 0`, which orders the same but which the planner cannot match to
//! `id = …`, so `id` lookups can only use the primary key. (Dropping `id`
//! from that index instead made every lease sort all rows sharing a
//! `due_ms`, e.g. a whole DLQ replay: quadratic.) The statements also avoid
//! plan-dependent joins (see `sql`).
//!
//! # Vacuum
//!
//! The queue is insert-then-delete and the ledger insert-then-purge, so
//! dead tuples are the main threat to throughput. The queue's are
//! reclaimed wholesale by truncating drained partitions (`rotation`),
//! which needs no vacuum at all; vacuum remains the fallback for a
//! partition that stays current through a long backlog. The hot tables get
//! autovacuum thresholds in absolute rows (scale factor 0): the default
//! 20 % of a small live table would let a busy queue accumulate millions of
//! dead tuples between runs. Purges delete in bounded batches through the
//! `first_seen_ms` index, so no statement holds many row locks or bloats
//! one transaction.
//!
//! # Migrations
//!
//! [`crate::migrate`] (and `connect`) runs in one transaction under `pg_advisory_xact_lock` keyed
//! by the schema name, so nodes starting at the same time apply each
//! version exactly once (the others wait, then find nothing to do).
//! PostgreSQL DDL is transactional: a failed migration leaves no trace.
//! A database migrated by a newer build fails with `SchemaTooNew`.

use sluice_store::StoreError;
use tokio_postgres::Client;

use crate::error::pg_error;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 4;

/// How many partitions the queue rotates through (see the module header).
pub(crate) const QUEUE_PARTS: i16 = 4;

/// How many counter rows each pixel may have (see the module header).
pub(crate) const COUNTER_SHARDS: i16 = 16;

/// The embedded migrations, in order: `(version, description, SQL)`. The
/// SQL names the schema as `{s}`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "queue, ledger, dead letters, counters", V1),
    (2, "consent audit", V2),
    (
        3,
        "dual tracking: ledger order id, id origin and merges; held rows by key",
        V3,
    ),
    (
        4,
        "queue in rotating partitions, truncated when drained",
        V4,
    ),
];

const V1: &str = r#"
CREATE TABLE {s}.queue (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pixel_id         text COLLATE "C" NOT NULL,
    due_ms           bigint NOT NULL,
    hold_until_ms    bigint,
    enqueued_ms      bigint NOT NULL,
    event_time       bigint NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    leased_until_ms  bigint,
    lease_batch      bigint,
    source           text COLLATE "C" NOT NULL,
    event_name       text COLLATE "C" NOT NULL,
    event_id         text COLLATE "C" NOT NULL,
    test_event_code  text,
    last_error       text,
    user_keys        text[] NOT NULL DEFAULT '{}',
    payload          bytea NOT NULL
) WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 20000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 100000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 50000,
    autovacuum_vacuum_cost_delay = 1
);
CREATE INDEX queue_by_pixel_due ON {s}.queue (pixel_id, due_ms, (id + 0));
CREATE INDEX queue_by_hold ON {s}.queue (hold_until_ms) WHERE hold_until_ms IS NOT NULL;

CREATE SEQUENCE {s}.lease_batch_ids;
CREATE TABLE {s}.lease_batches (
    batch_id         bigint PRIMARY KEY,
    pixel_id         text COLLATE "C" NOT NULL,
    leased_until_ms  bigint NOT NULL,
    events           integer NOT NULL
) WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000
);
CREATE INDEX lease_batches_by_expiry ON {s}.lease_batches (leased_until_ms);

CREATE TABLE {s}.dead_letters (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pixel_id          text COLLATE "C" NOT NULL,
    event_name        text COLLATE "C" NOT NULL,
    event_id          text COLLATE "C" NOT NULL,
    event_time        bigint NOT NULL,
    source            text COLLATE "C" NOT NULL,
    test_event_code   text,
    enqueued_ms       bigint NOT NULL,
    attempts          integer NOT NULL,
    code              text COLLATE "C" NOT NULL,
    message           text NOT NULL,
    detail_json       text,
    dead_lettered_ms  bigint NOT NULL,
    user_keys         text[] NOT NULL DEFAULT '{}',
    payload           bytea NOT NULL
);
CREATE INDEX dead_letters_by_pixel ON {s}.dead_letters (pixel_id);
CREATE INDEX dead_letters_by_user_key ON {s}.dead_letters USING gin (user_keys);

CREATE TABLE {s}.dedup_ledger (
    pixel_id       text COLLATE "C" NOT NULL,
    event_name     text COLLATE "C" NOT NULL,
    event_id       text COLLATE "C" NOT NULL,
    first_seen_ms  bigint NOT NULL,
    last_seen_ms   bigint NOT NULL,
    first_source   text COLLATE "C" NOT NULL,
    sources        smallint NOT NULL,
    duplicates     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (pixel_id, event_name, event_id)
) WITH (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 50000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 200000,
    autovacuum_analyze_scale_factor = 0.02
);
CREATE INDEX dedup_ledger_by_first_seen ON {s}.dedup_ledger (first_seen_ms);

CREATE TABLE {s}.pixel_counters (
    pixel_id           text COLLATE "C" NOT NULL,
    shard              smallint NOT NULL,
    queued             bigint NOT NULL DEFAULT 0,
    dead_letters       bigint NOT NULL DEFAULT 0,
    delivered_total    bigint NOT NULL DEFAULT 0,
    duplicates_total   bigint NOT NULL DEFAULT 0,
    last_delivered_ms  bigint,
    PRIMARY KEY (pixel_id, shard)
) WITH (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000
);

CREATE TABLE {s}.store_meta (
    key    text COLLATE "C" PRIMARY KEY,
    value  bigint NOT NULL
);
INSERT INTO {s}.store_meta (key, value) VALUES ('writable_probe', 0);
"#;

/// Version 2: the consent audit, one row per consent decision; `record` is
/// the caller's JSON (codes and names, no personal data). Append-only, and
/// purged by age through the `time_ms` index.
const V2: &str = r#"
CREATE TABLE {s}.consent_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms     bigint NOT NULL,
    pixel_id    text COLLATE "C" NOT NULL,
    event_name  text COLLATE "C" NOT NULL,
    event_id    text COLLATE "C",
    source      text COLLATE "C" NOT NULL,
    outcome     text COLLATE "C" NOT NULL,
    rule_id     text COLLATE "C" NOT NULL,
    record      text NOT NULL
) WITH (
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 200000
);
CREATE INDEX consent_audit_by_time ON {s}.consent_audit (time_ms);
"#;

/// Version 3: dual tracking (see the module header). `ADD COLUMN` with a
/// constant default rewrites nothing.
const V3: &str = r#"
ALTER TABLE {s}.dedup_ledger
    ADD COLUMN order_id text COLLATE "C",
    ADD COLUMN id_origin smallint NOT NULL DEFAULT 0,
    ADD COLUMN merged bigint NOT NULL DEFAULT 0;
CREATE INDEX queue_held_by_key ON {s}.queue (pixel_id, event_name, event_id)
    WHERE hold_until_ms IS NOT NULL;
"#;

/// Version 4: the queue becomes `QUEUE_PARTS` list partitions on `part`
/// (see the module header). Rows of a version-3 queue move into partition
/// 0 with their ids, and the new id sequence starts past the old identity,
/// so no id is ever handed out twice. The primary key must contain the
/// partition key; `(id, part)` still serves every `id = ANY(…)` probe.
const V4: &str = r#"
ALTER TABLE {s}.queue RENAME TO queue_v3;
ALTER INDEX {s}.queue_pkey RENAME TO queue_v3_pkey;
ALTER INDEX {s}.queue_by_pixel_due RENAME TO queue_v3_by_pixel_due;
ALTER INDEX {s}.queue_by_hold RENAME TO queue_v3_by_hold;
ALTER INDEX {s}.queue_held_by_key RENAME TO queue_v3_held_by_key;
CREATE SEQUENCE {s}.queue_ids;
SELECT setval('{s}.queue_ids',
              nextval(pg_get_serial_sequence('{s}.queue_v3', 'id')::regclass));
CREATE TABLE {s}.queue (
    id               bigint NOT NULL DEFAULT nextval('{s}.queue_ids'),
    part             smallint NOT NULL,
    pixel_id         text COLLATE "C" NOT NULL,
    due_ms           bigint NOT NULL,
    hold_until_ms    bigint,
    enqueued_ms      bigint NOT NULL,
    event_time       bigint NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    leased_until_ms  bigint,
    lease_batch      bigint,
    source           text COLLATE "C" NOT NULL,
    event_name       text COLLATE "C" NOT NULL,
    event_id         text COLLATE "C" NOT NULL,
    test_event_code  text,
    last_error       text,
    user_keys        text[] NOT NULL DEFAULT '{}',
    payload          bytea NOT NULL,
    PRIMARY KEY (id, part)
) PARTITION BY LIST (part);
ALTER SEQUENCE {s}.queue_ids OWNED BY {s}.queue.id;
CREATE TABLE {s}.queue_p0 PARTITION OF {s}.queue FOR VALUES IN (0)
    WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 100000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 50000,
    autovacuum_vacuum_cost_delay = 1);
CREATE TABLE {s}.queue_p1 PARTITION OF {s}.queue FOR VALUES IN (1)
    WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 100000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 50000,
    autovacuum_vacuum_cost_delay = 1);
CREATE TABLE {s}.queue_p2 PARTITION OF {s}.queue FOR VALUES IN (2)
    WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 100000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 50000,
    autovacuum_vacuum_cost_delay = 1);
CREATE TABLE {s}.queue_p3 PARTITION OF {s}.queue FOR VALUES IN (3)
    WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 100000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 50000,
    autovacuum_vacuum_cost_delay = 1);
CREATE INDEX queue_by_pixel_due ON {s}.queue (pixel_id, due_ms, (id + 0));
CREATE INDEX queue_by_hold ON {s}.queue (hold_until_ms) WHERE hold_until_ms IS NOT NULL;
CREATE INDEX queue_held_by_key ON {s}.queue (pixel_id, event_name, event_id)
    WHERE hold_until_ms IS NOT NULL;
INSERT INTO {s}.queue
    (id, part, pixel_id, due_ms, hold_until_ms, enqueued_ms, event_time, attempts,
     leased_until_ms, lease_batch, source, event_name, event_id, test_event_code, last_error,
     user_keys, payload)
SELECT id, 0, pixel_id, due_ms, hold_until_ms, enqueued_ms, event_time, attempts,
       leased_until_ms, lease_batch, source, event_name, event_id, test_event_code, last_error,
       user_keys, payload
FROM {s}.queue_v3;
DROP TABLE {s}.queue_v3;
INSERT INTO {s}.store_meta (key, value) VALUES ('queue_part', 0), ('queue_part_since_ms', 0);
"#;

/// What [`crate::migrate`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema version before (0 for a new schema).
    pub from: i64,
    /// The schema version now ([`SCHEMA_VERSION`]).
    pub to: i64,
}

/// Checks that `schema` is a plain lowercase identifier, so that it can be
/// spliced into SQL text without quoting (PostgreSQL has no bind parameters
/// for identifiers).
pub(crate) fn validate_schema_name(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let valid = schema.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with("pg_");
    if valid {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "schema name must match [a-z_][a-z0-9_]{0,62} and not start with pg_",
        ))
    }
}

/// Substitutes the schema into SQL written with `{s}`.
pub(crate) fn with_schema(sql: &str, schema: &str) -> String {
    sql.replace("{s}", schema)
}

/// The advisory-lock key of a schema's migrations: a stable 64-bit FNV-1a
/// hash of the schema name, so that migrations of different schemas in one
/// database do not wait for each other.
fn migration_lock_key(schema: &str) -> i64 {
    lock_key("sluice-migrate:", schema)
}

/// A stable advisory-lock key for `purpose` in `schema` (FNV-1a).
pub(crate) fn lock_key(purpose: &str, schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in purpose.bytes().chain(schema.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Brings `schema` to [`SCHEMA_VERSION`], creating it if needed.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
) -> Result<MigrationReport, StoreError> {
    migrate_to(client, schema, SCHEMA_VERSION).await
}

/// Brings `schema` to version `target` (at most [`SCHEMA_VERSION`]); tests
/// use an older target to check the migrations that follow it.
pub(crate) async fn migrate_to(
    client: &mut Client,
    schema: &str,
    target: i64,
) -> Result<MigrationReport, StoreError> {
    validate_schema_name(schema)?;
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&migration_lock_key(schema)],
    )
    .await
    .map_err(pg_error)?;

    let tables: i64 = tx
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = $1",
            &[&schema],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    let has_versions: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
                            WHERE schemaname = $1 AND tablename = 'schema_migrations')",
            &[&schema],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    if tables > 0 && !has_versions {
        return Err(StoreError::Corrupt {
            message: format!("schema {schema} has tables but no sluice schema_migrations"),
        });
    }

    tx.batch_execute(&with_schema(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
             version      bigint PRIMARY KEY,
             description  text NOT NULL,
             applied_at   timestamptz NOT NULL DEFAULT now()
         );",
        schema,
    ))
    .await
    .map_err(pg_error)?;
    let from = current_version(&tx, schema).await?;
    if from > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: from,
            supported: SCHEMA_VERSION,
        });
    }
    let record = with_schema(
        "INSERT INTO {s}.schema_migrations (version, description) VALUES ($1, $2)",
        schema,
    );
    for (version, description, sql) in MIGRATIONS {
        if *version <= from || *version > target {
            continue;
        }
        tx.batch_execute(&with_schema(sql, schema))
            .await
            .map_err(pg_error)?;
        tx.execute(&record, &[version, description])
            .await
            .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)?;
    let to = from.max(target.min(SCHEMA_VERSION));
    if from < to {
        tracing::info!(schema, from, to, "migrated postgres store schema");
    }
    Ok(MigrationReport { from, to })
}

/// Fails unless `schema` is at exactly [`SCHEMA_VERSION`] (for nodes told
/// not to migrate: the operator runs `sluice migrate` first).
pub(crate) async fn check_version(client: &Client, schema: &str) -> Result<(), StoreError> {
    let found = current_version(client, schema).await?;
    match found.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        }),
        std::cmp::Ordering::Less => Err(StoreError::Backend {
            message: format!(
                "schema {schema} is at version {found}, this build needs {SCHEMA_VERSION}: \
                 run `sluice migrate`"
            ),
        }),
    }
}

async fn current_version(
    client: &impl tokio_postgres::GenericClient,
    schema: &str,
) -> Result<i64, StoreError> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
                            WHERE schemaname = $1 AND tablename = 'schema_migrations')",
            &[&schema],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let version: Option<i64> = client
        .query_one(
            &with_schema("SELECT max(version) FROM {s}.schema_migrations", schema),
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    Ok(version.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["sluice", "_x", "sluice_test_12ab", &"a".repeat(63)] {
            assert!(validate_schema_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Sluice",
            "1abc",
            "a-b",
            "a;drop",
            "pg_temp",
            "sch\"x",
            &"a".repeat(64),
        ] {
            assert!(validate_schema_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn migration_lock_keys_differ_per_schema_and_are_stable() {
        assert_eq!(migration_lock_key("sluice"), migration_lock_key("sluice"));
        assert_ne!(migration_lock_key("sluice"), migration_lock_key("sluice2"));
    }

    #[test]
    fn migrations_are_ordered_and_end_at_the_current_version() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(versions.last(), Some(&SCHEMA_VERSION));
    }
}
