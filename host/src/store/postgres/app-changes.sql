-- Which app each change touched (`changes.seq` after it), so a host follows the apps that
-- changed instead of reading every app again. The oldest entries are trimmed as changes
-- are logged; a host further behind than the log reads everything.
CREATE TABLE app_changes (seq bigint PRIMARY KEY, app_id text NOT NULL);
