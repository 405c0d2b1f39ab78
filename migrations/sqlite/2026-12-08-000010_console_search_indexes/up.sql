-- The console's people search over a long list: a status or an interest gives its people
-- already in id order, so a page of the newest ones among them is read from the index without
-- sorting them all. Keep in step with migrations/postgres.
DROP INDEX subscribers_status_idx;
CREATE INDEX subscribers_status_idx ON subscribers (status, id);
DROP INDEX subscriber_interests_slug_idx;
CREATE INDEX subscriber_interests_slug_idx ON subscriber_interests (interest_slug, subscriber_id);
