ALTER TABLE newsletters DROP COLUMN preheader;
