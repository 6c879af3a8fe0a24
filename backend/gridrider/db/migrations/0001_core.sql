-- 0001_core: the first schema of gridrider (see DESIGN.md sections 2, 3, 5, 7).
--
-- Forward-only; applied by `gridrider migrate` inside one transaction (so no BEGIN/COMMIT here;
-- the runner owns schema_migrations). PostgreSQL >= 14, no extensions.
--
-- Conventions: ids are bigint identities; times are timestamptz named *_at; text enums are
-- CHECKed; positions are WGS-84 degrees (a NaN fails every range CHECK below, because NaN sorts
-- above every number); `cell` is an H3 resolution-9 cell id. Every table and column is commented.

------------------------------------------------------------------------------------------------
-- Append-only guard, shared by points_ledger and incident_events.
------------------------------------------------------------------------------------------------

CREATE FUNCTION refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              DETAIL = format('%s on %s refused', TG_OP, TG_TABLE_NAME),
              HINT = 'append a correcting row instead';
END;
$$;

COMMENT ON FUNCTION refuse_change() IS
    'Trigger function that refuses UPDATE, DELETE and TRUNCATE on append-only tables.';

------------------------------------------------------------------------------------------------
-- People
------------------------------------------------------------------------------------------------

CREATE TABLE members (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role                text NOT NULL
                        CHECK (role IN ('courier', 'grid_member', 'supervisor', 'admin', 'system')),
    display_name        text,
    pseudonym           text NOT NULL UNIQUE,
    phone               text UNIQUE,
    platform            text CHECK (platform IN ('meituan', 'eleme', 'sf', 'jd', 'other')),
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'deactivated', 'pseudonymised')),
    privacy_accepted_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    deactivated_at      timestamptz,
    CONSTRAINT members_phone_required
        CHECK (phone IS NOT NULL OR role = 'system' OR status = 'pseudonymised'),
    CONSTRAINT members_deactivated_at_set
        CHECK (status = 'active' OR deactivated_at IS NOT NULL)
);

COMMENT ON TABLE members IS
    'Everyone who can sign in or act: couriers, grid members, supervisors, admins, and the system account (Open311 intake).';
COMMENT ON COLUMN members.id IS 'Surrogate key of the member.';
COMMENT ON COLUMN members.role IS
    'What the member may do: courier reports, grid_member works incidents, supervisor oversees a subtree, admin configures, system is machine intake (never earns points).';
COMMENT ON COLUMN members.display_name IS
    'Real or chosen name shown to supervisors; NULL when unknown or after pseudonymisation.';
COMMENT ON COLUMN members.pseudonym IS
    'Stable public alias shown to grid members and in rankings instead of the real name.';
COMMENT ON COLUMN members.phone IS
    'Mobile number (normalised by the app); identifies the person across re-enrolments and its last four digits confirm sign-in; NULL only for system or pseudonymised members.';
COMMENT ON COLUMN members.platform IS
    'Delivery platform a courier rides for, for reporting by platform; NULL for non-couriers.';
COMMENT ON COLUMN members.status IS
    'active can sign in; deactivated cannot; pseudonymised had personal data removed after the retention period.';
COMMENT ON COLUMN members.privacy_accepted_at IS
    'When the member accepted the privacy notice at enrolment (consent record); NULL if not yet.';
COMMENT ON COLUMN members.created_at IS 'When the member row was created.';
COMMENT ON COLUMN members.deactivated_at IS
    'When the member was deactivated; starts the retention period before pseudonymisation.';

------------------------------------------------------------------------------------------------
-- Areas: county > street > community > grid
------------------------------------------------------------------------------------------------

CREATE TABLE areas (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE
                -- Codes build `path`, which is matched with LIKE: no '/', '%', '_' or '\'.
                CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9.-]*$'),
    level       text NOT NULL CHECK (level IN ('county', 'street', 'community', 'grid')),
    parent_id   bigint REFERENCES areas (id) ON DELETE RESTRICT,
    name_zh     text NOT NULL,
    name_en     text,
    polygon     jsonb CHECK (polygon IS NULL OR polygon ->> 'type' IN ('Polygon', 'MultiPolygon')),
    bbox        double precision[]
                CHECK (bbox IS NULL OR (array_ndims(bbox) = 1 AND cardinality(bbox) = 4
                                        AND bbox[1] <= bbox[3] AND bbox[2] <= bbox[4])),
    area_m2     double precision CHECK (area_m2 >= 0),
    path        text NOT NULL UNIQUE CHECK (path LIKE '%/'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT areas_parent_required CHECK (level = 'county' OR parent_id IS NOT NULL),
    CONSTRAINT areas_bbox_with_polygon CHECK ((polygon IS NULL) = (bbox IS NULL)),
    CONSTRAINT areas_not_own_parent CHECK (parent_id <> id)
);

CREATE INDEX areas_parent_id_idx ON areas (parent_id);
CREATE INDEX areas_path_prefix_idx ON areas (path text_pattern_ops);

COMMENT ON TABLE areas IS
    'Administrative tree (county, street, community, grid) that routes incidents and scopes every read and write.';
COMMENT ON COLUMN areas.id IS 'Surrogate key of the area.';
COMMENT ON COLUMN areas.code IS
    'Unique short code of the area (letters, digits, dot, hyphen); one segment of the materialised path.';
COMMENT ON COLUMN areas.level IS 'Level in the tree: county, street, community or grid.';
COMMENT ON COLUMN areas.parent_id IS
    'Enclosing area one or more levels up; NULL only for a county.';
COMMENT ON COLUMN areas.name_zh IS 'Chinese name shown to people.';
COMMENT ON COLUMN areas.name_en IS 'English name, when one is configured.';
COMMENT ON COLUMN areas.polygon IS
    'Boundary as a GeoJSON Polygon or MultiPolygon geometry in WGS-84 (lon, lat); routing builds an in-process STRtree from it.';
COMMENT ON COLUMN areas.bbox IS
    'Bounding box of the polygon as {min_lon, min_lat, max_lon, max_lat}, for cheap pre-filtering.';
COMMENT ON COLUMN areas.area_m2 IS
    'Surface of the polygon in square metres; overlapping grids route to the smallest.';
COMMENT ON COLUMN areas.path IS
    'Materialised path of codes with a trailing slash (''CTY/ST1/COM03/G005/''); a subtree is `path LIKE scope_path || ''%''`, and the trailing slash keeps ST1 from matching ST10. Filled and checked by a trigger.';
COMMENT ON COLUMN areas.created_at IS 'When the area was created.';
COMMENT ON COLUMN areas.updated_at IS
    'When the area (notably its polygon) last changed; routing rebuilds its index after it moves.';

-- The path is what scoping trusts, so the database keeps it right: it must equal the parent's
-- path plus this code plus '/', the parent must sit on a higher level, and an area that has
-- children cannot be moved or recoded (their paths would go stale).
CREATE FUNCTION areas_check_path() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parent_path  text;
    parent_level text;
    expected     text;
BEGIN
    IF NEW.parent_id IS NULL THEN
        expected := NEW.code || '/';
    ELSE
        SELECT a.path, a.level INTO parent_path, parent_level FROM areas a WHERE a.id = NEW.parent_id;
        IF NOT FOUND THEN
            RETURN NEW;  -- the foreign key reports the missing parent
        END IF;
        IF array_position(ARRAY['county', 'street', 'community', 'grid'], parent_level)
           >= array_position(ARRAY['county', 'street', 'community', 'grid'], NEW.level) THEN
            RAISE EXCEPTION 'areas: a % cannot be inside a %', NEW.level, parent_level
                USING ERRCODE = 'check_violation';
        END IF;
        expected := parent_path || NEW.code || '/';
    END IF;

    IF NEW.path IS NULL THEN
        NEW.path := expected;
    ELSIF NEW.path <> expected THEN
        RAISE EXCEPTION 'areas: path % should be %', NEW.path, expected
            USING ERRCODE = 'check_violation';
    END IF;

    IF TG_OP = 'UPDATE' AND NEW.path <> OLD.path
       AND EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = NEW.id) THEN
        RAISE EXCEPTION 'areas: % has children and cannot be moved or recoded', OLD.code
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION areas_check_path() IS
    'Fills areas.path when NULL and refuses a path that does not match the parent chain.';

CREATE TRIGGER areas_check_path
    BEFORE INSERT OR UPDATE OF code, parent_id, path, level ON areas
    FOR EACH ROW EXECUTE FUNCTION areas_check_path();

CREATE TABLE member_areas (
    member_id   bigint NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    area_id     bigint NOT NULL REFERENCES areas (id) ON DELETE RESTRICT,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, area_id)
);

CREATE INDEX member_areas_area_id_idx ON member_areas (area_id);

COMMENT ON TABLE member_areas IS
    'Which areas a member belongs to: a grid member''s grids, a supervisor''s subtree roots.';
COMMENT ON COLUMN member_areas.member_id IS 'The member.';
COMMENT ON COLUMN member_areas.area_id IS
    'An area the member works in or supervises (with everything under it for a supervisor).';
COMMENT ON COLUMN member_areas.created_at IS 'When the member was attached to the area.';

CREATE TABLE enrolments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code_hash       bytea NOT NULL UNIQUE CHECK (octet_length(code_hash) = 32),
    member_id       bigint NOT NULL REFERENCES members (id) ON DELETE RESTRICT,
    role            text NOT NULL CHECK (role IN ('courier', 'grid_member', 'supervisor', 'admin')),
    area_ids        bigint[] NOT NULL DEFAULT '{}',
    created_by      bigint REFERENCES members (id) ON DELETE RESTRICT,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_at       timestamptz,
    CONSTRAINT enrolments_expiry_after_creation CHECK (expires_at > created_at)
);

CREATE INDEX enrolments_member_id_idx ON enrolments (member_id);
CREATE INDEX enrolments_created_by_idx ON enrolments (created_by);

COMMENT ON TABLE enrolments IS
    'One-time sign-in codes issued by a supervisor or admin to enrol a member or replace a lost phone.';
COMMENT ON COLUMN enrolments.id IS 'Surrogate key of the enrolment.';
COMMENT ON COLUMN enrolments.code_hash IS
    'SHA-256 of the one-time code; the code itself is shown once and never stored.';
COMMENT ON COLUMN enrolments.member_id IS
    'Member the code signs in (same phone, same member: the ledger survives a lost phone).';
COMMENT ON COLUMN enrolments.role IS 'Role granted when the code is used.';
COMMENT ON COLUMN enrolments.area_ids IS
    'Areas the member is attached to when the code is used (the scope of the enrolment).';
COMMENT ON COLUMN enrolments.created_by IS
    'Supervisor or admin who issued the code; NULL when issued from the CLI.';
COMMENT ON COLUMN enrolments.created_at IS 'When the code was issued.';
COMMENT ON COLUMN enrolments.expires_at IS 'After this time the code no longer signs in.';
COMMENT ON COLUMN enrolments.used_at IS 'When the code was redeemed; a used code cannot be used again.';
COMMENT ON COLUMN enrolments.failed_attempts IS
    'Sign-ins with this code and wrong phone digits; at 5 the code locks.';
COMMENT ON COLUMN enrolments.locked_at IS 'When the code locked after too many wrong attempts.';

CREATE TABLE sessions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id       bigint NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    token_hash      bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    device          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz
);

CREATE INDEX sessions_member_id_idx ON sessions (member_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

COMMENT ON TABLE sessions IS
    'Device sessions: opaque bearer tokens, stored hashed, 90 days sliding, revocable.';
COMMENT ON COLUMN sessions.id IS 'Surrogate key of the session.';
COMMENT ON COLUMN sessions.member_id IS 'Member signed in by this session.';
COMMENT ON COLUMN sessions.token_hash IS
    'SHA-256 of the bearer token; the token itself is only ever held by the device.';
COMMENT ON COLUMN sessions.device IS
    'Short device description (user agent summary) so a member or supervisor can tell sessions apart.';
COMMENT ON COLUMN sessions.created_at IS 'When the session was opened (sign-in).';
COMMENT ON COLUMN sessions.last_seen_at IS 'Last authenticated request; drives the sliding expiry.';
COMMENT ON COLUMN sessions.expires_at IS 'After this time the token no longer authenticates.';
COMMENT ON COLUMN sessions.revoked_at IS 'When the session was revoked (sign-out, lost phone, deactivation).';

------------------------------------------------------------------------------------------------
-- Reference data
------------------------------------------------------------------------------------------------

CREATE TABLE categories (
    code            text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]*$'),
    name_zh         text NOT NULL,
    name_en         text NOT NULL,
    icon            text,
    severity        text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    life_safety     boolean NOT NULL DEFAULT false,
    merge_radius_m  integer NOT NULL CHECK (merge_radius_m > 0),
    merge_window    interval NOT NULL CHECK (merge_window > interval '0'),
    weight          numeric(4, 2) NOT NULL CHECK (weight > 0),
    enabled         boolean NOT NULL DEFAULT true,
    sort_order      integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE categories IS
    'Hazard categories (DESIGN 2a), seeded by the app and editable by an admin.';
COMMENT ON COLUMN categories.code IS 'Stable machine code of the category (e.g. flying_wire_charging).';
COMMENT ON COLUMN categories.name_zh IS 'Chinese name shown on the category tile.';
COMMENT ON COLUMN categories.name_en IS 'English name.';
COMMENT ON COLUMN categories.icon IS 'Icon identifier of the PWA tile.';
COMMENT ON COLUMN categories.severity IS
    'low, medium, high or critical; sets push TTL and urgency and display order of alerts.';
COMMENT ON COLUMN categories.life_safety IS
    'Life-safety hazard: 1 h accept deadline, SMS fallback, community alert at creation, no intake rate limit.';
COMMENT ON COLUMN categories.merge_radius_m IS
    'A report within this distance of an open incident''s origin may merge into it.';
COMMENT ON COLUMN categories.merge_window IS
    'A report merges only if its capture time is within this of the incident''s latest capture.';
COMMENT ON COLUMN categories.weight IS 'Multiplier of the first_report points (10 x weight).';
COMMENT ON COLUMN categories.enabled IS 'Disabled categories are refused at intake and hidden in the PWA.';
COMMENT ON COLUMN categories.sort_order IS 'Position of the tile in the PWA grid (ascending).';
COMMENT ON COLUMN categories.updated_at IS 'When an admin last changed the category.';

CREATE TABLE calendar_overrides (
    day         date PRIMARY KEY,
    is_workday  boolean NOT NULL,
    source      text NOT NULL DEFAULT 'admin',
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE calendar_overrides IS
    'Working-day overrides for years the chinesecalendar package does not know yet (holidays, adjusted workdays).';
COMMENT ON COLUMN calendar_overrides.day IS 'The Asia/Shanghai calendar day being overridden.';
COMMENT ON COLUMN calendar_overrides.is_workday IS
    'True if the day is a working day (e.g. an adjusted Saturday), false if it is a holiday.';
COMMENT ON COLUMN calendar_overrides.source IS
    'Where the override came from (e.g. admin, or the State Council notice it was loaded from).';
COMMENT ON COLUMN calendar_overrides.note IS 'Free text, e.g. the holiday''s name.';
COMMENT ON COLUMN calendar_overrides.created_at IS 'When the override was loaded.';

------------------------------------------------------------------------------------------------
-- Incidents and reports (they reference each other: incidents.origin_report_id gets its foreign
-- key after reports exists)
------------------------------------------------------------------------------------------------

CREATE TABLE incidents (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    category                text NOT NULL REFERENCES categories (code) ON DELETE RESTRICT,
    lat                     double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                     double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    cell                    bigint NOT NULL,
    area_id                 bigint REFERENCES areas (id) ON DELETE RESTRICT,
    state                   text NOT NULL
                            CHECK (state IN ('unrouted', 'dispatched', 'accepted', 'resolved',
                                             'closed', 'rejected', 'merged')),
    cycle                   integer NOT NULL DEFAULT 1 CHECK (cycle >= 1),
    complex_state           text NOT NULL DEFAULT 'none'
                            CHECK (complex_state IN ('none', 'requested', 'approved', 'declined')),
    complex_reason          text,
    report_count            integer NOT NULL DEFAULT 1 CHECK (report_count >= 0),
    origin_report_id        bigint,
    recurrence_of_id        bigint REFERENCES incidents (id) ON DELETE RESTRICT,
    merged_into_id          bigint REFERENCES incidents (id) ON DELETE RESTRICT,
    last_captured_at        timestamptz NOT NULL,
    transfers_this_cycle    integer NOT NULL DEFAULT 0 CHECK (transfers_this_cycle >= 0),
    first_reporter_id       bigint REFERENCES members (id) ON DELETE RESTRICT,
    reject_reason           text CHECK (reject_reason IN ('not_a_hazard', 'cannot_locate', 'out_of_scope')),
    appeal_state            text NOT NULL DEFAULT 'none'
                            CHECK (appeal_state IN ('none', 'pending', 'upheld', 'dismissed')),
    dispatch_due_at         timestamptz,
    dispatched_at           timestamptz,
    dispatch_overdue_at     timestamptz,
    accept_due_at           timestamptz,
    accepted_at             timestamptz,
    accept_overdue_at       timestamptz,
    resolve_due_at          timestamptz,
    resolved_at             timestamptz,
    resolve_overdue_at      timestamptz,
    closed_at               timestamptz,
    reached_grid_at         timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT incidents_merged_has_target
        CHECK ((state = 'merged') = (merged_into_id IS NOT NULL)),
    CONSTRAINT incidents_not_merged_into_self CHECK (merged_into_id <> id),
    CONSTRAINT incidents_not_recurrence_of_self CHECK (recurrence_of_id <> id),
    CONSTRAINT incidents_rejected_has_reason CHECK (state <> 'rejected' OR reject_reason IS NOT NULL),
    CONSTRAINT incidents_complex_has_reason CHECK (complex_state = 'none' OR complex_reason IS NOT NULL),
    CONSTRAINT incidents_state_times CHECK (
        (state <> 'dispatched' OR dispatched_at IS NOT NULL)
        AND (state <> 'accepted' OR accepted_at IS NOT NULL)
        AND (state <> 'resolved' OR resolved_at IS NOT NULL)
        AND (state <> 'closed' OR closed_at IS NOT NULL))
);

-- Merge candidates: open incidents of a category in the H3 cells a radius touches.
CREATE INDEX incidents_merge_candidates_idx ON incidents (category, cell)
    WHERE state IN ('unrouted', 'dispatched', 'accepted');
-- Recurrence: same category nearby, resolved recently.
CREATE INDEX incidents_recurrence_candidates_idx ON incidents (category, cell, resolved_at)
    WHERE state IN ('resolved', 'closed');
CREATE INDEX incidents_area_state_idx ON incidents (area_id, state);
-- Deadline cron: each stage's due time while the incident sits in that stage.
CREATE INDEX incidents_dispatch_due_idx ON incidents (dispatch_due_at) WHERE state = 'unrouted';
CREATE INDEX incidents_accept_due_idx ON incidents (accept_due_at) WHERE state = 'dispatched';
CREATE INDEX incidents_resolve_due_idx ON incidents (resolve_due_at) WHERE state = 'accepted';
-- SMS 15-minute clock for life-safety incidents waiting for acceptance.
CREATE INDEX incidents_reached_grid_idx ON incidents (reached_grid_at) WHERE state = 'dispatched';
-- Automatic close 7 days after resolution.
CREATE INDEX incidents_close_due_idx ON incidents (resolved_at) WHERE state = 'resolved';
CREATE INDEX incidents_origin_report_id_idx ON incidents (origin_report_id);
CREATE INDEX incidents_recurrence_of_id_idx ON incidents (recurrence_of_id) WHERE recurrence_of_id IS NOT NULL;
CREATE INDEX incidents_merged_into_id_idx ON incidents (merged_into_id) WHERE merged_into_id IS NOT NULL;
CREATE INDEX incidents_first_reporter_id_idx ON incidents (first_reporter_id) WHERE first_reporter_id IS NOT NULL;

COMMENT ON TABLE incidents IS
    'One hazard at one place: the unit grid teams work, deadlines run on and points follow; reports merge into it.';
COMMENT ON COLUMN incidents.id IS 'Surrogate key of the incident.';
COMMENT ON COLUMN incidents.category IS 'Hazard category; merges only happen within one category.';
COMMENT ON COLUMN incidents.lat IS
    'Latitude (WGS-84) of the origin report; the incident keeps this point when reports merge in.';
COMMENT ON COLUMN incidents.lon IS 'Longitude (WGS-84) of the origin report.';
COMMENT ON COLUMN incidents.cell IS 'H3 resolution-9 cell of the point, for merge-candidate lookup and advisory locks.';
COMMENT ON COLUMN incidents.area_id IS
    'Owning area: the grid it is routed to, or for an unrouted incident the smallest area (or county) whose supervisors own it.';
COMMENT ON COLUMN incidents.state IS
    'Workflow state (DESIGN 2b): unrouted, dispatched, accepted, resolved, closed, rejected or merged.';
COMMENT ON COLUMN incidents.cycle IS
    'Work cycle, 1 at creation, +1 on each reopen or upheld appeal; deadlines, transfers and awards are per cycle.';
COMMENT ON COLUMN incidents.complex_state IS
    'Complex-case request of this cycle: none, requested, approved (15 working days to resolve) or declined.';
COMMENT ON COLUMN incidents.complex_reason IS 'Why the grid member asked for complex-case treatment.';
COMMENT ON COLUMN incidents.report_count IS 'Number of reports currently linked to the incident (origin plus corroborations).';
COMMENT ON COLUMN incidents.origin_report_id IS
    'Report that created the incident; its point is the merge origin. Nullable only because reports and incidents reference each other.';
COMMENT ON COLUMN incidents.recurrence_of_id IS
    'Earlier incident of the same category nearby resolved within 7 days before this one was created.';
COMMENT ON COLUMN incidents.merged_into_id IS 'Incident this one was merged into; set exactly when state is merged.';
COMMENT ON COLUMN incidents.last_captured_at IS
    'Latest capture time among its reports; the merge window is measured from it.';
COMMENT ON COLUMN incidents.transfers_this_cycle IS
    'Transfers by grid members in the current cycle (at most 2; supervisors are not limited).';
COMMENT ON COLUMN incidents.first_reporter_id IS
    'Courier credited as first reporter, fixed at accept (or rejection if earlier); NULL until then or when only the system reported.';
COMMENT ON COLUMN incidents.reject_reason IS
    'Why the incident was rejected: not_a_hazard (costs the first reporter points), cannot_locate or out_of_scope.';
COMMENT ON COLUMN incidents.appeal_state IS
    'The first reporter''s appeal against a rejection in this cycle: none, pending, upheld or dismissed.';
COMMENT ON COLUMN incidents.dispatch_due_at IS 'When the incident must be dispatched to a grid (24 h after creation).';
COMMENT ON COLUMN incidents.dispatched_at IS 'When the incident was first dispatched to a grid in this cycle (met at creation when routed).';
COMMENT ON COLUMN incidents.dispatch_overdue_at IS 'When the dispatch stage was marked overdue (once per cycle).';
COMMENT ON COLUMN incidents.accept_due_at IS
    'When a grid member must accept (24 h after dispatch, 1 h for life-safety); a transfer does not move it.';
COMMENT ON COLUMN incidents.accepted_at IS 'When a grid member accepted the incident in this cycle.';
COMMENT ON COLUMN incidents.accept_overdue_at IS 'When the accept stage was marked overdue (once per cycle).';
COMMENT ON COLUMN incidents.resolve_due_at IS
    'When the incident must be resolved (7 days after acceptance, or 18:00 of the 15th working day once complex is approved).';
COMMENT ON COLUMN incidents.resolved_at IS 'When the grid member resolved it with a proof photo; closing counts 7 days from here.';
COMMENT ON COLUMN incidents.resolve_overdue_at IS
    'When the resolve stage was marked overdue; cleared when a complex approval moves the due time past now.';
COMMENT ON COLUMN incidents.closed_at IS 'When the incident closed automatically 7 days after resolution.';
COMMENT ON COLUMN incidents.reached_grid_at IS
    'When the latest dispatch, transfer or reopen reached a grid; starts the 15-minute SMS clock for life-safety.';
COMMENT ON COLUMN incidents.created_at IS 'When the incident was created from its origin report.';
COMMENT ON COLUMN incidents.updated_at IS 'When the incident row last changed.';

CREATE TABLE reports (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reporter_id         bigint NOT NULL REFERENCES members (id) ON DELETE RESTRICT,
    client_id           uuid NOT NULL,
    category            text NOT NULL REFERENCES categories (code) ON DELETE RESTRICT,
    lat                 double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                 double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    accuracy_m          real CHECK (accuracy_m >= 0 AND accuracy_m <= 2000),
    position_source     text NOT NULL CHECK (position_source IN ('gps', 'network', 'manual')),
    cell                bigint NOT NULL,
    captured_at         timestamptz NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    queued_for_s        integer CHECK (queued_for_s >= 0),
    note                text CHECK (char_length(note) <= 500),
    state               text NOT NULL DEFAULT 'received' CHECK (state IN ('received', 'processed')),
    incident_id         bigint REFERENCES incidents (id) ON DELETE RESTRICT,
    flags               text[] NOT NULL DEFAULT '{}',
    body_fingerprint    bytea NOT NULL CHECK (octet_length(body_fingerprint) = 32),
    processed_at        timestamptz,
    CONSTRAINT reports_reporter_client_id_key UNIQUE (reporter_id, client_id),
    CONSTRAINT reports_processed_has_incident
        CHECK ((state = 'processed') = (incident_id IS NOT NULL)),
    CONSTRAINT reports_processed_has_time CHECK (state = 'received' OR processed_at IS NOT NULL)
);

CREATE INDEX reports_incident_id_idx ON reports (incident_id);
CREATE INDEX reports_reporter_id_desc_idx ON reports (reporter_id, id DESC);

COMMENT ON TABLE reports IS
    'What a courier (or the Open311 system account) sent: one hazard sighting with position, time and up to 3 photos.';
COMMENT ON COLUMN reports.id IS 'Surrogate key of the report.';
COMMENT ON COLUMN reports.reporter_id IS 'Member who sent the report.';
COMMENT ON COLUMN reports.client_id IS
    'UUID made by the phone''s outbox; with reporter_id it makes a resend idempotent.';
COMMENT ON COLUMN reports.category IS 'Hazard category chosen by the reporter.';
COMMENT ON COLUMN reports.lat IS 'Latitude (WGS-84) frozen when the rider tapped mark.';
COMMENT ON COLUMN reports.lon IS 'Longitude (WGS-84) frozen when the rider tapped mark.';
COMMENT ON COLUMN reports.accuracy_m IS
    'Reported position accuracy in metres (over 200 is flagged coarse_position); NULL when the source gives none.';
COMMENT ON COLUMN reports.position_source IS 'Where the position came from: gps, network or manual placement.';
COMMENT ON COLUMN reports.cell IS 'H3 resolution-9 cell of the point.';
COMMENT ON COLUMN reports.captured_at IS 'When the rider tapped mark (phone clock); orders first reporters and drives merging.';
COMMENT ON COLUMN reports.received_at IS 'When the server first accepted the report.';
COMMENT ON COLUMN reports.queued_for_s IS
    'Seconds the report waited in the phone''s outbox before this send, for offline metrics; never part of the fingerprint.';
COMMENT ON COLUMN reports.note IS 'Optional free text from the reporter, at most 500 characters.';
COMMENT ON COLUMN reports.state IS 'received until process_report links it to an incident, then processed.';
COMMENT ON COLUMN reports.incident_id IS 'Incident the report created or corroborates; moves with a merge.';
COMMENT ON COLUMN reports.flags IS
    'Intake flags such as coarse_position or old_capture; informational, not anti-gaming flags (see flags).';
COMMENT ON COLUMN reports.body_fingerprint IS
    'SHA-256 over category, lat, lon, accuracy_m, position_source, captured_at, note and the ordered photo SHA-256s; a replay with a different fingerprint is client_id_reused.';
COMMENT ON COLUMN reports.processed_at IS 'When process_report linked the report to an incident.';

ALTER TABLE incidents
    ADD CONSTRAINT incidents_origin_report_id_fkey
    FOREIGN KEY (origin_report_id) REFERENCES reports (id) ON DELETE RESTRICT;

CREATE TABLE report_keys (
    reporter_id bigint NOT NULL REFERENCES members (id) ON DELETE RESTRICT,
    client_id   uuid NOT NULL,
    report_id   bigint NOT NULL REFERENCES reports (id) ON DELETE RESTRICT,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reporter_id, client_id)
);

COMMENT ON TABLE report_keys IS
    'Idempotency record of every (reporter, client_id) ever accepted, kept forever and unpartitioned; looked up first on every submission.';
COMMENT ON COLUMN report_keys.reporter_id IS 'Member who sent the report.';
COMMENT ON COLUMN report_keys.client_id IS 'The phone''s UUID for the report.';
COMMENT ON COLUMN report_keys.report_id IS 'Report created for this key; a replay answers with its current state.';
COMMENT ON COLUMN report_keys.created_at IS 'When the key was first accepted.';

CREATE TABLE incident_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE RESTRICT,
    cycle       integer NOT NULL CHECK (cycle >= 1),
    kind        text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]*$'),
    actor_id    bigint REFERENCES members (id) ON DELETE RESTRICT,
    data        jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX incident_events_incident_id_idx ON incident_events (incident_id, id);
CREATE INDEX incident_events_actor_id_idx ON incident_events (actor_id) WHERE actor_id IS NOT NULL;

CREATE TRIGGER incident_events_append_only
    BEFORE UPDATE OR DELETE ON incident_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER incident_events_no_truncate
    BEFORE TRUNCATE ON incident_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

COMMENT ON TABLE incident_events IS
    'Append-only audit history of each incident (every action, deadline mark and escalation); kept at least 6 months.';
COMMENT ON COLUMN incident_events.id IS 'Surrogate key; also the order of events.';
COMMENT ON COLUMN incident_events.incident_id IS 'Incident the event happened to.';
COMMENT ON COLUMN incident_events.cycle IS 'Cycle of the incident when the event happened.';
COMMENT ON COLUMN incident_events.kind IS
    'What happened, e.g. created, dispatched, accepted, transferred, overdue, escalated, appeal_dismissed.';
COMMENT ON COLUMN incident_events.actor_id IS 'Member who acted; NULL for automatic events (cron, jobs).';
COMMENT ON COLUMN incident_events.data IS 'Event details, e.g. from/to grid, reason, escalation level.';
COMMENT ON COLUMN incident_events.occurred_at IS 'When it happened (from the injectable clock).';

CREATE TABLE verifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE RESTRICT,
    cycle       integer NOT NULL CHECK (cycle >= 1),
    member_id   bigint NOT NULL REFERENCES members (id) ON DELETE RESTRICT,
    answer      text NOT NULL CHECK (answer IN ('still_there', 'gone', 'fixed', 'not_fixed')),
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon         double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    distance_m  real NOT NULL CHECK (distance_m >= 0),
    answered_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT verifications_one_per_cycle UNIQUE (incident_id, member_id, cycle)
);

CREATE INDEX verifications_member_id_idx ON verifications (member_id);

COMMENT ON TABLE verifications IS
    'Couriers'' answers to "still there / fixed?" for hazards they pass; two not_fixed reopen a resolved incident.';
COMMENT ON COLUMN verifications.id IS 'Surrogate key of the answer.';
COMMENT ON COLUMN verifications.incident_id IS 'Incident being verified.';
COMMENT ON COLUMN verifications.cycle IS 'Cycle the answer belongs to (one answer per courier per cycle).';
COMMENT ON COLUMN verifications.member_id IS 'Courier who answered.';
COMMENT ON COLUMN verifications.answer IS
    'still_there or gone while open; fixed or not_fixed within 7 days after resolution.';
COMMENT ON COLUMN verifications.lat IS 'Latitude of the courier when answering (proof of presence).';
COMMENT ON COLUMN verifications.lon IS 'Longitude of the courier when answering.';
COMMENT ON COLUMN verifications.distance_m IS 'Distance from the incident in metres; only answers within 300 m are accepted.';
COMMENT ON COLUMN verifications.answered_at IS 'When the answer was recorded.';

------------------------------------------------------------------------------------------------
-- Photos
------------------------------------------------------------------------------------------------

CREATE TABLE photos (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id           bigint REFERENCES reports (id) ON DELETE RESTRICT,
    incident_id         bigint REFERENCES incidents (id) ON DELETE RESTRICT,
    role                text NOT NULL CHECK (role IN ('report', 'proof')),
    position            smallint NOT NULL DEFAULT 0 CHECK (position >= 0),
    original_key        text NOT NULL UNIQUE,
    upload_sha256       bytea NOT NULL CHECK (octet_length(upload_sha256) = 32),
    content_type        text NOT NULL
                        CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp',
                                                'image/heic', 'image/heif')),
    bytes               integer NOT NULL CHECK (bytes > 0),
    width               integer CHECK (width > 0),
    height              integer CHECK (height > 0),
    display_key         text,
    display_type        text CHECK (display_type IN ('image/webp', 'image/jpeg')),
    thumb_key           text,
    dhash               bigint,
    state               text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'ready', 'failed')),
    failure_reason      text,
    reused_of_photo_id  bigint REFERENCES photos (id) ON DELETE RESTRICT,
    created_at          timestamptz NOT NULL DEFAULT now(),
    processed_at        timestamptz,
    CONSTRAINT photos_has_owner CHECK (report_id IS NOT NULL OR incident_id IS NOT NULL),
    CONSTRAINT photos_report_role_has_report CHECK (role <> 'report' OR report_id IS NOT NULL),
    CONSTRAINT photos_proof_role_has_incident CHECK (role <> 'proof' OR incident_id IS NOT NULL),
    CONSTRAINT photos_ready_has_derivatives
        CHECK (state <> 'ready' OR (display_key IS NOT NULL AND thumb_key IS NOT NULL)),
    CONSTRAINT photos_failed_has_reason CHECK (state <> 'failed' OR failure_reason IS NOT NULL),
    CONSTRAINT photos_not_reuse_of_self CHECK (reused_of_photo_id <> id)
);

CREATE UNIQUE INDEX photos_report_position_idx ON photos (report_id, position);
CREATE INDEX photos_incident_id_idx ON photos (incident_id);
CREATE INDEX photos_display_key_idx ON photos (display_key) WHERE display_key IS NOT NULL;
CREATE INDEX photos_thumb_key_idx ON photos (thumb_key) WHERE thumb_key IS NOT NULL;
CREATE INDEX photos_reused_of_photo_id_idx ON photos (reused_of_photo_id) WHERE reused_of_photo_id IS NOT NULL;
-- Reuse detection compares dHashes of the last 30 days.
CREATE INDEX photos_dhash_recent_idx ON photos (created_at) WHERE dhash IS NOT NULL;

COMMENT ON TABLE photos IS
    'One row per uploaded photo of a report, or proof photo of a resolution; bytes live in the blob store.';
COMMENT ON COLUMN photos.id IS 'Surrogate key of the photo; signed URLs are made over it.';
COMMENT ON COLUMN photos.report_id IS 'Report the photo came with; NULL for a proof photo.';
COMMENT ON COLUMN photos.incident_id IS 'Incident a proof photo resolves; NULL for a report photo not tied to an incident here.';
COMMENT ON COLUMN photos.role IS 'report (a rider''s sighting) or proof (the grid team''s after-photo).';
COMMENT ON COLUMN photos.position IS 'Order within its report (0-based), as uploaded; the fingerprint uses this order.';
COMMENT ON COLUMN photos.original_key IS
    'Blob key of the uploaded bytes; private, never served, kept only for reprocessing.';
COMMENT ON COLUMN photos.upload_sha256 IS
    'SHA-256 of the uploaded bytes, set at intake; part of the report fingerprint.';
COMMENT ON COLUMN photos.content_type IS 'Type sniffed from the magic bytes at intake (the declared type is never trusted).';
COMMENT ON COLUMN photos.bytes IS 'Size of the uploaded bytes.';
COMMENT ON COLUMN photos.width IS 'Pixel width of the decoded image; NULL until processed.';
COMMENT ON COLUMN photos.height IS 'Pixel height of the decoded image; NULL until processed.';
COMMENT ON COLUMN photos.display_key IS 'Blob key of the display image (<=1600 px, rebuilt from pixels, no metadata).';
COMMENT ON COLUMN photos.display_type IS 'Media type of the display image: image/webp or image/jpeg.';
COMMENT ON COLUMN photos.thumb_key IS 'Blob key of the JPEG thumbnail (<=320 px).';
COMMENT ON COLUMN photos.dhash IS
    '64-bit difference hash of the pixels stored as a signed bigint (two''s complement), for reuse detection.';
COMMENT ON COLUMN photos.state IS 'pending until normalise_photos runs, then ready or failed (a failure affects this photo only).';
COMMENT ON COLUMN photos.failure_reason IS 'Why processing failed (undecodable, too many pixels, ...).';
COMMENT ON COLUMN photos.reused_of_photo_id IS
    'Near-identical photo of another incident within 30 days; a reused photo earns no points.';
COMMENT ON COLUMN photos.created_at IS 'When the photo was received.';
COMMENT ON COLUMN photos.processed_at IS 'When normalise_photos finished with it (ready or failed).';

------------------------------------------------------------------------------------------------
-- Alerts
------------------------------------------------------------------------------------------------

CREATE TABLE notifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event       text NOT NULL,
    incident_id bigint REFERENCES incidents (id) ON DELETE RESTRICT,
    audience    jsonb NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}',
    dedupe_key  text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notifications_incident_id_idx ON notifications (incident_id);

COMMENT ON TABLE notifications IS
    'One row per alertable event (an incident reaching a grid, an escalation, a reporter update); fans out into deliveries.';
COMMENT ON COLUMN notifications.id IS 'Surrogate key of the notification.';
COMMENT ON COLUMN notifications.event IS 'Event name, e.g. incident.reached_grid, incident.escalated, report.accepted.';
COMMENT ON COLUMN notifications.incident_id IS 'Incident the event is about, if any.';
COMMENT ON COLUMN notifications.audience IS
    'Who is to be told, as resolved when the event happened (area ids, member ids, escalation level).';
COMMENT ON COLUMN notifications.payload IS 'Channel-independent content used to render each message.';
COMMENT ON COLUMN notifications.dedupe_key IS
    'Key that makes an event notify once (e.g. escalation per incident, stage, cycle and level); NULL when not needed.';
COMMENT ON COLUMN notifications.created_at IS 'When the notification was created.';

CREATE TABLE deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id bigint NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel         text NOT NULL CHECK (channel IN ('webpush', 'wecom', 'sms', 'stream')),
    target          text NOT NULL,
    member_id       bigint REFERENCES members (id) ON DELETE RESTRICT,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'failed', 'gone', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status     integer,
    last_error      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deliveries_once_per_target UNIQUE (notification_id, channel, target)
);

CREATE INDEX deliveries_member_created_idx ON deliveries (member_id, created_at) WHERE member_id IS NOT NULL;

COMMENT ON TABLE deliveries IS
    'One row per (notification, channel, target), so a re-run of notify never sends twice; holds each channel''s outcome.';
COMMENT ON COLUMN deliveries.id IS 'Surrogate key of the delivery.';
COMMENT ON COLUMN deliveries.notification_id IS 'Notification being delivered.';
COMMENT ON COLUMN deliveries.channel IS 'webpush, wecom (group robot), sms or stream (live SSE).';
COMMENT ON COLUMN deliveries.target IS
    'Channel address as text: push subscription id, area code (WeCom group) or member id.';
COMMENT ON COLUMN deliveries.member_id IS 'Member reached, when the target is a person (used for the SMS daily cap).';
COMMENT ON COLUMN deliveries.state IS
    'pending, sent, failed (gave up), gone (subscription removed) or skipped (cap, channel off).';
COMMENT ON COLUMN deliveries.attempts IS 'How many sends were tried.';
COMMENT ON COLUMN deliveries.last_status IS 'HTTP or provider status of the last attempt.';
COMMENT ON COLUMN deliveries.last_error IS 'Error text of the last failed attempt (no secrets).';
COMMENT ON COLUMN deliveries.sent_at IS 'When the channel accepted the message.';
COMMENT ON COLUMN deliveries.created_at IS 'When the delivery was planned.';

CREATE TABLE push_subscriptions (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id               bigint NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    endpoint                text NOT NULL UNIQUE CHECK (endpoint LIKE 'https://%'),
    p256dh                  bytea NOT NULL
                            CHECK (octet_length(p256dh) = 65 AND get_byte(p256dh, 0) = 4),
    auth                    bytea NOT NULL CHECK (octet_length(auth) = 16),
    vapid_key_id            text NOT NULL,
    user_agent              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    last_ok_at              timestamptz,
    failures                integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    needs_resubscribe_at    timestamptz
);

CREATE INDEX push_subscriptions_member_id_idx ON push_subscriptions (member_id);

COMMENT ON TABLE push_subscriptions IS 'Web Push subscriptions of members'' browsers (one channel among several).';
COMMENT ON COLUMN push_subscriptions.id IS 'Surrogate key; used as the delivery target.';
COMMENT ON COLUMN push_subscriptions.member_id IS 'Member whose browser subscribed.';
COMMENT ON COLUMN push_subscriptions.endpoint IS
    'Push service URL (https, port 443, known push service only; checked by the app).';
COMMENT ON COLUMN push_subscriptions.p256dh IS 'Browser''s P-256 public key, uncompressed point (65 bytes), for payload encryption.';
COMMENT ON COLUMN push_subscriptions.auth IS 'Browser''s 16-byte authentication secret for payload encryption.';
COMMENT ON COLUMN push_subscriptions.vapid_key_id IS 'VAPID key that was current when the browser subscribed.';
COMMENT ON COLUMN push_subscriptions.user_agent IS 'Browser user agent at subscription, to tell devices apart.';
COMMENT ON COLUMN push_subscriptions.created_at IS 'When the subscription was first stored.';
COMMENT ON COLUMN push_subscriptions.updated_at IS 'When the keys or VAPID key id were last replaced.';
COMMENT ON COLUMN push_subscriptions.last_ok_at IS 'Last time the push service accepted a message (201).';
COMMENT ON COLUMN push_subscriptions.failures IS 'Consecutive failed sends since the last success.';
COMMENT ON COLUMN push_subscriptions.needs_resubscribe_at IS
    'When the push service answered 400/401/403; the PWA is asked to subscribe again.';

------------------------------------------------------------------------------------------------
-- Points
------------------------------------------------------------------------------------------------

CREATE TABLE rewards (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name_zh     text NOT NULL,
    name_en     text,
    cost        integer NOT NULL CHECK (cost > 0),
    stock       integer CHECK (stock >= 0),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE rewards IS 'Rewards riders can redeem points for.';
COMMENT ON COLUMN rewards.id IS 'Surrogate key of the reward.';
COMMENT ON COLUMN rewards.name_zh IS 'Chinese name shown to riders.';
COMMENT ON COLUMN rewards.name_en IS 'English name.';
COMMENT ON COLUMN rewards.cost IS 'Points debited per redemption.';
COMMENT ON COLUMN rewards.stock IS 'Units left; NULL means unlimited.';
COMMENT ON COLUMN rewards.enabled IS 'Disabled rewards cannot be redeemed.';
COMMENT ON COLUMN rewards.created_at IS 'When the reward was added.';

CREATE TABLE redemptions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id   bigint NOT NULL REFERENCES members (id) ON DELETE RESTRICT,
    reward_id   bigint NOT NULL REFERENCES rewards (id) ON DELETE RESTRICT,
    cost        integer NOT NULL CHECK (cost > 0),
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'approved', 'rejected', 'fulfilled')),
    decided_by  bigint REFERENCES members (id) ON DELETE RESTRICT,
    decided_at  timestamptz,
    reason      text,
    fulfilled_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT redemptions_decided
        CHECK (state = 'pending' OR (decided_by IS NOT NULL AND decided_at IS NOT NULL)),
    CONSTRAINT redemptions_fulfilled_at CHECK (state <> 'fulfilled' OR fulfilled_at IS NOT NULL)
);

CREATE INDEX redemptions_member_id_idx ON redemptions (member_id, id DESC);
CREATE INDEX redemptions_reward_id_idx ON redemptions (reward_id);
CREATE INDEX redemptions_pending_idx ON redemptions (created_at) WHERE state = 'pending';

COMMENT ON TABLE redemptions IS
    'A rider''s request to exchange points for a reward; the points are debited in the same transaction.';
COMMENT ON COLUMN redemptions.id IS 'Surrogate key; source_id of the redemption ledger row.';
COMMENT ON COLUMN redemptions.member_id IS 'Rider who redeemed.';
COMMENT ON COLUMN redemptions.reward_id IS 'Reward asked for.';
COMMENT ON COLUMN redemptions.cost IS 'Points debited, copied from the reward at request time.';
COMMENT ON COLUMN redemptions.state IS 'pending, approved, rejected (points given back by a reversal) or fulfilled.';
COMMENT ON COLUMN redemptions.decided_by IS 'Supervisor who approved or rejected it.';
COMMENT ON COLUMN redemptions.decided_at IS 'When it was approved or rejected.';
COMMENT ON COLUMN redemptions.reason IS 'Supervisor''s reason, shown to the rider (required in practice for a rejection).';
COMMENT ON COLUMN redemptions.fulfilled_at IS 'When the reward was handed over.';
COMMENT ON COLUMN redemptions.created_at IS 'When the rider redeemed.';

CREATE TABLE flags (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL,
    member_id       bigint REFERENCES members (id) ON DELETE RESTRICT,
    report_id       bigint REFERENCES reports (id) ON DELETE RESTRICT,
    incident_id     bigint REFERENCES incidents (id) ON DELETE RESTRICT,
    photo_id        bigint REFERENCES photos (id) ON DELETE RESTRICT,
    evidence        jsonb NOT NULL DEFAULT '{}',
    state           text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'cleared', 'confirmed')),
    withheld_points integer NOT NULL DEFAULT 0 CHECK (withheld_points >= 0),
    decided_by      bigint REFERENCES members (id) ON DELETE RESTRICT,
    decided_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT flags_has_subject
        CHECK (member_id IS NOT NULL OR report_id IS NOT NULL OR incident_id IS NOT NULL OR photo_id IS NOT NULL),
    CONSTRAINT flags_decided CHECK (state = 'open' OR decided_at IS NOT NULL)
);

CREATE INDEX flags_member_id_idx ON flags (member_id) WHERE member_id IS NOT NULL;
CREATE INDEX flags_report_id_idx ON flags (report_id) WHERE report_id IS NOT NULL;
CREATE INDEX flags_incident_id_idx ON flags (incident_id) WHERE incident_id IS NOT NULL;
CREATE INDEX flags_photo_id_idx ON flags (photo_id) WHERE photo_id IS NOT NULL;
CREATE INDEX flags_open_idx ON flags (created_at) WHERE state = 'open';

COMMENT ON TABLE flags IS
    'Anti-gaming suspicions (reused photo, report bursts, ...) for supervisor review; points involved are withheld while open.';
COMMENT ON COLUMN flags.id IS 'Surrogate key; source_id of a flag_release ledger row.';
COMMENT ON COLUMN flags.kind IS 'What was suspected, e.g. reused_photo, burst, self_corroboration.';
COMMENT ON COLUMN flags.member_id IS 'Member under suspicion.';
COMMENT ON COLUMN flags.report_id IS 'Report concerned, if any.';
COMMENT ON COLUMN flags.incident_id IS 'Incident concerned, if any.';
COMMENT ON COLUMN flags.photo_id IS 'Photo concerned, if any (e.g. the reused one).';
COMMENT ON COLUMN flags.evidence IS 'Why the flag was raised (matched photo ids, Hamming distance, counts).';
COMMENT ON COLUMN flags.state IS 'open (points withheld), cleared (withheld points released) or confirmed (nothing paid, or reversed).';
COMMENT ON COLUMN flags.withheld_points IS 'Points held back while the flag is open; paid as flag_release if cleared.';
COMMENT ON COLUMN flags.decided_by IS 'Supervisor who cleared or confirmed the flag.';
COMMENT ON COLUMN flags.decided_at IS 'When the flag was cleared or confirmed.';
COMMENT ON COLUMN flags.created_at IS 'When the flag was raised.';

CREATE TABLE points_ledger (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id               bigint NOT NULL REFERENCES members (id) ON DELETE RESTRICT,
    reason                  text NOT NULL
                            CHECK (reason IN ('first_report', 'corroboration', 'resolve_bonus', 'not_a_hazard',
                                              'reversal', 'flag_release', 'redemption', 'adjustment')),
    amount                  integer NOT NULL CHECK (amount <> 0),
    source_kind             text NOT NULL
                            CHECK (source_kind IN ('incident', 'report', 'ledger', 'flag', 'redemption', 'decision')),
    source_id               bigint NOT NULL,
    cycle                   integer NOT NULL DEFAULT 0 CHECK (cycle >= 0),
    counts_toward_cap       boolean NOT NULL,
    counts_toward_ranking   boolean NOT NULL,
    local_day               date NOT NULL,
    note                    text,
    created_by              bigint REFERENCES members (id) ON DELETE RESTRICT,
    created_at              timestamptz NOT NULL,
    CONSTRAINT points_ledger_once_per_source UNIQUE (member_id, reason, source_kind, source_id, cycle),
    -- Each reason has one kind of source and one sign (DESIGN 2d).
    CONSTRAINT points_ledger_reason_source CHECK (
        (reason IN ('first_report', 'resolve_bonus', 'not_a_hazard') AND source_kind = 'incident')
        OR (reason = 'corroboration' AND source_kind = 'report')
        OR (reason = 'reversal' AND source_kind = 'ledger')
        OR (reason = 'flag_release' AND source_kind = 'flag')
        OR (reason = 'redemption' AND source_kind = 'redemption')
        OR (reason = 'adjustment' AND source_kind = 'decision')),
    CONSTRAINT points_ledger_reason_sign CHECK (
        reason IN ('reversal', 'adjustment')
        OR (reason IN ('first_report', 'corroboration', 'resolve_bonus', 'flag_release') AND amount > 0)
        OR (reason IN ('not_a_hazard', 'redemption') AND amount < 0)),
    CONSTRAINT points_ledger_local_day
        CHECK (local_day = (created_at AT TIME ZONE 'Asia/Shanghai')::date)
);

CREATE INDEX points_ledger_member_day_idx ON points_ledger (member_id, local_day);
CREATE INDEX points_ledger_ranking_idx ON points_ledger (local_day) WHERE counts_toward_ranking;

CREATE TRIGGER points_ledger_append_only
    BEFORE UPDATE OR DELETE ON points_ledger
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER points_ledger_no_truncate
    BEFORE TRUNCATE ON points_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

COMMENT ON TABLE points_ledger IS
    'Append-only record of final point movements; a balance is a sum, corrections are new rows (reversal, adjustment).';
COMMENT ON COLUMN points_ledger.id IS 'Surrogate key; source_id of a reversal that undoes this row.';
COMMENT ON COLUMN points_ledger.member_id IS 'Member whose balance moves.';
COMMENT ON COLUMN points_ledger.reason IS
    'Why: first_report, corroboration, resolve_bonus, not_a_hazard, reversal, flag_release, redemption or adjustment.';
COMMENT ON COLUMN points_ledger.amount IS 'Signed points (never zero); clipped to the day''s remaining cap before writing.';
COMMENT ON COLUMN points_ledger.source_kind IS
    'What source_id points at: incident, report, ledger (reversed row), flag, redemption or decision.';
COMMENT ON COLUMN points_ledger.source_id IS 'Id of the source row; with reason and cycle it makes a write idempotent.';
COMMENT ON COLUMN points_ledger.cycle IS 'Incident cycle for per-cycle awards so a new cycle can award again; 0 otherwise.';
COMMENT ON COLUMN points_ledger.counts_toward_cap IS 'Whether the row uses up the 100-points daily cap.';
COMMENT ON COLUMN points_ledger.counts_toward_ranking IS 'Whether the row counts in rankings (all but redemptions).';
COMMENT ON COLUMN points_ledger.local_day IS 'Asia/Shanghai day of the write; the daily cap and rankings group by it.';
COMMENT ON COLUMN points_ledger.note IS 'Free text, e.g. the supervisor''s justification of an adjustment.';
COMMENT ON COLUMN points_ledger.created_by IS 'Supervisor behind a manual row; NULL for automatic awards.';
COMMENT ON COLUMN points_ledger.created_at IS 'When the row was written (from the injectable clock).';

------------------------------------------------------------------------------------------------
-- Jobs: the database is the record of pending work (DESIGN 7)
------------------------------------------------------------------------------------------------

CREATE TABLE jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'running', 'retry', 'done', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer NOT NULL DEFAULT 8 CHECK (max_attempts > 0),
    run_after       timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    dedupe_key      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

CREATE UNIQUE INDEX jobs_kind_dedupe_key_idx ON jobs (kind, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX jobs_due_idx ON jobs (run_after) WHERE state IN ('pending', 'retry');
CREATE INDEX jobs_lease_idx ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE state = 'done';

COMMENT ON TABLE jobs IS
    'Pending and finished background work, written in the same transaction as the change that needs it; the relay re-drives it.';
COMMENT ON COLUMN jobs.id IS 'Surrogate key; part of the arq job id {kind}:{id}:{attempt}.';
COMMENT ON COLUMN jobs.kind IS 'Job function to run, e.g. process_report, normalise_photos, notify.';
COMMENT ON COLUMN jobs.payload IS 'Arguments of the job (ids, not copies of rows).';
COMMENT ON COLUMN jobs.state IS 'pending, running (claimed), retry (after an error), done or dead (gave up).';
COMMENT ON COLUMN jobs.attempts IS 'How many times a worker claimed the job.';
COMMENT ON COLUMN jobs.max_attempts IS 'After this many attempts the job goes dead.';
COMMENT ON COLUMN jobs.run_after IS 'Earliest time the job may run (backoff after a retry).';
COMMENT ON COLUMN jobs.lease_until IS 'A running job whose lease passed is taken back by the relay.';
COMMENT ON COLUMN jobs.last_error IS 'Error of the last failed attempt.';
COMMENT ON COLUMN jobs.dedupe_key IS 'Optional key that keeps one job per (kind, key), e.g. one notify per event.';
COMMENT ON COLUMN jobs.created_at IS 'When the job was written.';
COMMENT ON COLUMN jobs.updated_at IS 'When the job row last changed state.';
COMMENT ON COLUMN jobs.finished_at IS 'When the job reached done or dead; done rows are pruned after 7 days.';

------------------------------------------------------------------------------------------------
-- Blob references
------------------------------------------------------------------------------------------------

CREATE VIEW blob_references (key) AS
    SELECT original_key FROM photos
    UNION ALL
    SELECT display_key FROM photos WHERE display_key IS NOT NULL
    UNION ALL
    SELECT thumb_key FROM photos WHERE thumb_key IS NOT NULL;

COMMENT ON VIEW blob_references IS
    'Every blob key some row references; the orphan-blob sweep deletes blobs not listed here; add new blob columns to this view.';
COMMENT ON COLUMN blob_references.key IS 'A referenced blob key.';
