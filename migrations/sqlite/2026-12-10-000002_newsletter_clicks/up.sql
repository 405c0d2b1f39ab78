-- Clicks on a newsletter's links, counted and nothing else: per link (its place among the
-- newsletter's counted links, whose addresses the newsletter's own HTML holds) and per hour.
-- `clicks` are the ones shown; `scanner_clicks` came from link scanners and prefetchers (HEAD
-- requests, known scanner agents, many links of it opened at once by one client) and are kept
-- apart. No subscriber id, address, IP address or user agent is stored with a click: the links
-- are the same for every recipient, and the counts are gathered in memory and added here in
-- batches. Keep in step with migrations/postgres.
CREATE TABLE newsletter_clicks (
    newsletter_id TEXT NOT NULL REFERENCES newsletters (id) ON DELETE CASCADE,
    link INTEGER NOT NULL CHECK (link >= 0),
    hour TIMESTAMP NOT NULL,
    clicks BIGINT NOT NULL CHECK (clicks >= 0),
    scanner_clicks BIGINT NOT NULL CHECK (scanner_clicks >= 0),
    PRIMARY KEY (newsletter_id, link, hour)
);
