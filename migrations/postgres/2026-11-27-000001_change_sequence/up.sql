-- Change sequence for incremental sync: every write to a subscriber (their interests included)
-- and every tombstone gets the next number, in commit order, so a reader that has seen number N
-- has seen every change numbered below N. Keep in step with migrations/sqlite.
--
-- The numbers come from a sequence; the one row of change_counter is the lock that orders
-- commits. A writer takes it (FOR UPDATE) with its first change and holds it until it commits,
-- so no other writer can take a number meanwhile: numbers are handed out in commit order.
-- It is taken before the statement locks any row (BEFORE ... FOR EACH STATEMENT), and code that
-- locks subscriber rows with SELECT ... FOR UPDATE takes it first too (db::lock_changes), so
-- every writer locks in the same order (counter, then rows) and none can deadlock another.
-- (Updating the counter row itself for every change would leave one row version per change
-- inside a long transaction, each next update walking all of them.) change_counter.value is
-- the number itself on SQLite; here it stays 0.

CREATE TABLE change_counter (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO change_counter (id, value) VALUES (1, 0);
CREATE SEQUENCE change_numbers;

ALTER TABLE subscribers ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tombstones ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;

-- Existing rows, numbered in the order they last changed.
WITH numbered AS (
    SELECT kind, id, row_number() OVER (ORDER BY at, kind, id) AS n FROM (
        SELECT 's' AS kind, id, updated_at AS at FROM subscribers
        UNION ALL
        SELECT 't' AS kind, subscriber_id AS id, erased_at AS at FROM tombstones
    ) changes
)
UPDATE subscribers SET change_seq = numbered.n
FROM numbered WHERE numbered.kind = 's' AND numbered.id = subscribers.id;
WITH numbered AS (
    SELECT kind, id, row_number() OVER (ORDER BY at, kind, id) AS n FROM (
        SELECT 's' AS kind, id, updated_at AS at FROM subscribers
        UNION ALL
        SELECT 't' AS kind, subscriber_id AS id, erased_at AS at FROM tombstones
    ) changes
)
UPDATE tombstones SET change_seq = numbered.n
FROM numbered WHERE numbered.kind = 't' AND numbered.id = tombstones.subscriber_id;
SELECT setval('change_numbers', highest) FROM (SELECT GREATEST(
    (SELECT COALESCE(MAX(change_seq), 0) FROM subscribers),
    (SELECT COALESCE(MAX(change_seq), 0) FROM tombstones)) AS highest) existing
WHERE highest > 0;

CREATE INDEX subscribers_change_idx ON subscribers (change_seq);
CREATE INDEX tombstones_change_idx ON tombstones (change_seq);

CREATE FUNCTION enlace_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM change_counter WHERE id = 1 FOR UPDATE;
    NEW.change_seq := nextval('change_numbers');
    RETURN NEW;
END
$$;

CREATE FUNCTION enlace_lock_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM change_counter WHERE id = 1 FOR UPDATE;
    RETURN NULL;
END
$$;

CREATE TRIGGER subscribers_lock_changes BEFORE INSERT OR UPDATE OR DELETE ON subscribers
    FOR EACH STATEMENT EXECUTE FUNCTION enlace_lock_changes();
CREATE TRIGGER tombstones_lock_changes BEFORE INSERT OR UPDATE OR DELETE ON tombstones
    FOR EACH STATEMENT EXECUTE FUNCTION enlace_lock_changes();
CREATE TRIGGER subscriber_interests_lock_changes BEFORE INSERT OR DELETE ON subscriber_interests
    FOR EACH STATEMENT EXECUTE FUNCTION enlace_lock_changes();

CREATE TRIGGER subscribers_change BEFORE INSERT OR UPDATE ON subscribers
    FOR EACH ROW EXECUTE FUNCTION enlace_stamp_change();
CREATE TRIGGER tombstones_change BEFORE INSERT OR UPDATE ON tombstones
    FOR EACH ROW EXECUTE FUNCTION enlace_stamp_change();

-- A change to someone's interests is a change to them: touch their row (which numbers it) once
-- per statement. A row this transaction already wrote is skipped: its number is already taken
-- in this transaction and the interests commit together with it.
CREATE FUNCTION enlace_touch_interest_owners() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    mine xid := (pg_current_xact_id()::text::bigint % 4294967296)::text::xid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE subscribers SET change_seq = 0
        WHERE id IN (SELECT subscriber_id FROM old_rows) AND xmin <> mine;
    ELSE
        UPDATE subscribers SET change_seq = 0
        WHERE id IN (SELECT subscriber_id FROM new_rows) AND xmin <> mine;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER subscriber_interests_insert AFTER INSERT ON subscriber_interests
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION enlace_touch_interest_owners();
CREATE TRIGGER subscriber_interests_delete AFTER DELETE ON subscriber_interests
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION enlace_touch_interest_owners();
