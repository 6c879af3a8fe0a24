-- Open311 GeoReport v2 (issue 10): city systems (a 12345 hotline, a 数字城管 platform) file hazards
-- through API keys, each key filing as its own `system` member, so that the report goes through the
-- same pipeline (routing, merging, deadlines) as a rider's while never earning points.

-- A hotline request is placed by the city system's operator (an address looked up on a map), not by
-- a phone's GPS: its own position source, so reads and figures can tell the two apart.
-- NOT VALID: every existing row already passed the narrower check it replaces, so there is nothing to
-- re-check, and no scan of the whole reports table under the exclusive lock this migration holds.
ALTER TABLE reports DROP CONSTRAINT reports_position_source_check;
ALTER TABLE reports ADD CONSTRAINT reports_position_source_check
    CHECK (position_source IN ('gps', 'network', 'manual', 'hotline')) NOT VALID;
COMMENT ON COLUMN reports.position_source IS
    'Where the position came from: gps, network, manual placement, or hotline (placed by a city system filing through Open311).';

CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    area_id     bigint NOT NULL REFERENCES areas (id) ON DELETE RESTRICT,
    -- One system member per key: idempotency (reporter, client_id), audit events and reads all say
    -- which city system filed, and two systems can never replay each other's client ids.
    member_id   bigint NOT NULL UNIQUE REFERENCES members (id) ON DELETE RESTRICT,
    key_hash    bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    key_prefix  text NOT NULL CHECK (char_length(key_prefix) BETWEEN 1 AND 16),
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE INDEX api_keys_area_id_idx ON api_keys (area_id);

COMMENT ON TABLE api_keys IS
    'Open311 API keys of city systems (gridrider apikey create/list/revoke); the key itself is shown once and never stored.';
COMMENT ON COLUMN api_keys.id IS 'Surrogate key of the API key; subject of its POST rate limit.';
COMMENT ON COLUMN api_keys.name IS 'Operator-chosen unique name, e.g. 12345-hotline; never reused, even after revocation.';
COMMENT ON COLUMN api_keys.area_id IS
    'Area whose subtree the key may file in (positions outside get 403) and read exactly (other reads are scoped to it).';
COMMENT ON COLUMN api_keys.member_id IS 'The system member (role system) the key files reports as; one per key.';
COMMENT ON COLUMN api_keys.key_hash IS
    'HMAC-SHA256 of the key under the session secret (as session tokens are stored); a key is found by this hash.';
COMMENT ON COLUMN api_keys.key_prefix IS 'First characters of the key, so an operator can tell keys apart in a list.';
COMMENT ON COLUMN api_keys.created_at IS 'When the key was created.';
COMMENT ON COLUMN api_keys.revoked_at IS 'When the key was revoked; a revoked key is refused (403) everywhere.';

CREATE TABLE open311_requests (
    report_id       bigint PRIMARY KEY REFERENCES reports (id) ON DELETE RESTRICT,
    api_key_id      bigint NOT NULL REFERENCES api_keys (id) ON DELETE RESTRICT,
    token           text NOT NULL UNIQUE CHECK (token ~ '^[A-Za-z0-9_-]{16,64}$'),
    client_ref      text CHECK (char_length(client_ref) BETWEEN 1 AND 100),
    description     text CHECK (char_length(description) <= 4000),
    address_string  text CHECK (char_length(address_string) <= 500),
    address_id      text CHECK (char_length(address_id) <= 100),
    media_url       text CHECK (char_length(media_url) <= 2000),
    created_at      timestamptz NOT NULL
);

CREATE INDEX open311_requests_api_key_id_idx ON open311_requests (api_key_id);

COMMENT ON TABLE open311_requests IS
    'What a city system POSTed to /open311/v2/requests beyond the report row it became; the token resolves to the incident.';
COMMENT ON COLUMN open311_requests.report_id IS 'The report (by the key''s system member) the request was filed as.';
COMMENT ON COLUMN open311_requests.api_key_id IS 'The key that filed it.';
COMMENT ON COLUMN open311_requests.token IS
    'Random handle answered to the POST; GET tokens/{token} gives the service_request_id once the pipeline has run.';
COMMENT ON COLUMN open311_requests.client_ref IS
    'attribute[client_id] as sent: the city system''s own id; retries with it file nothing new.';
COMMENT ON COLUMN open311_requests.description IS
    'The description as sent (up to 4,000 characters); the report note keeps its first 500.';
COMMENT ON COLUMN open311_requests.address_string IS 'The address as sent, for the grid team; never geocoded.';
COMMENT ON COLUMN open311_requests.address_id IS 'The city''s own address id as sent, for reference only.';
COMMENT ON COLUMN open311_requests.media_url IS
    'media_url as sent: recorded for the record and never fetched (no request ever follows a user-supplied URL).';
COMMENT ON COLUMN open311_requests.created_at IS 'When the request was received.';

-- servicerequestupdates reads incident events by time across all incidents; without this it scans the
-- whole append-only history on every poll of every city system.
CREATE INDEX incident_events_occurred_at_idx ON incident_events (occurred_at, id);

-- GET requests reads incidents by requested time (the last 90 days by default), newest first.
CREATE INDEX incidents_created_at_idx ON incidents (created_at);
