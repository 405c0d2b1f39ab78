ALTER TABLE staff DROP COLUMN token_generation;
