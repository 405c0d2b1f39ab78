-- A person's page in the console shows the audit log entries about them: found by object, newest
-- first, without reading the whole log. Keep in step with migrations/sqlite.

CREATE INDEX audit_log_object_idx ON audit_log (object_type, object_id, id);
