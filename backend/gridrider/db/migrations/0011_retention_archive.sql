-- Retention and archiving (issue 11, DESIGN.md §3, §8, §9).
--
-- * Photos of incidents finished long ago are deleted from the blob store; their rows stay, marked
--   `purged`, so reports still say they had photos and nothing serves a blob that is gone.
-- * Finished incidents past the archive age move, with everything hanging off them, from the hot tables
--   into the `archive` schema: same table names, same columns, no foreign keys (a row there may point
--   at a hot row or at another archived one), so the hot tables stay bounded without partitioning.
-- * Rows leave `reports` and `incident_events` only into the archive: a DELETE finding no archived copy
--   is refused. That keeps the audit history whole (§8) and every `report_keys` row pointing at a report
--   somewhere, now that `report_keys` (kept forever, §3) no longer has a foreign key to `reports`.

------------------------------------------------------------------------------------------------
-- Photos: a purged state
------------------------------------------------------------------------------------------------

ALTER TABLE photos ADD COLUMN purged_at timestamptz;
ALTER TABLE photos DROP CONSTRAINT photos_state_check;
ALTER TABLE photos ADD CONSTRAINT photos_state_check CHECK (state IN ('pending', 'ready', 'failed', 'purged'));
ALTER TABLE photos ADD CONSTRAINT photos_purged_at_set CHECK ((state = 'purged') = (purged_at IS NOT NULL));

COMMENT ON COLUMN photos.state IS
    'pending until normalise_photos runs, then ready or failed (a failure affects this photo only); purged once the retention job deleted its blobs.';
COMMENT ON COLUMN photos.purged_at IS
    'When the photo retention job deleted the original, display and thumbnail blobs (the keys are kept as a record); NULL while they exist.';

------------------------------------------------------------------------------------------------
-- When an incident finished: the age both retention and archiving judge
------------------------------------------------------------------------------------------------

-- closed: since closing; rejected: since its last change, unless an appeal is still pending (it may
-- come back). Every other state is open or (merged) follows the incident it was merged into.
CREATE FUNCTION incident_finished_at(i incidents) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN i.state = 'closed' THEN i.closed_at
                WHEN i.state = 'rejected' AND i.appeal_state <> 'pending' THEN i.updated_at END;

COMMENT ON FUNCTION incident_finished_at(incidents) IS
    'When a closed or rejected (no appeal pending) incident finished; NULL while it may still change. Retention and archiving count their ages from it.';

-- Both jobs walk finished incidents oldest first in (finished_at, id) pages.
CREATE INDEX incidents_finished_idx ON incidents (incident_finished_at(incidents), id)
    WHERE incident_finished_at(incidents) IS NOT NULL;

-- The member retention job reads deactivated members by deactivation time.
CREATE INDEX members_deactivated_idx ON members (deactivated_at) WHERE status = 'deactivated';

------------------------------------------------------------------------------------------------
-- Archive tables: the hot tables' columns, in the same order, without identities, defaults, checks
-- or foreign keys. A migration that changes a hot table's columns changes its archive twin alike;
-- the archive job compares them before it moves anything.
------------------------------------------------------------------------------------------------

CREATE SCHEMA archive;
COMMENT ON SCHEMA archive IS
    'Finished incidents moved out of the hot tables by the archive job, with everything that hung off them; read-only history.';

CREATE TABLE archive.incidents (LIKE incidents INCLUDING COMMENTS, PRIMARY KEY (id));
CREATE TABLE archive.reports (LIKE reports INCLUDING COMMENTS, PRIMARY KEY (id));
CREATE TABLE archive.photos (LIKE photos INCLUDING COMMENTS, PRIMARY KEY (id));
CREATE TABLE archive.incident_events (LIKE incident_events INCLUDING COMMENTS, PRIMARY KEY (id));
CREATE TABLE archive.verifications (LIKE verifications INCLUDING COMMENTS, PRIMARY KEY (id));
CREATE TABLE archive.escalations (LIKE escalations INCLUDING COMMENTS, PRIMARY KEY (incident_id, cycle, stage, level));
CREATE TABLE archive.notifications (LIKE notifications INCLUDING COMMENTS, PRIMARY KEY (id));
CREATE TABLE archive.deliveries (LIKE deliveries INCLUDING COMMENTS, PRIMARY KEY (id));
CREATE TABLE archive.flags (LIKE flags INCLUDING COMMENTS, PRIMARY KEY (id));
CREATE TABLE archive.open311_requests (LIKE open311_requests INCLUDING COMMENTS, PRIMARY KEY (report_id));

CREATE INDEX archive_reports_incident_id_idx ON archive.reports (incident_id);
CREATE INDEX archive_reports_reporter_id_idx ON archive.reports (reporter_id);
CREATE INDEX archive_photos_report_id_idx ON archive.photos (report_id);
CREATE INDEX archive_photos_incident_id_idx ON archive.photos (incident_id);
-- Photos archived before their retention ran out (only when the archive age is the shorter one): found
-- by the photo retention job, and by the orphan-blob sweep through blob_references, key by key.
CREATE INDEX archive_photos_unpurged_idx ON archive.photos (id) WHERE purged_at IS NULL;
CREATE INDEX archive_photos_original_key_idx ON archive.photos (original_key) WHERE purged_at IS NULL;
CREATE INDEX archive_photos_display_key_idx ON archive.photos (display_key) WHERE purged_at IS NULL;
CREATE INDEX archive_photos_thumb_key_idx ON archive.photos (thumb_key) WHERE purged_at IS NULL;
CREATE INDEX archive_incident_events_incident_id_idx ON archive.incident_events (incident_id, id);
CREATE INDEX archive_verifications_incident_id_idx ON archive.verifications (incident_id);
CREATE INDEX archive_notifications_incident_id_idx ON archive.notifications (incident_id);
CREATE INDEX archive_deliveries_notification_id_idx ON archive.deliveries (notification_id);
CREATE INDEX archive_flags_incident_id_idx ON archive.flags (incident_id);

COMMENT ON TABLE archive.incidents IS 'Archived incidents (finished, past GRIDRIDER_ARCHIVE_AFTER_DAYS), and those merged into them.';
COMMENT ON TABLE archive.reports IS 'Reports of archived incidents; report_keys keeps pointing at them (idempotency is forever).';
COMMENT ON TABLE archive.photos IS 'Photo rows of archived incidents; their blobs are deleted by photo retention.';
COMMENT ON TABLE archive.incident_events IS 'Audit history of archived incidents; append-only like incident_events.';
COMMENT ON TABLE archive.verifications IS 'Riders'' verification answers on archived incidents.';
COMMENT ON TABLE archive.escalations IS 'Escalations sent for archived incidents.';
COMMENT ON TABLE archive.notifications IS 'Notifications about archived incidents.';
COMMENT ON TABLE archive.deliveries IS 'Deliveries of archived notifications, with their outcomes.';
COMMENT ON TABLE archive.flags IS 'Decided anti-gaming flags about archived incidents, their reports or photos.';
COMMENT ON TABLE archive.open311_requests IS 'Open311 service requests whose reports were archived.';

CREATE TRIGGER archive_incident_events_append_only
    BEFORE UPDATE OR DELETE ON archive.incident_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER archive_incident_events_no_truncate
    BEFORE TRUNCATE ON archive.incident_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

------------------------------------------------------------------------------------------------
-- Rows leave reports and incident_events only into the archive
------------------------------------------------------------------------------------------------

CREATE FUNCTION refuse_unarchived_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    archived boolean;
BEGIN
    IF TG_TABLE_NAME = 'incident_events' THEN
        archived := EXISTS (SELECT 1 FROM archive.incident_events a WHERE a.id = OLD.id);
    ELSIF TG_TABLE_NAME = 'reports' THEN
        archived := EXISTS (SELECT 1 FROM archive.reports a WHERE a.id = OLD.id);
    ELSE
        RAISE EXCEPTION 'refuse_unarchived_delete() does not know %', TG_TABLE_NAME;
    END IF;
    IF NOT archived THEN
        RAISE EXCEPTION '% is append-only: a row leaves it only into archive.%', TG_TABLE_NAME, TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation',
                  DETAIL = format('DELETE of id %s refused: no archived copy', OLD.id),
                  HINT = 'the archive job copies a row into the archive schema before deleting it';
    END IF;
    RETURN OLD;
END;
$$;

COMMENT ON FUNCTION refuse_unarchived_delete() IS
    'Trigger function that refuses a DELETE from reports or incident_events unless the row was copied into the archive schema first.';

DROP TRIGGER incident_events_append_only ON incident_events;
CREATE TRIGGER incident_events_append_only
    BEFORE UPDATE ON incident_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER incident_events_archive_only
    BEFORE DELETE ON incident_events
    FOR EACH ROW EXECUTE FUNCTION refuse_unarchived_delete();

CREATE TRIGGER reports_archive_only
    BEFORE DELETE ON reports
    FOR EACH ROW EXECUTE FUNCTION refuse_unarchived_delete();

-- report_keys outlives the reports it names (they may move to archive.reports), so its foreign key
-- goes; a new key must still name an existing report, which intake inserts in the same transaction.
ALTER TABLE report_keys DROP CONSTRAINT report_keys_report_id_fkey;

CREATE FUNCTION report_keys_report_exists() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- KEY SHARE, as the foreign key took: the report cannot be deleted before this commits.
    PERFORM 1 FROM reports r WHERE r.id = NEW.report_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'report_keys: report % does not exist', NEW.report_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION report_keys_report_exists() IS
    'What the dropped foreign key checked on insert: a new report_keys row names a report that exists.';

CREATE TRIGGER report_keys_report_exists
    BEFORE INSERT OR UPDATE OF report_id ON report_keys
    FOR EACH ROW EXECUTE FUNCTION report_keys_report_exists();

COMMENT ON COLUMN report_keys.report_id IS
    'Report created by the first submission: in reports, or in archive.reports once its incident was archived (no foreign key for that reason; a trigger checks new rows).';

------------------------------------------------------------------------------------------------
-- Blob references: purged photos hold none; archived photos not yet purged still do
------------------------------------------------------------------------------------------------

CREATE OR REPLACE VIEW blob_references (key) AS
    SELECT original_key FROM photos WHERE purged_at IS NULL
    UNION ALL
    SELECT display_key FROM photos WHERE display_key IS NOT NULL AND purged_at IS NULL
    UNION ALL
    SELECT thumb_key FROM photos WHERE thumb_key IS NOT NULL AND purged_at IS NULL
    UNION ALL
    SELECT original_key FROM archive.photos WHERE purged_at IS NULL
    UNION ALL
    SELECT display_key FROM archive.photos WHERE display_key IS NOT NULL AND purged_at IS NULL
    UNION ALL
    SELECT thumb_key FROM archive.photos WHERE thumb_key IS NOT NULL AND purged_at IS NULL;
