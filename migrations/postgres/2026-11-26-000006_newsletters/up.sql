-- Saved segments, newsletters and one delivery row per recipient of each send.
-- Keep in step with the other backend's set.

CREATE TABLE segments (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    filter TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE newsletters (
    id TEXT PRIMARY KEY NOT NULL,
    subject TEXT NOT NULL,
    html TEXT NOT NULL,
    text TEXT,
    -- {"en": {"subject", "html", "text"}, "es": {…}}: content chosen by the subscriber's language.
    variants TEXT NOT NULL DEFAULT '{}',
    from_address TEXT,
    reply_to TEXT,
    segment_id TEXT REFERENCES segments (id),
    filter TEXT,
    status TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'overdue', 'sending', 'paused', 'sent', 'cancelled')),
    send_at TIMESTAMP,
    send_key TEXT,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX newsletters_status_idx ON newsletters (status, send_at);

-- No foreign key to subscribers: an erased subscriber's delivery keeps its outcome (ids only).
CREATE TABLE deliveries (
    newsletter_id TEXT NOT NULL REFERENCES newsletters (id) ON DELETE CASCADE,
    subscriber_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at TIMESTAMP NOT NULL,
    claim TEXT,
    locked_until TIMESTAMP,
    outcome TEXT,
    sent_at TIMESTAMP,
    PRIMARY KEY (newsletter_id, subscriber_id)
);
CREATE INDEX deliveries_due_idx ON deliveries (newsletter_id, state, run_at);
CREATE INDEX deliveries_subscriber_idx ON deliveries (subscriber_id);
