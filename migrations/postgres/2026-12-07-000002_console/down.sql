DROP INDEX mail_events_occurred_idx;
DROP INDEX consent_events_created_idx;
DROP TABLE console_sessions;
ALTER TABLE staff DROP COLUMN time_zone;
ALTER TABLE staff DROP COLUMN language;
