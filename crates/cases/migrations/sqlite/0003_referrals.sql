-- Signposts and referrals to partner organisations (see the PostgreSQL
-- migration for what each column is for). Same representations as 0001: ids
-- as UUID text, times as INTEGER microseconds.

CREATE TABLE referrals (
    id                  TEXT PRIMARY KEY NOT NULL,
    case_id             TEXT NOT NULL REFERENCES cases (id),
    partner_id          TEXT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('signpost', 'referral')),
    consent_statement   TEXT,
    consent_given_at    INTEGER,
    note                TEXT NOT NULL,
    made_by             TEXT NOT NULL,
    made_at             INTEGER NOT NULL,
    status              TEXT NOT NULL
        CHECK (status IN ('made', 'accepted', 'declined', 'completed', 'no_contact')),
    outcome_note        TEXT,
    outcome_reported_by TEXT,
    outcome_reported_at INTEGER,
    CHECK ((consent_statement IS NULL) = (consent_given_at IS NULL)),
    CHECK (kind = 'signpost' OR consent_statement IS NOT NULL),
    CHECK ((status = 'made') = (outcome_reported_at IS NULL)),
    CHECK ((outcome_reported_by IS NULL) = (outcome_reported_at IS NULL))
) STRICT;

CREATE INDEX referrals_case_idx ON referrals (case_id, made_at, id);
