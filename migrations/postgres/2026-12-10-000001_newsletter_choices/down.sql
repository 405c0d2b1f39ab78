ALTER TABLE newsletters DROP COLUMN archived;
ALTER TABLE newsletters DROP COLUMN count_clicks;
