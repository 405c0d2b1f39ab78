-- Data migrations that need Rust (addresses in canonical form need UTS #46 and NFC): each runs
-- once after the schema migrations and records here what it did. Keep in step with the other set.
CREATE TABLE data_migrations (
    name TEXT PRIMARY KEY NOT NULL,
    applied_at TIMESTAMP NOT NULL,
    summary TEXT NOT NULL
);
