-- Flags that name an incident but no report (they apply to every report of it, or to one author's).
--
-- Paying an incident's points asks, for each of its reports, whether such a flag applies. Through
-- flags_incident_id_idx that read every flag of the incident — also the per-report ones, hundreds
-- on an incident many couriers reported with reused photos — for every report (the fault suite's
-- soak: 0.13 ms × 296 reports under the incident's points lock). This index holds only the
-- incident-wide flags, usually none.

CREATE INDEX flags_incident_wide_idx ON flags (incident_id) WHERE report_id IS NULL AND incident_id IS NOT NULL;
