DROP TRIGGER subscriber_counts_update ON subscribers;
DROP TRIGGER subscriber_counts_delete ON subscribers;
DROP TRIGGER subscriber_counts_insert ON subscribers;
DROP FUNCTION enlace_recount_person();
DROP FUNCTION enlace_count_people();
DROP TABLE subscriber_counts;
