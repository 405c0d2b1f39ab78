-- Bounces and complaints reported by mail providers (or by staff scripts). The id is the
-- provider's own event id, namespaced by provider, so the same report delivered twice is
-- processed once. No address is kept: only the suppression hash of it.
CREATE TABLE mail_events (
    id TEXT PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('hard_bounce', 'soft_bounce', 'complaint')),
    email_hash TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    occurred_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL
);

-- Soft bounces of one address within a window.
CREATE INDEX mail_events_address_idx ON mail_events (email_hash, kind, occurred_at);
