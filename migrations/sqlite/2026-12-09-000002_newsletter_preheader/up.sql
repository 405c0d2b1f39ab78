-- The preview text mail apps show after the subject, for the default version of a newsletter
-- (a language version keeps its own in `variants`). None when staff give none.
-- Keep in step with migrations/postgres.

ALTER TABLE newsletters ADD COLUMN preheader TEXT;
