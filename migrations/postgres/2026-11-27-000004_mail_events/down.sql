DROP TABLE provider_tokens;
DROP TABLE mail_events;
