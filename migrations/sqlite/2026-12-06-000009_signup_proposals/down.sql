ALTER TABLE confirmation_tokens DROP COLUMN proposal;
