CREATE TABLE consent_events_new (
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
INSERT INTO consent_events_new SELECT * FROM consent_events WHERE action <> 'staff_recorded';
DROP TABLE consent_events;
ALTER TABLE consent_events_new RENAME TO consent_events;
CREATE INDEX consent_events_subscriber_idx ON consent_events (subscriber_id, created_at);
