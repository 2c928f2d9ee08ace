-- Search by part of a name: a trigram index serves `name_folded LIKE '%…%'`,
-- which would otherwise read every customer. pg_trgm ships with PostgreSQL
-- and is a trusted extension: the database's owner may install it. Where it
-- is installed already, in whatever schema, that copy is used.
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA cases;

DO $$
DECLARE
    trgm_schema name;
BEGIN
    SELECT n.nspname INTO trgm_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    EXECUTE format(
        'CREATE INDEX customers_name_trigram_idx ON customers USING gin (name_folded %I.gin_trgm_ops)',
        trgm_schema
    );
END
$$;
