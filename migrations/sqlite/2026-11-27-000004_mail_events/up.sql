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

-- Signed requests already accepted from providers whose signature does not cover the body
-- (Mailgun signs a timestamp and a one-time token): a token seen once is refused after that.
-- Kept a day; requests older than 15 minutes are refused anyway.
CREATE TABLE provider_tokens (
    token TEXT PRIMARY KEY NOT NULL,
    seen_at TIMESTAMP NOT NULL
);
CREATE INDEX provider_tokens_seen_idx ON provider_tokens (seen_at);
