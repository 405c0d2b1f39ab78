-- Interests in the order staff give them (0 until they first reorder: then by slug).
-- Keep in step with migrations/sqlite.

ALTER TABLE interests ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
