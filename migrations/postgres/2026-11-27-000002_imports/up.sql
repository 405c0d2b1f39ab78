-- CSV imports: the import and its progress, the file cut into parts of whole records (each part
-- is deleted in the transaction that imports it), and the per-row report.
-- Keep in step with migrations/sqlite.

CREATE TABLE imports (
    id TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    mode TEXT NOT NULL CHECK (mode IN ('consented', 'confirm')),
    source TEXT,
    consent_note TEXT,
    -- JSON: the columns and the fields they feed, default language, interests for every row.
    plan TEXT NOT NULL,
    -- JSON {"bytes", "sha256"} of the file as uploaded.
    file TEXT NOT NULL,
    total_rows BIGINT NOT NULL,
    parts BIGINT NOT NULL,
    next_part BIGINT NOT NULL DEFAULT 0,
    -- JSON {"created", "updated", "unchanged", "skipped", "failed"}, written with each part.
    counts TEXT NOT NULL,
    error TEXT,
    -- "staff:ID" or "api_key:ID".
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE INDEX imports_created_idx ON imports (created_at);

CREATE TABLE import_parts (
    import_id TEXT NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    part BIGINT NOT NULL,
    first_line BIGINT NOT NULL,
    body TEXT NOT NULL,
    -- JSON [[line, first line with the same address], …] for the repeats in this part.
    duplicates TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (import_id, part)
);

CREATE TABLE import_problems (
    import_id TEXT NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    line BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    column_name TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('failed', 'skipped', 'note')),
    problem TEXT NOT NULL,
    PRIMARY KEY (import_id, line, seq)
);
