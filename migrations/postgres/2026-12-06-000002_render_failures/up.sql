-- Rendering guards for newsletter sends. Keep in step with the other backend's set.
-- Why the engine paused a newsletter (shown to staff); how many of its messages could not be
-- rendered, and how many processes died while rendering it, since it last started or resumed.
ALTER TABLE newsletters ADD COLUMN pause_reason TEXT;
ALTER TABLE newsletters ADD COLUMN render_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE newsletters ADD COLUMN render_deaths INTEGER NOT NULL DEFAULT 0;

-- One row per batch being rendered, written with its claim and removed when the batch is
-- rendered: a process that dies while rendering leaves its row behind, counted in
-- render_deaths; the second such death pauses the newsletter instead of letting it be claimed
-- again. Renewed with the claim's lease while the process lives.
CREATE TABLE render_marks (
    claim TEXT PRIMARY KEY NOT NULL,
    newsletter_id TEXT NOT NULL REFERENCES newsletters (id) ON DELETE CASCADE,
    started_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP NOT NULL
);
CREATE INDEX render_marks_newsletter_idx ON render_marks (newsletter_id);
