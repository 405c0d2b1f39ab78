-- Consent that staff record with evidence the person gave elsewhere (a paper form, an event).
ALTER TABLE consent_events DROP CONSTRAINT consent_events_action_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_action_check
    CHECK (action IN ('signup', 'confirm', 'preferences', 'unsubscribe', 'staff_recorded'));
