//! Every statement the store runs, with the schema spliced in once at
//! connect time (identifiers cannot be bind parameters). Each is prepared
//! once per pooled connection (`prepare_cached`).
//!
//! Statements that change several tables do it in one statement with
//! data-modifying CTEs: one round trip, one snapshot, and (outside the
//! group-commit writer) one implicit transaction, so a crash can never
//! leave a deleted row without its counter update.
//!
//! Rows of a CTE are applied to a table with `id = ANY (ARRAY(SELECT id
//! FROM cte))`, never with a join: the join's plan depends on row
//! estimates, and on a bloated queue whose statistics said "empty" (right
//! after a vacuum, with autovacuum's ANALYZE off) PostgreSQL chose a
//! nested loop that walked the whole queue for every lease, which stalled
//! delivery in the soak test. `= ANY(array)` is always a primary-key probe.
//!
//! Counter updates (`cnt` CTEs) always go to one shard row per pixel
//! (`$shard`), and insert pixels in sorted order, so two statements lock
//! counter rows in the same order.

use crate::schema::with_schema;

/// Decrements the lease batches of rows leaving the leased state; `gone`
/// is a CTE with `lease_batch` and `leased_until_ms` as they were.
const LEASE_RELEASE: &str = "
    lb AS (
        UPDATE {s}.lease_batches AS b SET events = b.events - x.n
        FROM (SELECT lease_batch, count(*)::int AS n FROM gone
              WHERE lease_batch IS NOT NULL AND leased_until_ms IS NOT NULL
              GROUP BY lease_batch) AS x
        WHERE b.batch_id = x.lease_batch)";

/// Adds per-pixel deltas from the CTE `delta(pixel_id, queued, dead_letters,
/// delivered, last_delivered_ms)` to the counter shard `$shard`.
const COUNTERS_FROM_DELTA: &str = "
    cnt AS (
        INSERT INTO {s}.pixel_counters AS c
            (pixel_id, shard, queued, dead_letters, delivered_total, duplicates_total, last_delivered_ms)
        SELECT pixel_id, $SHARD::int2, sum(queued)::int8, sum(dead_letters)::int8,
               sum(delivered)::int8, 0, max(last_delivered_ms)
        FROM delta GROUP BY pixel_id ORDER BY pixel_id
        ON CONFLICT (pixel_id, shard) DO UPDATE SET
            queued = c.queued + excluded.queued,
            dead_letters = c.dead_letters + excluded.dead_letters,
            delivered_total = c.delivered_total + excluded.delivered_total,
            last_delivered_ms = GREATEST(c.last_delivered_ms, excluded.last_delivered_ms))";

/// Takes the dead letters of the CTE `gone(pixel_id)` off the per-pixel
/// counts (shard `$SHARD`) and answers how many there were.
const DEAD_LETTERS_GONE: &str = "
    cnt AS (
        INSERT INTO {s}.pixel_counters AS c (pixel_id, shard, dead_letters)
        SELECT pixel_id, $SHARD::int2, -count(*) FROM gone
        GROUP BY pixel_id ORDER BY pixel_id
        ON CONFLICT (pixel_id, shard) DO UPDATE SET
            dead_letters = c.dead_letters + excluded.dead_letters)
    SELECT count(*) FROM gone";

/// One round of a group commit, in one statement (see `writer`).
///
/// - `$1-$7`, one element per distinct dedup key, sorted (the lock order):
///   pixel, name, id, now, first source, source bits, extra copies in the
///   round; `$8` the dedup window.
/// - `$9-$20`, one element per candidate event (first copy of a key, or an
///   event without id), in arrival order: the key's position in `$1…`
///   (0 = no key), pixel, due, hold, enqueued, event_time, source, name, id,
///   test code, user keys (joined with U+001F, which keys may not contain),
///   payload.
/// - `$21-$22` every pixel of the round with its event count; `$23` the
///   counter shard.
/// - `$24-$31`, one element per consent-audit row of the round's requests
///   (`enqueue_with_audit`'s audit rows ride the same statement as its
///   events, so they commit together): time, pixel, name, id,
///   source, outcome, rule, record.
/// - `$32-$33`, one element per key like `$1-$7`: the order id (NULL if no
///   copy carried one) and the first copy's `EventIdOrigin` code. A live
///   entry keeps its order id and only fills it in when it had none.
/// - `$34` the queue partition to insert into (the node's current one, see
///   `schema`).
///
/// A key's `ON CONFLICT DO UPDATE` either restarts an expired entry (the
/// round's copy wins) or records the round's copies as duplicates of the
/// live entry. Which one happened is read from the returned `duplicates`:
/// a win stores exactly the round's extra copies (`copies - 1`), a
/// duplicate adds all of them to the count already there (`>= copies`).
///
/// Returns rows `(0, key position, won, first_source, first_seen_ms)` for
/// every key and `(1, queue id, NULL, NULL, NULL)` for every queued event.
const ENQUEUE_ROUND: &str = "
    WITH k AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[],
                             $5::text[], $6::int2[], $7::int8[], $32::text[], $33::int2[])
            WITH ORDINALITY AS k(pixel_id, event_name, event_id, now_ms,
                                 first_source, sources, duplicates, order_id, id_origin, ord)),
    claimed AS (
        INSERT INTO {s}.dedup_ledger AS l
            (pixel_id, event_name, event_id, first_seen_ms, last_seen_ms,
             first_source, sources, duplicates, order_id, id_origin, merged)
        SELECT pixel_id, event_name, event_id, now_ms, now_ms, first_source, sources, duplicates,
               order_id, id_origin, 0
        FROM k ORDER BY ord
        ON CONFLICT (pixel_id, event_name, event_id) DO UPDATE SET
            order_id = CASE WHEN l.first_seen_ms <= excluded.first_seen_ms - $8::int8
                            THEN excluded.order_id ELSE COALESCE(l.order_id, excluded.order_id) END,
            id_origin = CASE WHEN l.first_seen_ms <= excluded.first_seen_ms - $8::int8
                             THEN excluded.id_origin ELSE l.id_origin END,
            merged = CASE WHEN l.first_seen_ms <= excluded.first_seen_ms - $8::int8
                          THEN 0 ELSE l.merged END,
            first_seen_ms = CASE WHEN l.first_seen_ms <= excluded.first_seen_ms - $8::int8
                                 THEN excluded.first_seen_ms ELSE l.first_seen_ms END,
            first_source = CASE WHEN l.first_seen_ms <= excluded.first_seen_ms - $8::int8
                                THEN excluded.first_source ELSE l.first_source END,
            sources = CASE WHEN l.first_seen_ms <= excluded.first_seen_ms - $8::int8
                           THEN excluded.sources ELSE l.sources | excluded.sources END,
            duplicates = CASE WHEN l.first_seen_ms <= excluded.first_seen_ms - $8::int8
                              THEN excluded.duplicates
                              ELSE l.duplicates + excluded.duplicates + 1 END,
            last_seen_ms = CASE WHEN l.first_seen_ms <= excluded.first_seen_ms - $8::int8
                                THEN excluded.last_seen_ms
                                ELSE GREATEST(l.last_seen_ms, excluded.last_seen_ms) END
        RETURNING pixel_id, event_name, event_id, first_source, first_seen_ms, duplicates),
    outcome AS (
        SELECT k.ord, c.duplicates = k.duplicates AS won, c.first_source, c.first_seen_ms
        FROM claimed AS c
        JOIN k ON k.pixel_id = c.pixel_id AND k.event_name = c.event_name
              AND k.event_id = c.event_id),
    e AS (
        SELECT * FROM unnest($9::int8[], $10::text[], $11::int8[], $12::int8[], $13::int8[],
                             $14::int8[], $15::text[], $16::text[], $17::text[], $18::text[],
                             $19::text[], $20::bytea[])
            WITH ORDINALITY AS e(key_ord, pixel_id, due_ms, hold_until_ms, enqueued_ms,
                                 event_time, source, event_name, event_id, test_event_code,
                                 user_keys, payload, ord)),
    inserted AS (
        INSERT INTO {s}.queue
            (part, pixel_id, due_ms, hold_until_ms, enqueued_ms, event_time, source,
             event_name, event_id, test_event_code, user_keys, payload)
        SELECT $34::int2, e.pixel_id, e.due_ms, e.hold_until_ms, e.enqueued_ms, e.event_time, e.source,
               e.event_name, e.event_id, e.test_event_code,
               string_to_array(e.user_keys, chr(31)), e.payload
        FROM e
        WHERE e.key_ord = 0
           OR EXISTS (SELECT 1 FROM outcome AS o WHERE o.ord = e.key_ord AND o.won)
        ORDER BY e.ord
        RETURNING id, pixel_id),
    cnt AS (
        INSERT INTO {s}.pixel_counters AS c
            (pixel_id, shard, queued, dead_letters, delivered_total, duplicates_total)
        SELECT t.pixel_id, $23::int2, COALESCE(q.n, 0), 0, 0, t.total - COALESCE(q.n, 0)
        FROM unnest($21::text[], $22::int8[]) AS t(pixel_id, total)
        LEFT JOIN (SELECT pixel_id, count(*) AS n FROM inserted GROUP BY pixel_id) AS q
               ON q.pixel_id = t.pixel_id
        ORDER BY t.pixel_id
        ON CONFLICT (pixel_id, shard) DO UPDATE SET
            queued = c.queued + excluded.queued,
            duplicates_total = c.duplicates_total + excluded.duplicates_total),
    audit AS (
        INSERT INTO {s}.consent_audit
            (time_ms, pixel_id, event_name, event_id, source, outcome, rule_id, record)
        SELECT a.time_ms, a.pixel_id, a.event_name, a.event_id, a.source, a.outcome, a.rule_id,
               a.record
        FROM unnest($24::int8[], $25::text[], $26::text[], $27::text[], $28::text[],
                    $29::text[], $30::text[], $31::text[])
             WITH ORDINALITY AS a(time_ms, pixel_id, event_name, event_id, source, outcome,
                                  rule_id, record, ord)
        ORDER BY a.ord)
    SELECT 0 AS kind, ord AS n, won, first_source, first_seen_ms FROM outcome
    UNION ALL
    SELECT 1, id, NULL, NULL, NULL FROM inserted";

/// The statements, for one schema.
pub(crate) struct Sql {
    pub(crate) enqueue_round: String,
    pub(crate) lease: String,
    pub(crate) ack: String,
    pub(crate) reschedule: String,
    pub(crate) dead_letter: String,
    pub(crate) dlq_replay: String,
    pub(crate) dlq_delete: String,
    pub(crate) dlq_get: String,
    pub(crate) dlq_list_base: String,
    pub(crate) dedup_lookup: String,
    pub(crate) report_rows: String,
    pub(crate) report_order_conflicts: String,
    pub(crate) report_name_conflicts: String,
    pub(crate) held_copy: String,
    pub(crate) merge_queue: String,
    pub(crate) merge_ledger: String,
    pub(crate) due_pixels: String,
    pub(crate) stats: String,
    pub(crate) purge_ledger: String,
    pub(crate) purge_lease_batches: String,
    pub(crate) forget: String,
    pub(crate) probe: String,
    pub(crate) audit_list_base: String,
    pub(crate) purge_audit: String,
    pub(crate) purge_dead_letters: String,
}

/// Columns of a dead letter, in the order `dead_letter_from_row` reads them.
pub(crate) const DEAD_LETTER_COLUMNS: &str = "id, pixel_id, event_name, event_id, event_time, \
     source, payload, attempts, test_event_code, enqueued_ms, code, message, detail_json, \
     dead_lettered_ms";

impl Sql {
    pub(crate) fn new(schema: &str) -> Self {
        let s = |sql: &str| with_schema(sql, schema);
        let with_shard = |sql: &str, shard_param: &str| s(&sql.replace("$SHARD", shard_param));
        Sql {
            enqueue_round: s(ENQUEUE_ROUND),
            // $1 pixel, $2 now, $3 limit, $4 leased_until.
            lease: s("
                WITH batch AS (SELECT nextval('{s}.lease_batch_ids') AS id),
                claimed AS (
                    SELECT id FROM {s}.queue
                    WHERE pixel_id = $1 AND due_ms <= $2
                      AND (leased_until_ms IS NULL OR leased_until_ms <= $2)
                    ORDER BY due_ms, id + 0
                    LIMIT $3
                    FOR UPDATE SKIP LOCKED),
                leased AS (
                    UPDATE {s}.queue AS q
                    SET leased_until_ms = $4, lease_batch = (SELECT id FROM batch)
                    WHERE q.id = ANY (ARRAY(SELECT id FROM claimed))
                    RETURNING q.id, q.pixel_id, q.event_name, q.event_id, q.event_time, q.source,
                              q.payload, q.attempts, q.last_error, q.test_event_code,
                              q.enqueued_ms, q.due_ms),
                recorded AS (
                    INSERT INTO {s}.lease_batches (batch_id, pixel_id, leased_until_ms, events)
                    SELECT (SELECT id FROM batch), $1, $4, count(*) FROM leased
                    HAVING count(*) > 0)
                SELECT id, pixel_id, event_name, event_id, event_time, source, payload, attempts,
                       last_error, test_event_code, enqueued_ms
                FROM leased ORDER BY due_ms, id"),
            // $1 ids, $2 now, $3 shard.
            ack: with_shard(
                &format!(
                    "WITH gone AS (
                        DELETE FROM {{s}}.queue WHERE id = ANY($1::int8[])
                        RETURNING pixel_id, lease_batch, leased_until_ms),
                    {LEASE_RELEASE},
                    delta AS (
                        SELECT pixel_id, -1 AS queued, 0 AS dead_letters, 1 AS delivered,
                               $2::int8 AS last_delivered_ms
                        FROM gone),
                    {COUNTERS_FROM_DELTA}
                    SELECT count(*) FROM gone"
                ),
                "$3",
            ),
            // $1 ids, $2 due_at, $3 attempt increment (0/1), $4 last_error.
            reschedule: s(&format!(
                "WITH gone AS (
                    SELECT id, lease_batch, leased_until_ms FROM {{s}}.queue
                    WHERE id = ANY($1::int8[]) ORDER BY id FOR UPDATE),
                updated AS (
                    UPDATE {{s}}.queue AS q SET
                        due_ms = GREATEST($2::int8, COALESCE(q.hold_until_ms, $2::int8)),
                        leased_until_ms = NULL,
                        lease_batch = NULL,
                        attempts = q.attempts + $3::int4,
                        last_error = CASE WHEN $3::int4 = 1 THEN $4::text ELSE q.last_error END
                    WHERE q.id = ANY (ARRAY(SELECT id FROM gone))
                    RETURNING 1),
                {LEASE_RELEASE}
                SELECT count(*) FROM updated"
            )),
            // $1 ids, $2 code, $3 message, $4 detail, $5 now, $6 shard.
            dead_letter: with_shard(
                &format!(
                    "WITH gone AS (
                        DELETE FROM {{s}}.queue WHERE id = ANY($1::int8[]) RETURNING *),
                    moved AS (
                        INSERT INTO {{s}}.dead_letters
                            (pixel_id, event_name, event_id, event_time, source, test_event_code,
                             enqueued_ms, attempts, code, message, detail_json, dead_lettered_ms,
                             user_keys, payload)
                        SELECT pixel_id, event_name, event_id, event_time, source, test_event_code,
                               enqueued_ms, attempts + 1, $2, $3, $4, $5, user_keys, payload
                        FROM gone ORDER BY array_position($1::int8[], gone.id)
                        RETURNING id),
                    {LEASE_RELEASE},
                    delta AS (
                        SELECT pixel_id, -1 AS queued, 1 AS dead_letters, 0 AS delivered,
                               NULL::int8 AS last_delivered_ms
                        FROM gone),
                    {COUNTERS_FROM_DELTA}
                    SELECT id FROM moved"
                ),
                "$6",
            ),
            // $1 ids, $2 test_event_code, $3 now, $4 shard, $5 queue partition.
            dlq_replay: with_shard(
                "WITH gone AS (
                    DELETE FROM {s}.dead_letters WHERE id = ANY($1::int8[]) RETURNING *),
                back AS (
                    INSERT INTO {s}.queue
                        (part, pixel_id, due_ms, enqueued_ms, event_time, source, event_name,
                         event_id, test_event_code, user_keys, payload)
                    SELECT $5::int2, pixel_id, $3, enqueued_ms, event_time, source, event_name, event_id,
                           COALESCE($2::text, test_event_code), user_keys, payload
                    FROM gone ORDER BY gone.id
                    RETURNING 1),
                delta AS (
                    SELECT pixel_id, 1 AS queued, -1 AS dead_letters, 0 AS delivered,
                           NULL::int8 AS last_delivered_ms
                    FROM gone),
                cnt AS (
                    INSERT INTO {s}.pixel_counters AS c
                        (pixel_id, shard, queued, dead_letters, delivered_total, duplicates_total)
                    SELECT pixel_id, $SHARD::int2, sum(queued)::int8, sum(dead_letters)::int8, 0, 0
                    FROM delta GROUP BY pixel_id ORDER BY pixel_id
                    ON CONFLICT (pixel_id, shard) DO UPDATE SET
                        queued = c.queued + excluded.queued,
                        dead_letters = c.dead_letters + excluded.dead_letters)
                SELECT count(*) FROM back",
                "$4",
            ),
            // $1 ids, $2 shard.
            dlq_delete: with_shard(
                &format!(
                    "WITH gone AS (
                        DELETE FROM {{s}}.dead_letters WHERE id = ANY($1::int8[])
                        RETURNING pixel_id),
                    {DEAD_LETTERS_GONE}"
                ),
                "$2",
            ),
            dlq_get: s(&format!(
                "SELECT {DEAD_LETTER_COLUMNS} FROM {{s}}.dead_letters WHERE id = $1"
            )),
            dlq_list_base: s(&format!(
                "SELECT {DEAD_LETTER_COLUMNS} FROM {{s}}.dead_letters"
            )),
            // $1-$3 key, $4 live after (first_seen_ms > $4).
            dedup_lookup: s("
                SELECT pixel_id, event_name, event_id, first_source, sources, first_seen_ms,
                       last_seen_ms, duplicates, merged, order_id, id_origin
                FROM {s}.dedup_ledger
                WHERE pixel_id = $1 AND event_name = $2 AND event_id = $3 AND first_seen_ms > $4"),
            // The dedup report, in one REPEATABLE READ transaction. $1 since
            // (first_seen_ms >= $1), $2 pixel or NULL. Bit 1 of `sources` is
            // the browser, bits 2|4|8 the server side; every key counts once.
            report_rows: s("
                SELECT pixel_id, event_name, count(*)::int8,
                       count(*) FILTER (WHERE merged = 0 AND sources & 1 <> 0 AND sources & 14 = 0)::int8,
                       count(*) FILTER (WHERE merged = 0 AND sources & 1 = 0)::int8,
                       count(*) FILTER (WHERE merged = 0 AND sources & 1 <> 0 AND sources & 14 <> 0)::int8,
                       count(*) FILTER (WHERE merged > 0)::int8,
                       COALESCE(sum(duplicates), 0)::int8,
                       count(*) FILTER (WHERE id_origin <> 0)::int8,
                       count(*) FILTER (WHERE id_origin = 2)::int8
                FROM {s}.dedup_ledger
                WHERE first_seen_ms >= $1 AND ($2::text IS NULL OR pixel_id = $2::text)
                GROUP BY pixel_id, event_name
                ORDER BY pixel_id, event_name"),
            // $1 since, $2 pixel or NULL, $3 limit, $4 ids per order.
            report_order_conflicts: s("
                SELECT pixel_id, event_name, order_id, count(DISTINCT event_id)::int8,
                       (array_agg(DISTINCT event_id ORDER BY event_id))[1:$4::int4]
                FROM {s}.dedup_ledger
                WHERE first_seen_ms >= $1 AND ($2::text IS NULL OR pixel_id = $2::text)
                  AND order_id IS NOT NULL
                GROUP BY pixel_id, event_name, order_id
                HAVING count(DISTINCT event_id) > 1
                ORDER BY pixel_id, event_name, order_id
                LIMIT $3"),
            // $1 since, $2 pixel or NULL, $3 limit.
            report_name_conflicts: s("
                SELECT pixel_id, event_id, array_agg(DISTINCT event_name ORDER BY event_name)
                FROM {s}.dedup_ledger
                WHERE first_seen_ms >= $1 AND ($2::text IS NULL OR pixel_id = $2::text)
                GROUP BY pixel_id, event_id
                HAVING count(DISTINCT event_name) > 1
                ORDER BY pixel_id, event_id
                LIMIT $3"),
            // merge_held, in one transaction. $1-$3 key, $4 now, $5 the later
            // copy's source. A held row is never leasable (due_ms is its hold);
            // `leased_until_ms IS NULL` refuses a row another node leased with a
            // clock past the hold, and FOR UPDATE re-checks all of it on a row
            // changed since the snapshot.
            held_copy: s("
                SELECT id, source, payload FROM {s}.queue
                WHERE pixel_id = $1 AND event_name = $2 AND event_id = $3
                  AND hold_until_ms > $4 AND leased_until_ms IS NULL AND attempts = 0
                  AND source <> $5
                ORDER BY id
                LIMIT 1
                FOR UPDATE"),
            // $1 id, $2 payload, $3 now (due), $4 user keys to add.
            merge_queue: s("
                UPDATE {s}.queue
                SET payload = $2, due_ms = $3, hold_until_ms = NULL,
                    user_keys = ARRAY(SELECT DISTINCT k FROM unnest(user_keys || $4::text[]) AS k
                                      ORDER BY k)
                WHERE id = $1"),
            // $1-$3 key, $4 source bit, $5 now, $6 order id.
            merge_ledger: s("
                UPDATE {s}.dedup_ledger
                SET sources = sources | $4::int2, merged = merged + 1,
                    last_seen_ms = GREATEST(last_seen_ms, $5::int8),
                    order_id = COALESCE(order_id, $6::text)
                WHERE pixel_id = $1 AND event_name = $2 AND event_id = $3"),
            // $1 now.
            due_pixels: s("
                SELECT c.pixel_id
                FROM (SELECT pixel_id FROM {s}.pixel_counters
                      GROUP BY pixel_id HAVING sum(queued) > 0) AS c
                WHERE EXISTS (
                    SELECT 1 FROM {s}.queue AS q
                    WHERE q.pixel_id = c.pixel_id AND q.due_ms <= $1
                      AND (q.leased_until_ms IS NULL OR q.leased_until_ms <= $1))
                ORDER BY c.pixel_id"),
            // $1 now. One statement, so one consistent snapshot.
            stats: s("
                WITH c AS (
                    SELECT pixel_id, sum(queued)::int8 AS queued,
                           sum(dead_letters)::int8 AS dead_letters,
                           sum(delivered_total)::int8 AS delivered_total,
                           sum(duplicates_total)::int8 AS duplicates_total,
                           max(last_delivered_ms) AS last_delivered_ms
                    FROM {s}.pixel_counters GROUP BY pixel_id),
                l AS (
                    SELECT pixel_id, GREATEST(sum(events), 0)::int8 AS leased
                    FROM {s}.lease_batches WHERE leased_until_ms > $1 GROUP BY pixel_id),
                h AS (
                    SELECT pixel_id, count(*)::int8 AS held
                    FROM {s}.queue WHERE hold_until_ms > $1 GROUP BY pixel_id)
                SELECT c.pixel_id, c.queued, c.dead_letters, c.delivered_total,
                       c.duplicates_total, c.last_delivered_ms,
                       COALESCE(l.leased, 0), COALESCE(h.held, 0),
                       (SELECT min(q.due_ms) FROM {s}.queue AS q WHERE q.pixel_id = c.pixel_id)
                FROM c LEFT JOIN l USING (pixel_id) LEFT JOIN h USING (pixel_id)
                ORDER BY c.pixel_id"),
            // $1 cutoff (first_seen_ms <= $1 is expired), $2 batch size.
            purge_ledger: s("
                DELETE FROM {s}.dedup_ledger
                WHERE ctid = ANY (ARRAY(
                        SELECT ctid FROM {s}.dedup_ledger
                        WHERE first_seen_ms <= $1 LIMIT $2))
                  AND first_seen_ms <= $1"),
            // $1 now, $2 batch size.
            purge_lease_batches: s("
                DELETE FROM {s}.lease_batches
                WHERE batch_id = ANY (ARRAY(
                        SELECT batch_id FROM {s}.lease_batches
                        WHERE leased_until_ms <= $1 OR events <= 0 LIMIT $2))"),
            // $1 user keys, $2 shard.
            forget: with_shard(
                &format!(
                    "WITH gone AS (
                        DELETE FROM {{s}}.queue WHERE user_keys && $1::text[]
                        RETURNING pixel_id, event_name, event_id, lease_batch, leased_until_ms),
                    gone_dead AS (
                        DELETE FROM {{s}}.dead_letters WHERE user_keys && $1::text[]
                        RETURNING pixel_id, event_name, event_id),
                    keys AS (
                        SELECT DISTINCT pixel_id, event_name, event_id
                        FROM (SELECT pixel_id, event_name, event_id FROM gone
                              UNION ALL
                              SELECT pixel_id, event_name, event_id FROM gone_dead) AS k
                        WHERE event_id <> ''),
                    unledgered AS (
                        DELETE FROM {{s}}.dedup_ledger AS d USING keys
                        WHERE d.pixel_id = keys.pixel_id AND d.event_name = keys.event_name
                          AND d.event_id = keys.event_id
                        RETURNING 1),
                    {LEASE_RELEASE},
                    delta AS (
                        SELECT pixel_id, -1 AS queued, 0 AS dead_letters, 0 AS delivered,
                               NULL::int8 AS last_delivered_ms FROM gone
                        UNION ALL
                        SELECT pixel_id, 0, -1, 0, NULL FROM gone_dead),
                    {COUNTERS_FROM_DELTA}
                    SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM gone_dead),
                           (SELECT count(*) FROM unledgered)"
                ),
                "$2",
            ),
            probe: s("UPDATE {s}.store_meta SET value = value + 1 WHERE key = 'writable_probe'"),
            audit_list_base: s(
                "SELECT id, time_ms, pixel_id, event_name, event_id, source, outcome, rule_id, \
                 record FROM {s}.consent_audit",
            ),
            // $1 before (time_ms < $1 goes), $2 batch size.
            purge_audit: s("
                DELETE FROM {s}.consent_audit
                WHERE id = ANY (ARRAY(
                        SELECT id FROM {s}.consent_audit
                        WHERE time_ms < $1 ORDER BY time_ms LIMIT $2))"),
            // $1 dead-lettered before, $2 batch size, $3 shard. As
            // dlq_delete, for the oldest entries; SKIP LOCKED leaves an
            // entry being replayed or deleted right now to that statement.
            purge_dead_letters: with_shard(
                &format!(
                    "WITH gone AS (
                        DELETE FROM {{s}}.dead_letters
                        WHERE id = ANY (ARRAY(
                            SELECT id FROM {{s}}.dead_letters
                            WHERE dead_lettered_ms < $1 ORDER BY id LIMIT $2
                            FOR UPDATE SKIP LOCKED))
                        RETURNING pixel_id),
                    {DEAD_LETTERS_GONE}"
                ),
                "$3",
            ),
        }
    }
}
