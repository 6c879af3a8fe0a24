-- Grid work (DESIGN.md §2b, §2c): riders' "nearby" reads incidents by H3 cell, and escalations are
-- recorded per incident, cycle, stage and level so each level is alerted at most once.

CREATE INDEX incidents_cell_idx ON incidents (cell);

CREATE TABLE escalations (
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE RESTRICT,
    cycle       integer NOT NULL CHECK (cycle >= 1),
    stage       text NOT NULL CHECK (stage IN ('dispatch', 'accept', 'resolve')),
    level       integer NOT NULL CHECK (level >= 1),
    area_id     bigint REFERENCES areas (id) ON DELETE RESTRICT,
    sent_at     timestamptz NOT NULL,
    PRIMARY KEY (incident_id, cycle, stage, level)
);

COMMENT ON TABLE escalations IS
    'Each escalation alert sent for an overdue stage: at most one per incident, cycle, stage and level.';
COMMENT ON COLUMN escalations.incident_id IS 'Incident whose stage is overdue.';
COMMENT ON COLUMN escalations.cycle IS 'Cycle of the incident the stage belongs to.';
COMMENT ON COLUMN escalations.stage IS 'dispatch, accept or resolve.';
COMMENT ON COLUMN escalations.level IS '1 = one level above the owners, 2 = two levels above, … up to the county.';
COMMENT ON COLUMN escalations.area_id IS 'Area whose supervisors were alerted.';
COMMENT ON COLUMN escalations.sent_at IS 'When the escalation was decided (injectable clock).';
