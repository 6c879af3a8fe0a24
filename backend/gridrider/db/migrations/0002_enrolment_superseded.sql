-- A new code for a member retires the unused codes handed out before it (a lost printout stays useless).
ALTER TABLE enrolments ADD COLUMN superseded_at timestamptz;
COMMENT ON COLUMN enrolments.superseded_at IS
    'When a newer code for the same member replaced this unused one; a superseded code no longer signs in.';
