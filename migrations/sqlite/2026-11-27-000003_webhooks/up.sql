-- Outbound webhooks: endpoints staff register, the messages (events) queued for each, and every
-- delivery attempt. Keep in step with the other backend's set.

CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- JSON array of event type names.
    event_types TEXT NOT NULL,
    -- whsec_ + base64; needed in full to sign, so it is kept, and shown only when created.
    secret TEXT NOT NULL,
    -- After a rotation, the old secret also signs until this time, so receivers can switch over.
    previous_secret TEXT,
    previous_secret_until TIMESTAMP,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- One row per event per endpoint; the id is the webhook-id header, the same on every retry.
-- No foreign key to subscribers: erasure scrubs these rows itself.
CREATE TABLE webhook_messages (
    id TEXT PRIMARY KEY NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    subscriber_id TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'dropped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP
);
CREATE INDEX webhook_messages_endpoint_idx ON webhook_messages (endpoint_id, id);
CREATE INDEX webhook_messages_subscriber_idx ON webhook_messages (subscriber_id);

CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    message_id TEXT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    status_code INTEGER,
    error TEXT,
    -- The first KiB of the receiver's answer.
    response TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_message_idx ON webhook_attempts (message_id, attempt);
