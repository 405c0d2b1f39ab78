-- What people did because of a newsletter, counted and nothing else: unsubscribes and
-- preference changes made through the links in that newsletter (its links name the newsletter,
-- the same for every recipient), and bounces and complaints about an address it was the last
-- newsletter sent to. By the person's language and the hour; no subscriber id, address or
-- report text is kept here. Keep in step with the other backend's set.
CREATE TABLE newsletter_actions (
    newsletter_id TEXT NOT NULL REFERENCES newsletters (id) ON DELETE CASCADE,
    language TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('unsubscribe', 'preferences', 'hard_bounce', 'soft_bounce', 'complaint')),
    hour TIMESTAMP NOT NULL,
    people BIGINT NOT NULL CHECK (people > 0),
    PRIMARY KEY (newsletter_id, language, action, hour)
);
