-- A rider's reports by receipt time (DESIGN.md §2d anti-gaming). `pair_collusion` reads each rider's
-- reports of the last 30 days at every accept, and `burst` one rider's reports of the last hour for
-- every processed report; the only per-rider index, (reporter_id, …), makes both read the rider's whole
-- history and throw most of it away. Measured (warm cache) with 200 riders × 3,000 reports over two
-- years, an incident with 4 riders: the accept-time check read 13,926 buffers (2,877 rows per rider
-- filtered out) in 9.1 ms without this index, 2,012 buffers in 2.9 ms with it; the burst count 2,987
-- buffers in 1.4 ms without, 3 buffers in 0.02 ms with it (index only).

CREATE INDEX reports_reporter_received_idx ON reports (reporter_id, received_at);
