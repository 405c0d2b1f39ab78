-- The console's people search over a long list: a status or an interest gives its people
-- already in id order, so a page of the newest ones among them is read from the index without
-- sorting them all; and the start of an address (LIKE 'text%') is found through an index in any
-- collation (the unique index on addresses serves LIKE only under the C collation). Keep in
-- step with migrations/sqlite.
DROP INDEX subscribers_status_idx;
CREATE INDEX subscribers_status_idx ON subscribers (status, id);
DROP INDEX subscriber_interests_slug_idx;
CREATE INDEX subscriber_interests_slug_idx ON subscriber_interests (interest_slug, subscriber_id);
CREATE INDEX subscribers_email_pattern_idx ON subscribers (email text_pattern_ops);
