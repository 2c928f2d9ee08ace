-- Cases through their life: due dates from the service catalogue, resolution
-- and re-opening, repeat contacts, status history, notes, and the wrap-up
-- outcomes routing reports.

-- due_at: the service's target (working days) from the opening contact; NULL
--   for a case opened before targets were recorded.
-- resolved_at / outcome: set when the case is resolved (cleared on re-open;
--   kept when a resolved case is closed).
ALTER TABLE cases ADD COLUMN due_at timestamptz;
ALTER TABLE cases ADD COLUMN resolved_at timestamptz;
ALTER TABLE cases ADD COLUMN outcome text;
ALTER TABLE cases ADD COLUMN reopened_count integer NOT NULL DEFAULT 0 CHECK (reopened_count >= 0);

-- A new contact about the same service re-opens the resident's case resolved
-- within the follow-up window: found by this index.
CREATE INDEX cases_recently_resolved_idx ON cases (customer_id, service, resolved_at DESC)
    WHERE status = 'resolved';

-- A contact that came within the follow-up window of the previous contact on
-- its case (failure demand).
ALTER TABLE contacts ADD COLUMN repeat_contact boolean NOT NULL DEFAULT false;

-- Every status change after opening, with who made it and why. The reason is
-- staff's free text and may name the resident: it never leaves this store
-- except to staff allowed to read the case.
CREATE TABLE case_history (
    id          uuid PRIMARY KEY,
    case_id     uuid NOT NULL REFERENCES cases (id),
    from_status text NOT NULL,
    to_status   text NOT NULL,
    reason      text NOT NULL,
    actor       text NOT NULL,
    at          timestamptz NOT NULL
);

CREATE INDEX case_history_case_idx ON case_history (case_id, at, id);

CREATE TABLE case_notes (
    id         uuid PRIMARY KEY,
    case_id    uuid NOT NULL REFERENCES cases (id),
    author     text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE INDEX case_notes_case_idx ON case_notes (case_id, created_at, id);

-- How each contact was wrapped up (routing's `contact.completed`). No foreign
-- key: an outcome may arrive before its contact (the contact's event was
-- redelivered late), and then waits here with applied = false until the
-- contact is stored, when its effect on the case is applied.
CREATE TABLE contact_outcomes (
    contact_id   uuid PRIMARY KEY,
    disposition  text NOT NULL,
    partner      text,
    completed_at timestamptz NOT NULL,
    applied      boolean NOT NULL
);

CREATE INDEX contact_outcomes_pending_idx ON contact_outcomes (contact_id) WHERE NOT applied;
