-- How many people are in each status, kept by triggers in the same transaction as every change
-- to the list, so the console's dashboard reads five rows instead of counting a million, and
-- reads exactly what a count would say. Keep in step with migrations/postgres.
CREATE TABLE subscriber_counts (
    status TEXT PRIMARY KEY NOT NULL,
    people BIGINT NOT NULL
);
INSERT INTO subscriber_counts (status, people)
    SELECT status, count(*) FROM subscribers GROUP BY status;

CREATE TRIGGER subscriber_counts_insert AFTER INSERT ON subscribers
BEGIN
    INSERT INTO subscriber_counts (status, people) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET people = people + 1;
END;

CREATE TRIGGER subscriber_counts_delete AFTER DELETE ON subscribers
BEGIN
    UPDATE subscriber_counts SET people = people - 1 WHERE status = OLD.status;
END;

CREATE TRIGGER subscriber_counts_update AFTER UPDATE OF status ON subscribers
WHEN NEW.status <> OLD.status
BEGIN
    UPDATE subscriber_counts SET people = people - 1 WHERE status = OLD.status;
    INSERT INTO subscriber_counts (status, people) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET people = people + 1;
END;
