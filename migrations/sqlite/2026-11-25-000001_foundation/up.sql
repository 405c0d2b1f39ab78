-- Enlace foundation: subscribers, interests, custom fields, tokens, consent ledger,
-- suppressions and the durable job queue. Keep in step with migrations/postgres.

CREATE TABLE subscribers (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    name TEXT,
    language TEXT NOT NULL CHECK (language IN ('en', 'es')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced', 'complained')),
    attributes TEXT NOT NULL DEFAULT '{}',
    source TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    unsubscribed_at TIMESTAMP
);
CREATE INDEX subscribers_status_idx ON subscribers (status);
CREATE INDEX subscribers_updated_idx ON subscribers (updated_at, id);

CREATE TABLE interests (
    slug TEXT PRIMARY KEY NOT NULL,
    name_en TEXT NOT NULL,
    name_es TEXT NOT NULL,
    description_en TEXT NOT NULL DEFAULT '',
    description_es TEXT NOT NULL DEFAULT '',
    public BOOLEAN NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE subscriber_interests (
    subscriber_id TEXT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    interest_slug TEXT NOT NULL REFERENCES interests (slug) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (subscriber_id, interest_slug)
);
CREATE INDEX subscriber_interests_slug_idx ON subscriber_interests (interest_slug);

CREATE TABLE custom_fields (
    key TEXT PRIMARY KEY NOT NULL,
    field_type TEXT NOT NULL CHECK (field_type IN ('text', 'number', 'date', 'boolean', 'one_of')),
    allowed_values TEXT,
    public BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE confirmation_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    subscriber_id TEXT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX confirmation_tokens_subscriber_idx ON confirmation_tokens (subscriber_id);

CREATE TABLE consent_events (
    id TEXT PRIMARY KEY NOT NULL,
    subscriber_id TEXT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    action TEXT NOT NULL CHECK (action IN ('signup', 'confirm', 'preferences', 'unsubscribe')),
    interests TEXT NOT NULL DEFAULT '[]',
    wording TEXT NOT NULL,
    wording_version TEXT NOT NULL,
    language TEXT NOT NULL,
    source TEXT,
    ip TEXT,
    user_agent TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX consent_events_subscriber_idx ON consent_events (subscriber_id, created_at);

CREATE TABLE suppressions (
    email_hash TEXT PRIMARY KEY NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'manual', 'erased')),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    subscriber_id TEXT REFERENCES subscribers (id) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'dropped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX jobs_ready_idx ON jobs (state, run_at);
CREATE INDEX jobs_subscriber_idx ON jobs (subscriber_id, kind, created_at);
