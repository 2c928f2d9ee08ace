-- The retention schedule (see the PostgreSQL migration).
ALTER TABLE contacts ADD COLUMN expired_at TEXT;
