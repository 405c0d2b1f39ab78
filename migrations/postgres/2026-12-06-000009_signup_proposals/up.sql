-- What a public signup asked to change for someone already on the list (name, language,
-- interests, fields, source), kept with the confirmation link sent to them and applied only when
-- they confirm through it. Keep in step with the other set.
ALTER TABLE confirmation_tokens ADD COLUMN proposal TEXT;
