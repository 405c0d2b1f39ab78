-- Erased subscribers: only the id and when, so integrations can delete them too.

CREATE TABLE tombstones (
    subscriber_id TEXT PRIMARY KEY NOT NULL,
    erased_at TIMESTAMP NOT NULL
);
CREATE INDEX tombstones_erased_idx ON tombstones (erased_at);
