-- Append-only record of every staff write. Keep in step with the other backend's set.

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    actor_type TEXT NOT NULL CHECK (actor_type IN ('staff', 'api_key', 'cli')),
    actor_id TEXT,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT,
    ip TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at, id);
