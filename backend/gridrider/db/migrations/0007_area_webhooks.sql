-- WeCom group robots (DESIGN.md §5, §8): each area's team chat may have one robot webhook. Its URL is a
-- secret (whoever holds it posts into the group), so only an AES-GCM ciphertext is stored, bound to its area.

CREATE TABLE area_webhooks (
    area_id     bigint PRIMARY KEY REFERENCES areas (id) ON DELETE CASCADE,
    channel     text NOT NULL DEFAULT 'wecom' CHECK (channel IN ('wecom')),
    -- 12-byte nonce followed by the AES-GCM ciphertext and its 16-byte tag.
    ciphertext  bytea NOT NULL CHECK (octet_length(ciphertext) > 28),
    key_hint    text NOT NULL CHECK (char_length(key_hint) <= 4),
    updated_by  bigint REFERENCES members (id) ON DELETE RESTRICT,
    updated_at  timestamptz NOT NULL
);

COMMENT ON TABLE area_webhooks IS
    'Group-robot webhook of an area''s team chat (a secret): stored only encrypted, never returned by the API.';
COMMENT ON COLUMN area_webhooks.area_id IS 'Area whose team chat the robot posts into; one robot per area.';
COMMENT ON COLUMN area_webhooks.channel IS 'Which robot: wecom (WeCom/企业微信 group robot).';
COMMENT ON COLUMN area_webhooks.ciphertext IS
    'Nonce || AES-256-GCM ciphertext of the webhook URL; key derived by HKDF-SHA256 from the session secret, '
    'the area id (and channel) as associated data, so a ciphertext copied to another area does not decrypt.';
COMMENT ON COLUMN area_webhooks.key_hint IS
    'Last 4 characters of the robot key, so a supervisor can tell which robot is set; never more of it.';
COMMENT ON COLUMN area_webhooks.updated_by IS 'Member who set the webhook last (admin or supervisor of the area).';
COMMENT ON COLUMN area_webhooks.updated_at IS 'When the webhook was set last (injectable clock).';
