-- The hourly retention sweep finds finished calls by when they finished.
CREATE INDEX calls_finished ON calls (finished_at) WHERE done;
