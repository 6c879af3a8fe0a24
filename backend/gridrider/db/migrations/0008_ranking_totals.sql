-- Rankings (issue 8, DESIGN.md §2d): each courier's ranking points per month, quarter and year,
-- kept by the database as ledger rows arrive, so a ranking page reads ~one row per rider instead of
-- summing the ledger (10 M rows) on every request.
--
-- Why per period rather than per day: a year's ranking over per-day rows would aggregate up to
-- 365 rows per rider (36 M for 100,000 riders) on every request; per period it is one row each.
-- The ledger is append-only, so an insert trigger sees every movement exactly once.
--
-- Scope is denormalised as `scope_keys`: the period joined to every ancestor path of every area the
-- rider belongs to ('2026-11:CTY/', '2026-11:CTY/ST1/', '2026-11:CTY/ST1/COM03/'). "Enrolled in the
-- caller's subtree" is then an array overlap with the caller's keys: checked per row without a join
-- when a big scope walks the points-order index, and found through a GIN index when a grid's few
-- riders are wanted (`gridrider bench rankings`: a grid's page took ~85 ms walking the order index
-- past 20,000 riders of other grids).

CREATE TABLE ranking_totals (
    period          text NOT NULL CHECK (period ~ '^[0-9]{4}(-[0-9]{2}|-Q[1-4])?$'),
    member_id       bigint NOT NULL REFERENCES members (id) ON DELETE RESTRICT,
    points          bigint NOT NULL,
    entries         integer NOT NULL CHECK (entries >= 0),
    first_reports   integer NOT NULL DEFAULT 0,
    corroborations  integer NOT NULL DEFAULT 0,
    scope_keys      text[] NOT NULL DEFAULT '{}',
    platform        text,
    ranked          boolean NOT NULL DEFAULT true,
    PRIMARY KEY (period, member_id)
);

-- Top-N in points order, and the counts behind a rank, read from the index alone.
CREATE INDEX ranking_totals_order_idx ON ranking_totals (period, points DESC, member_id)
    INCLUDE (scope_keys, platform) WHERE ranked;
-- The riders of one small scope in one period.
CREATE INDEX ranking_totals_scope_idx ON ranking_totals USING gin (scope_keys) WHERE ranked;
CREATE INDEX ranking_totals_member_idx ON ranking_totals (member_id);

COMMENT ON TABLE ranking_totals IS
    'Ranking points of each courier per period (YYYY-MM, YYYY-Qn, YYYY), maintained from points_ledger by trigger.';
COMMENT ON COLUMN ranking_totals.period IS
    'Asia/Shanghai period of the ledger rows: month YYYY-MM, quarter YYYY-Qn or year YYYY.';
COMMENT ON COLUMN ranking_totals.member_id IS 'The courier.';
COMMENT ON COLUMN ranking_totals.points IS
    'Sum of the courier''s ledger rows dated in the period that count toward rankings (every reason but redemption).';
COMMENT ON COLUMN ranking_totals.entries IS 'Number of those ledger rows.';
COMMENT ON COLUMN ranking_totals.first_reports IS
    'first_report awards dated in the period, less reversals of first_report awards dated in it (first discoveries).';
COMMENT ON COLUMN ranking_totals.corroborations IS
    'corroboration awards dated in the period, less reversals of corroboration awards dated in it.';
COMMENT ON COLUMN ranking_totals.scope_keys IS
    'The period, '':'', and every ancestor path (with its own) of the courier''s areas; a scope matches by array overlap.';
COMMENT ON COLUMN ranking_totals.platform IS 'The courier''s delivery platform, for the platform filter.';
COMMENT ON COLUMN ranking_totals.ranked IS
    'false while the member is deactivated (or no longer a courier): kept, but not listed or counted.';

-- Every prefix of every area path of a member: 'A/B/C/' gives 'A/', 'A/B/', 'A/B/C/'.
CREATE FUNCTION member_area_prefixes(member bigint) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(DISTINCT prefix ORDER BY prefix), '{}')
    FROM (
        SELECT array_to_string((string_to_array(rtrim(a.path, '/'), '/'))[1:n], '/') || '/' AS prefix
        FROM member_areas ma
        JOIN areas a ON a.id = ma.area_id
        CROSS JOIN LATERAL generate_series(1, array_length(string_to_array(rtrim(a.path, '/'), '/'), 1)) AS n
        WHERE ma.member_id = member
    ) prefixes
$$;

COMMENT ON FUNCTION member_area_prefixes(bigint) IS
    'All ancestor paths of the areas a member belongs to, for ranking_totals.scope_keys.';

CREATE FUNCTION member_scope_keys(member bigint, period text) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(period || ':' || prefix), '{}') FROM unnest(member_area_prefixes(member)) AS prefix
$$;

COMMENT ON FUNCTION member_scope_keys(bigint, text) IS 'ranking_totals.scope_keys of a member in a period.';

-- One statement's ledger rows, added to their periods in one upsert (a bulk load of a million rows
-- costs one aggregate, not a million upserts). Only couriers are ranked.
CREATE FUNCTION ranking_totals_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH added AS (
        SELECT period, l.member_id, sum(l.amount) AS points, count(*) AS entries,
               count(*) FILTER (WHERE l.reason = 'first_report')
                 - count(*) FILTER (WHERE o.reason = 'first_report') AS first_reports,
               count(*) FILTER (WHERE l.reason = 'corroboration')
                 - count(*) FILTER (WHERE o.reason = 'corroboration') AS corroborations
        FROM added_rows l
        -- The reversed row's reason, looked up by key for reversals only (a plain join on
        -- source_id let the planner scan the whole ledger for every statement).
        LEFT JOIN LATERAL (SELECT o.reason FROM points_ledger o
                           WHERE l.reason = 'reversal' AND o.id = l.source_id) o ON true
        CROSS JOIN LATERAL (VALUES (to_char(l.local_day, 'YYYY-MM')),
                                   (to_char(l.local_day, 'YYYY-"Q"Q')),
                                   (to_char(l.local_day, 'YYYY'))) AS periods (period)
        WHERE l.counts_toward_ranking AND l.reason <> 'redemption'
        GROUP BY period, l.member_id
    ),
    -- Each courier's scope once, not once per period (MATERIALIZED: computed before the join).
    riders AS MATERIALIZED (
        SELECT m.id, m.platform, m.status, member_area_prefixes(m.id) AS prefixes
        FROM members m
        WHERE m.id IN (SELECT member_id FROM added) AND m.role = 'courier'
    )
    INSERT INTO ranking_totals AS t (period, member_id, points, entries, first_reports, corroborations,
                                     scope_keys, platform, ranked)
    SELECT a.period, a.member_id, a.points, a.entries, a.first_reports, a.corroborations,
           ARRAY(SELECT a.period || ':' || prefix FROM unnest(r.prefixes) AS prefix), r.platform,
           r.status = 'active'
    FROM added a JOIN riders r ON r.id = a.member_id
    -- Members in a fixed order, so two statements touching the same riders lock rows alike.
    ORDER BY a.member_id, a.period
    ON CONFLICT (period, member_id) DO UPDATE
        SET points = t.points + excluded.points, entries = t.entries + excluded.entries,
            first_reports = t.first_reports + excluded.first_reports,
            corroborations = t.corroborations + excluded.corroborations;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ranking_totals_add() IS 'Adds newly inserted ledger rows to ranking_totals.';

CREATE TRIGGER points_ledger_ranking_totals
    AFTER INSERT ON points_ledger
    REFERENCING NEW TABLE AS added_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ranking_totals_add();

-- A rider moved to other areas (or an area re-parented) ranks in the new scope for every period.
CREATE FUNCTION ranking_totals_rescope_members() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE ranking_totals t SET scope_keys = member_scope_keys(t.member_id, t.period)
        WHERE t.member_id IN (SELECT DISTINCT member_id FROM new_links);
    ELSE
        UPDATE ranking_totals t SET scope_keys = member_scope_keys(t.member_id, t.period)
        WHERE t.member_id IN (SELECT DISTINCT member_id FROM old_links);
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ranking_totals_rescope_members() IS
    'Recomputes ranking_totals.scope_keys of members whose member_areas changed.';

CREATE TRIGGER member_areas_insert_ranking_scope
    AFTER INSERT ON member_areas REFERENCING NEW TABLE AS new_links
    FOR EACH STATEMENT EXECUTE FUNCTION ranking_totals_rescope_members();
CREATE TRIGGER member_areas_delete_ranking_scope
    AFTER DELETE ON member_areas REFERENCING OLD TABLE AS old_links
    FOR EACH STATEMENT EXECUTE FUNCTION ranking_totals_rescope_members();

CREATE FUNCTION ranking_totals_rescope_area() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ranking_totals t SET scope_keys = member_scope_keys(t.member_id, t.period)
    WHERE t.member_id IN (SELECT ma.member_id FROM member_areas ma WHERE ma.area_id = NEW.id);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ranking_totals_rescope_area() IS
    'Recomputes ranking_totals.scope_keys of the members of an area whose path changed.';

CREATE TRIGGER areas_path_ranking_scope
    AFTER UPDATE OF path ON areas
    FOR EACH ROW WHEN (OLD.path IS DISTINCT FROM NEW.path)
    EXECUTE FUNCTION ranking_totals_rescope_area();

CREATE FUNCTION ranking_totals_member_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ranking_totals
    SET platform = NEW.platform, ranked = (NEW.role = 'courier' AND NEW.status = 'active')
    WHERE member_id = NEW.id;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ranking_totals_member_changed() IS
    'Copies a courier''s platform, and whether they are still an active courier, to ranking_totals.';

CREATE TRIGGER members_ranking_totals
    AFTER UPDATE OF platform, status, role ON members
    FOR EACH ROW WHEN (OLD.platform IS DISTINCT FROM NEW.platform OR OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.role IS DISTINCT FROM NEW.role)
    EXECUTE FUNCTION ranking_totals_member_changed();

-- Ledger rows written before this migration.
INSERT INTO ranking_totals (period, member_id, points, entries, first_reports, corroborations, scope_keys,
                            platform, ranked)
SELECT p.period, p.member_id, p.points, p.entries, p.first_reports, p.corroborations,
       member_scope_keys(p.member_id, p.period), m.platform,
       m.status = 'active'
FROM (
    SELECT period, l.member_id, sum(l.amount) AS points, count(*) AS entries,
           count(*) FILTER (WHERE l.reason = 'first_report')
             - count(*) FILTER (WHERE o.reason = 'first_report') AS first_reports,
           count(*) FILTER (WHERE l.reason = 'corroboration')
             - count(*) FILTER (WHERE o.reason = 'corroboration') AS corroborations
    FROM points_ledger l
    LEFT JOIN LATERAL (SELECT o.reason FROM points_ledger o
                       WHERE l.reason = 'reversal' AND o.id = l.source_id) o ON true
    CROSS JOIN LATERAL (VALUES (to_char(l.local_day, 'YYYY-MM')),
                               (to_char(l.local_day, 'YYYY-"Q"Q')),
                               (to_char(l.local_day, 'YYYY'))) AS periods (period)
    WHERE l.counts_toward_ranking AND l.reason <> 'redemption'
    GROUP BY period, l.member_id
) p
JOIN members m ON m.id = p.member_id AND m.role = 'courier';

-- ── Report figures: a refreshed table ───────────────────────────────────────────────────────────
-- A rider's report figures (accepted, duplicates, time to accept) follow incidents as they change
-- state, so no insert trigger can keep them. Computed live they cost a scan of each listed rider's
-- reports: `gridrider bench rankings` measured a year's page of the busiest riders at ~0.5 s. So a
-- cron refreshes them every minute, only for riders whose reports arrived or whose incidents
-- changed since the last pass (watermarks below); a page reads 50 rows by key.

CREATE TABLE rider_report_stats (
    period            text NOT NULL CHECK (period ~ '^[0-9]{4}(-[0-9]{2}|-Q[1-4])?$'),
    member_id         bigint NOT NULL REFERENCES members (id) ON DELETE RESTRICT,
    reports           integer NOT NULL CHECK (reports >= 0),
    accepted_reports  integer NOT NULL CHECK (accepted_reports >= 0),
    duplicates        integer NOT NULL CHECK (duplicates >= 0),
    median_accept_s   double precision,
    refreshed_at      timestamptz NOT NULL,
    PRIMARY KEY (period, member_id)
);

COMMENT ON TABLE rider_report_stats IS
    'Per rider and period (Asia/Shanghai month, quarter, year of receipt): report figures for rankings, refreshed by a cron.';
COMMENT ON COLUMN rider_report_stats.period IS 'YYYY-MM, YYYY-Qn or YYYY of the reports'' receipt.';
COMMENT ON COLUMN rider_report_stats.member_id IS 'The rider (reporter).';
COMMENT ON COLUMN rider_report_stats.reports IS 'Reports received in the period.';
COMMENT ON COLUMN rider_report_stats.accepted_reports IS 'Of those, reports whose incident is accepted, resolved or closed.';
COMMENT ON COLUMN rider_report_stats.duplicates IS 'Of those, reports that joined an incident another report started.';
COMMENT ON COLUMN rider_report_stats.median_accept_s IS
    'Median seconds from receipt to acceptance, over reports received before their incident was accepted.';
COMMENT ON COLUMN rider_report_stats.refreshed_at IS 'When the row was last computed.';

CREATE TABLE rider_report_stats_watermark (
    singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_report_id      bigint NOT NULL DEFAULT 0,
    last_incident_change timestamptz NOT NULL DEFAULT '-infinity',
    refreshed_at        timestamptz
);
INSERT INTO rider_report_stats_watermark DEFAULT VALUES;

COMMENT ON TABLE rider_report_stats_watermark IS 'How far the rider_report_stats refresh has read (one row).';
COMMENT ON COLUMN rider_report_stats_watermark.singleton IS 'Always true: the table has one row.';
COMMENT ON COLUMN rider_report_stats_watermark.last_report_id IS 'Reports with a higher id are new since the last pass.';
COMMENT ON COLUMN rider_report_stats_watermark.last_incident_change IS
    'Incidents updated after this time changed since the last pass.';
COMMENT ON COLUMN rider_report_stats_watermark.refreshed_at IS 'When the last pass finished.';

-- The refresh finds incidents changed since its watermark.
CREATE INDEX incidents_updated_at_idx ON incidents (updated_at);
