-- A Web Push delivery's target is a push subscription id, stored as text beside other channels'
-- targets (area codes, member ids). Joining on `s.id::text = d.target` cannot use the subscriptions'
-- primary key, and a fan-out to 20,000 browsers spent over a minute in that join
-- (`gridrider bench push`). This function reads the id back as a bigint, only for webpush rows, so
-- the cast never meets another channel's text, and lets the planner probe push_subscriptions_pkey.

CREATE FUNCTION webpush_target(d deliveries) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN d.channel = 'webpush' THEN d.target::bigint END;

COMMENT ON FUNCTION webpush_target(deliveries) IS
    'The push subscription id a webpush delivery targets (NULL for other channels).';
