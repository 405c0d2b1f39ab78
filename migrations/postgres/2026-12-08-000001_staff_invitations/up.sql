-- Staff invitations: an admin invites an address with a role and a language; the invitee follows
-- a single-use link to choose a password. Only invitations still open are kept: accepting or
-- withdrawing one deletes it (the audit log keeps the record), which voids its link. The link's
-- random token is stored only as its SHA-256, so a copy of the database opens no invitation.
-- Keep in step with migrations/sqlite.

CREATE TABLE staff_invitations (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    language TEXT NOT NULL CHECK (language IN ('en', 'es')),
    token_hash TEXT NOT NULL UNIQUE,
    invited_by TEXT REFERENCES staff (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
