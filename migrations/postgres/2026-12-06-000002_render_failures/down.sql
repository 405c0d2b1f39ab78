DROP TABLE render_marks;
ALTER TABLE newsletters DROP COLUMN render_failures;
ALTER TABLE newsletters DROP COLUMN pause_reason;
