-- One row that /readyz rewrites, so readiness means "can write", not only "can connect": a full
-- disk or a database refusing writes shows as not ready. Keep in step with the other set.
CREATE TABLE readiness_probe (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    checked_at TIMESTAMP NOT NULL
);
INSERT INTO readiness_probe (id, checked_at) VALUES (1, CURRENT_TIMESTAMP);
