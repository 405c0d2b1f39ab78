-- How many people are in each status, kept by triggers in the same transaction as every change
-- to the list, so the console's dashboard reads five rows instead of counting a million, and
-- reads exactly what a count would say. Every statement that writes subscribers already holds
-- change_counter's row (subscribers_lock_changes, BEFORE), so writers take turns on these rows
-- no more than they already do, and always in the same lock order. Keep in step with
-- migrations/sqlite.
CREATE TABLE subscriber_counts (
    status TEXT PRIMARY KEY NOT NULL,
    people BIGINT NOT NULL
);
INSERT INTO subscriber_counts (status, people)
    SELECT status, count(*) FROM subscribers GROUP BY status;

-- Per statement, so an import of thousands updates each count once.
CREATE FUNCTION enlace_count_people() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO subscriber_counts (status, people)
            SELECT status, count(*) FROM new_rows GROUP BY status
            ON CONFLICT (status) DO UPDATE SET people = subscriber_counts.people + EXCLUDED.people;
    ELSE
        UPDATE subscriber_counts SET people = subscriber_counts.people - gone.n
            FROM (SELECT status, count(*) AS n FROM old_rows GROUP BY status) gone
            WHERE subscriber_counts.status = gone.status;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION enlace_recount_person() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE subscriber_counts SET people = people - 1 WHERE status = OLD.status;
    INSERT INTO subscriber_counts (status, people) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET people = subscriber_counts.people + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER subscriber_counts_insert AFTER INSERT ON subscribers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION enlace_count_people();
CREATE TRIGGER subscriber_counts_delete AFTER DELETE ON subscribers
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION enlace_count_people();
CREATE TRIGGER subscriber_counts_update AFTER UPDATE OF status ON subscribers
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION enlace_recount_person();
