-- How many riders rank in each period, scope and platform, kept by triggers on ranking_totals.
--
-- `gridrider bench rankings` (100,000 riders, 10 M ledger rows): counting a county's riders for
-- every ranking page read ~100,000 index entries, 50–60 ms — the whole budget of a page. This
-- table answers it with one key lookup. Rows change only when a rider gets their first row of a
-- period, is deactivated, moves area or changes platform — not on every ledger row.
--
-- Key: '<period>:<area path or empty for everywhere>|<platform or *>', e.g. '2026-11:ZW/ZW-ZWZ/|*',
-- '2026-11:|eleme' (every rider on Ele.me), matching ranking_totals.scope_keys plus the platform.

CREATE TABLE ranking_counts (
    key     text PRIMARY KEY,
    riders  integer NOT NULL CHECK (riders >= 0)
);

COMMENT ON TABLE ranking_counts IS
    'Riders ranked per period, scope and platform (ranking_totals rows with ranked), kept by triggers.';
COMMENT ON COLUMN ranking_counts.key IS
    '''<period>:<area path, empty for everywhere>|<platform or *>'', as ranking_totals.scope_keys plus platform.';
COMMENT ON COLUMN ranking_counts.riders IS 'How many ranked riders that key covers.';

-- The count keys one ranking_totals row contributes to (none unless ranked).
CREATE FUNCTION ranking_count_keys(period text, scope_keys text[], platform text, ranked boolean)
RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN NOT ranked THEN '{}'::text[] ELSE ARRAY(
        SELECT scope || '|' || variant
        FROM unnest(ARRAY[period || ':'] || scope_keys) AS scope,
             unnest(ARRAY['*', coalesce(platform, '-')]) AS variant
    ) END
$$;

COMMENT ON FUNCTION ranking_count_keys(text, text[], text, boolean) IS
    'ranking_counts keys a ranking_totals row counts toward.';

CREATE FUNCTION ranking_counts_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ranking_counts AS c (key, riders)
    SELECT key, count(*)
    FROM added_totals t, unnest(ranking_count_keys(t.period, t.scope_keys, t.platform, t.ranked)) AS key
    GROUP BY key
    ORDER BY key  -- a fixed lock order between concurrent statements
    ON CONFLICT (key) DO UPDATE SET riders = c.riders + excluded.riders;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ranking_counts_add() IS 'Counts newly inserted ranking_totals rows.';

CREATE TRIGGER ranking_totals_counts_insert
    AFTER INSERT ON ranking_totals REFERENCING NEW TABLE AS added_totals
    FOR EACH STATEMENT EXECUTE FUNCTION ranking_counts_add();

-- A row whose scope, platform or ranked flag changes moves between keys (rare: a rider moved,
-- re-platformed or deactivated). Row level, because a column list cannot go with transition tables
-- and points updates — every ledger row — must not fire it.
CREATE FUNCTION ranking_counts_move() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ranking_counts SET riders = riders - 1
    WHERE key = ANY(ranking_count_keys(OLD.period, OLD.scope_keys, OLD.platform, OLD.ranked));
    INSERT INTO ranking_counts AS c (key, riders)
    SELECT key, 1 FROM unnest(ranking_count_keys(NEW.period, NEW.scope_keys, NEW.platform, NEW.ranked)) AS key
    ON CONFLICT (key) DO UPDATE SET riders = c.riders + 1;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ranking_counts_move() IS 'Moves a ranking_totals row between ranking_counts keys.';

CREATE TRIGGER ranking_totals_counts_update
    AFTER UPDATE OF scope_keys, platform, ranked ON ranking_totals
    FOR EACH ROW WHEN (OLD.scope_keys IS DISTINCT FROM NEW.scope_keys OR OLD.platform IS DISTINCT FROM NEW.platform
                       OR OLD.ranked IS DISTINCT FROM NEW.ranked)
    EXECUTE FUNCTION ranking_counts_move();

-- Rows written before this migration.
INSERT INTO ranking_counts (key, riders)
SELECT key, count(*)
FROM ranking_totals t, unnest(ranking_count_keys(t.period, t.scope_keys, t.platform, t.ranked)) AS key
GROUP BY key;

-- The GIN index on scope_keys (0008) is dropped: the planner, misjudging how many riders a scope
-- holds (scope and period are correlated), used it to fetch a whole community (7,000 rows) and sort
-- it, where the points-order index finds the page in a few hundred entries. db/rankings.py now walks
-- that index only; the GIN index only cost writes.
DROP INDEX ranking_totals_scope_idx;
