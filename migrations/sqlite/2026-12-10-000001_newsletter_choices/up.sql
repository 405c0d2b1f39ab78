-- Two choices staff make per newsletter, both off unless asked for:
-- count_clicks: its links go through Enlace's redirect, which counts clicks per link and hour
--   (never who clicked; see newsletter_links and newsletter_clicks);
-- archived: a copy without anyone's merge fields or tokens is public in the archive.
-- Keep in step with migrations/postgres.

ALTER TABLE newsletters ADD COLUMN count_clicks BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE newsletters ADD COLUMN archived BOOLEAN NOT NULL DEFAULT 0;
