-- The retention schedule's `intake-contacts` (seeds/retention.toml): once due,
-- a contact keeps its id, reference, channel, service and time; `contact` loses
-- what identifies the resident, and expired_at says when.
ALTER TABLE contacts ADD COLUMN expired_at timestamptz;
