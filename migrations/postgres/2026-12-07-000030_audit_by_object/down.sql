DROP INDEX audit_log_object_idx;
