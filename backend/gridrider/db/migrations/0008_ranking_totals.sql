-- Rankings (issue 8, DESIGN.md §2d): each courier's ranking points per month, quarter and year,
-- kept by the database as ledger rows arrive, so a ranking page reads ~one row per rider instead of
-- summing the ledger (10 M rows) on every request.
--
-- Why per period rather than per day: a year's ranking over per-day rows would aggregate up to
-- 365 rows per rider (36 M for 100,000 riders) on every request; per period it is one row each.
-- The ledger is append-only, so an insert trigger sees every movement exactly once.
--
-- Scope is denormalised as `area_prefixes`: every ancestor path of every area the rider belongs to
-- ('CTY/', 'CTY/ST1/', 'CTY/ST1/COM03/'). "Enrolled in the caller's subtree" is then an array
-- overlap with the caller's subtree paths, checked per row without a join.

CREATE TABLE ranking_totals (
    period          text NOT NULL CHECK (period ~ '^[0-9]{4}(-[0-9]{2}|-Q[1-4])?$'),
    member_id       bigint NOT NULL REFERENCES members (id) ON DELETE RESTRICT,
    points          bigint NOT NULL,
    entries         integer NOT NULL CHECK (entries >= 0),
    area_prefixes   text[] NOT NULL DEFAULT '{}',
    platform        text,
    ranked          boolean NOT NULL DEFAULT true,
    PRIMARY KEY (period, member_id)
);

-- Top-N in points order, and the counts behind a rank, read from the index alone.
CREATE INDEX ranking_totals_order_idx ON ranking_totals (period, points DESC, member_id)
    INCLUDE (area_prefixes, platform) WHERE ranked;
CREATE INDEX ranking_totals_member_idx ON ranking_totals (member_id);

COMMENT ON TABLE ranking_totals IS
    'Ranking points of each courier per period (YYYY-MM, YYYY-Qn, YYYY), maintained from points_ledger by trigger.';
COMMENT ON COLUMN ranking_totals.period IS
    'Asia/Shanghai period of the ledger rows: month YYYY-MM, quarter YYYY-Qn or year YYYY.';
COMMENT ON COLUMN ranking_totals.member_id IS 'The courier.';
COMMENT ON COLUMN ranking_totals.points IS
    'Sum of the courier''s ledger rows dated in the period that count toward rankings (every reason but redemption).';
COMMENT ON COLUMN ranking_totals.entries IS 'Number of those ledger rows.';
COMMENT ON COLUMN ranking_totals.area_prefixes IS
    'Every ancestor path (with its own) of the courier''s areas; a scope matches by array overlap.';
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
    'All ancestor paths of the areas a member belongs to, for ranking_totals.area_prefixes.';

-- One statement's ledger rows, added to their periods in one upsert (a bulk load of a million rows
-- costs one aggregate, not a million upserts). Only couriers are ranked.
CREATE FUNCTION ranking_totals_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ranking_totals AS t (period, member_id, points, entries, area_prefixes, platform, ranked)
    SELECT p.period, p.member_id, p.points, p.entries, member_area_prefixes(p.member_id), m.platform,
           m.status = 'active'
    FROM (
        SELECT period, member_id, sum(amount) AS points, count(*) AS entries
        FROM added_rows l
        CROSS JOIN LATERAL (VALUES (to_char(l.local_day, 'YYYY-MM')),
                                   (to_char(l.local_day, 'YYYY-"Q"Q')),
                                   (to_char(l.local_day, 'YYYY'))) AS periods (period)
        WHERE l.counts_toward_ranking AND l.reason <> 'redemption'
        GROUP BY period, member_id
    ) p
    JOIN members m ON m.id = p.member_id AND m.role = 'courier'
    -- Members in a fixed order, so two statements touching the same riders lock rows alike.
    ORDER BY p.member_id, p.period
    ON CONFLICT (period, member_id) DO UPDATE
        SET points = t.points + excluded.points, entries = t.entries + excluded.entries;
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
        UPDATE ranking_totals t SET area_prefixes = member_area_prefixes(t.member_id)
        WHERE t.member_id IN (SELECT DISTINCT member_id FROM new_links);
    ELSE
        UPDATE ranking_totals t SET area_prefixes = member_area_prefixes(t.member_id)
        WHERE t.member_id IN (SELECT DISTINCT member_id FROM old_links);
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ranking_totals_rescope_members() IS
    'Recomputes ranking_totals.area_prefixes of members whose member_areas changed.';

CREATE TRIGGER member_areas_insert_ranking_scope
    AFTER INSERT ON member_areas REFERENCING NEW TABLE AS new_links
    FOR EACH STATEMENT EXECUTE FUNCTION ranking_totals_rescope_members();
CREATE TRIGGER member_areas_delete_ranking_scope
    AFTER DELETE ON member_areas REFERENCING OLD TABLE AS old_links
    FOR EACH STATEMENT EXECUTE FUNCTION ranking_totals_rescope_members();

CREATE FUNCTION ranking_totals_rescope_area() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ranking_totals t SET area_prefixes = member_area_prefixes(t.member_id)
    WHERE t.member_id IN (SELECT ma.member_id FROM member_areas ma WHERE ma.area_id = NEW.id);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ranking_totals_rescope_area() IS
    'Recomputes ranking_totals.area_prefixes of the members of an area whose path changed.';

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
INSERT INTO ranking_totals (period, member_id, points, entries, area_prefixes, platform, ranked)
SELECT p.period, p.member_id, p.points, p.entries, member_area_prefixes(p.member_id), m.platform,
       m.status = 'active'
FROM (
    SELECT period, member_id, sum(amount) AS points, count(*) AS entries
    FROM points_ledger l
    CROSS JOIN LATERAL (VALUES (to_char(l.local_day, 'YYYY-MM')),
                               (to_char(l.local_day, 'YYYY-"Q"Q')),
                               (to_char(l.local_day, 'YYYY'))) AS periods (period)
    WHERE l.counts_toward_ranking AND l.reason <> 'redemption'
    GROUP BY period, member_id
) p
JOIN members m ON m.id = p.member_id AND m.role = 'courier';
