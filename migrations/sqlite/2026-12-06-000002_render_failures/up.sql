-- Rendering guards for newsletter sends. Keep in step with the other backend's set.
-- Why the engine paused a newsletter (shown to staff), and how many of its messages could not be
-- rendered since it last started or resumed.
ALTER TABLE newsletters ADD COLUMN pause_reason TEXT;
ALTER TABLE newsletters ADD COLUMN render_failures INTEGER NOT NULL DEFAULT 0;

-- Batches of a newsletter being rendered (`batch`), written with their claim and removed once
-- rendered, and renewed with the claim's lease while their process lives: a process that dies
-- while rendering leaves its row behind. Such a batch becomes a `suspect` (keyed by the dead
-- claim): once its lease runs out, its deliveries are rendered again alone, as a `probe`,
-- before any other of the newsletter. A process that dies rendering a probe pauses the
-- newsletter: the same messages killed two processes.
CREATE TABLE render_marks (
    claim TEXT PRIMARY KEY NOT NULL,
    newsletter_id TEXT NOT NULL REFERENCES newsletters (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('batch', 'probe', 'suspect')),
    started_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP NOT NULL
);
CREATE INDEX render_marks_newsletter_idx ON render_marks (newsletter_id);
