DROP TABLE mail_events;
