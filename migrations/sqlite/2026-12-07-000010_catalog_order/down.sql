ALTER TABLE interests DROP COLUMN position;
