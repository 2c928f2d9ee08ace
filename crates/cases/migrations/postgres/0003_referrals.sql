-- Signposts and referrals to partner organisations (the partner directory,
-- seeds/partners.toml), recorded on a case with the resident's consent when
-- their details are shared, and the outcome when the partner reports back.
--
-- partner_id: a directory id when the referral was made. No foreign key: the
--   directory is data in seeds/, not a table, and may change later.
-- kind: the partner's kind then, 'signpost' (the resident was given the
--   partner's details) or 'referral' (their details were passed on), kept
--   because a council may change the directory.
-- consent_statement / consent_given_at: what the resident agreed to be shared
--   and when; both NULL when no consent was recorded, which only a signpost
--   allows.
-- status: 'made' until the partner reports an outcome; outcome_* hold the
--   latest report.
-- consent_statement, note and outcome_note are staff's free text and may name
--   the resident: they never leave this store except to staff allowed to read
--   the case.
CREATE TABLE referrals (
    id                  uuid PRIMARY KEY,
    case_id             uuid NOT NULL REFERENCES cases (id),
    partner_id          text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('signpost', 'referral')),
    consent_statement   text,
    consent_given_at    timestamptz,
    note                text NOT NULL,
    made_by             text NOT NULL,
    made_at             timestamptz NOT NULL,
    status              text NOT NULL
        CHECK (status IN ('made', 'accepted', 'declined', 'completed', 'no_contact')),
    outcome_note        text,
    outcome_reported_by text,
    outcome_reported_at timestamptz,
    CHECK ((consent_statement IS NULL) = (consent_given_at IS NULL)),
    CHECK (kind = 'signpost' OR consent_statement IS NOT NULL),
    CHECK ((status = 'made') = (outcome_reported_at IS NULL)),
    CHECK ((outcome_reported_by IS NULL) = (outcome_reported_at IS NULL))
);

CREATE INDEX referrals_case_idx ON referrals (case_id, made_at, id);
