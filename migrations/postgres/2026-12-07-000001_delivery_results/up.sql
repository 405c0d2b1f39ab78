-- A newsletter's results once its per-recipient deliveries are past their retention
-- (ENLACE_DELIVERY_RETENTION_DAYS after it finished): how many recipients ended in each state,
-- by the recipient's language ('unknown' once the person is gone), the class of the reason
-- (an SMTP reply code with its enhanced status such as '550 5.1.1', or a fixed word such as
-- 'unsubscribed'; '' when there is none) and the hour (when sent, otherwise when last due).
-- No subscriber id, address or server text: the folded deliveries are deleted in the
-- transaction that adds them here. Keep in step with the other backend's set.
CREATE TABLE delivery_results (
    newsletter_id TEXT NOT NULL REFERENCES newsletters (id) ON DELETE CASCADE,
    language TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    reason TEXT NOT NULL,
    hour TIMESTAMP NOT NULL,
    recipients BIGINT NOT NULL CHECK (recipients > 0),
    PRIMARY KEY (newsletter_id, language, state, reason, hour)
);
