-- Change sequence for incremental sync: every write to a subscriber (their interests included)
-- and every tombstone gets the next number, in commit order, so a reader that has seen number N
-- has seen every change numbered below N. Keep in step with migrations/postgres.
--
-- SQLite has one writer at a time, so numbers taken from change_counter inside a transaction
-- are in commit order by construction. AFTER triggers stamp the row; the WHEN clause keeps the
-- stamping update from stamping again (and makes it safe with recursive_triggers on).

CREATE TABLE change_counter (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    value BIGINT NOT NULL
);

ALTER TABLE subscribers ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tombstones ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;

-- Existing rows, numbered in the order they last changed.
CREATE TEMP TABLE numbered AS
    SELECT kind, id, row_number() OVER (ORDER BY at, kind, id) AS n FROM (
        SELECT 's' AS kind, id, updated_at AS at FROM subscribers
        UNION ALL
        SELECT 't' AS kind, subscriber_id AS id, erased_at AS at FROM tombstones
    );
-- Looked up once per row: without this index the two updates below are quadratic.
CREATE UNIQUE INDEX temp.numbered_idx ON numbered (kind, id);
UPDATE subscribers SET change_seq = (SELECT n FROM numbered WHERE kind = 's' AND numbered.id = subscribers.id);
UPDATE tombstones SET change_seq = (SELECT n FROM numbered WHERE kind = 't' AND numbered.id = tombstones.subscriber_id);
INSERT INTO change_counter (id, value) VALUES (1, (SELECT COALESCE(MAX(n), 0) FROM numbered));
DROP TABLE numbered;

CREATE INDEX subscribers_change_idx ON subscribers (change_seq);
CREATE INDEX tombstones_change_idx ON tombstones (change_seq);

CREATE TRIGGER subscribers_change_insert AFTER INSERT ON subscribers
BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE subscribers SET change_seq = (SELECT value FROM change_counter WHERE id = 1)
    WHERE id = NEW.id;
END;

CREATE TRIGGER subscribers_change_update AFTER UPDATE ON subscribers
WHEN NEW.change_seq = OLD.change_seq
BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE subscribers SET change_seq = (SELECT value FROM change_counter WHERE id = 1)
    WHERE id = NEW.id;
END;

CREATE TRIGGER tombstones_change_insert AFTER INSERT ON tombstones
BEGIN
    UPDATE change_counter SET value = value + 1 WHERE id = 1;
    UPDATE tombstones SET change_seq = (SELECT value FROM change_counter WHERE id = 1)
    WHERE subscriber_id = NEW.subscriber_id;
END;

-- A change to someone's interests is a change to them: touching their row numbers it again.
CREATE TRIGGER subscriber_interests_insert AFTER INSERT ON subscriber_interests
BEGIN
    UPDATE subscribers SET change_seq = change_seq WHERE id = NEW.subscriber_id;
END;

CREATE TRIGGER subscriber_interests_delete AFTER DELETE ON subscriber_interests
BEGIN
    UPDATE subscribers SET change_seq = change_seq WHERE id = OLD.subscriber_id;
END;
