DROP INDEX subscribers_email_pattern_idx;
DROP INDEX subscriber_interests_slug_idx;
CREATE INDEX subscriber_interests_slug_idx ON subscriber_interests (interest_slug);
DROP INDEX subscribers_status_idx;
CREATE INDEX subscribers_status_idx ON subscribers (status);
