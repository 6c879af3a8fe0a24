-- Merge candidates by category, cell AND capture time: the window is then part of the index condition
-- instead of a filter over every open incident in those cells (`gridrider bench merge` at 1 M reports:
-- 925 of 1,064 rows read only to be thrown away at the busiest hotspot; 2.3 ms → 0.3 ms).
DROP INDEX incidents_merge_candidates_idx;
CREATE INDEX incidents_merge_candidates_idx ON incidents (category, cell, last_captured_at)
    WHERE state IN ('unrouted', 'dispatched', 'accepted');
