DELETE FROM consent_events WHERE action = 'staff_recorded';
ALTER TABLE consent_events DROP CONSTRAINT consent_events_action_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_action_check
    CHECK (action IN ('signup', 'confirm', 'preferences', 'unsubscribe'));
