-- Access tokens carry the generation they were issued under; a password change or a disable
-- moves it on, which signs out every token issued before.
ALTER TABLE staff ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
