-- Custom fields in the order staff give them (0 until they first reorder: then by key).
-- Keep in step with migrations/postgres.

ALTER TABLE custom_fields ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
