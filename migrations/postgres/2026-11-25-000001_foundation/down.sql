DROP TABLE jobs;
DROP TABLE suppressions;
DROP TABLE consent_events;
DROP TABLE confirmation_tokens;
DROP TABLE custom_fields;
DROP TABLE subscriber_interests;
DROP TABLE interests;
DROP TABLE subscribers;
