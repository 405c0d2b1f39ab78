ALTER TABLE custom_fields DROP COLUMN position;
