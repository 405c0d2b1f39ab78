-- The staff console: each member's language and time zone, and signed-in browser sessions.
-- Keep in step with migrations/postgres.

ALTER TABLE staff ADD COLUMN language TEXT CHECK (language IN ('en', 'es'));
ALTER TABLE staff ADD COLUMN time_zone TEXT;

-- A console session. The browser holds a random secret; only its SHA-256 is stored, so a copy of
-- the database signs nobody in. A session is valid while the member's role and token generation
-- are those it began with (a demotion, a password change or a disable ends it), until it has been
-- idle too long or reaches its absolute end.
CREATE TABLE console_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    staff_id TEXT NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    generation INTEGER NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX console_sessions_staff ON console_sessions (staff_id);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- The console's dashboard counts signups, confirmations, unsubscribes and mail reports per day.
CREATE INDEX consent_events_created_idx ON consent_events (created_at, action);
CREATE INDEX mail_events_occurred_idx ON mail_events (occurred_at, kind);
