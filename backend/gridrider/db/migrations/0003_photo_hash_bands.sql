-- Reused-photo lookup by multi-index hashing: the 64-bit dHash split into four 16-bit bands, each
-- indexed with the upload time. Two hashes within Hamming distance d share at least one band within
-- d/4 bits, so probing each band's near values finds every candidate without scanning all photos.
CREATE INDEX photos_dhash_band0_idx ON photos ((((dhash >> 48) & 65535)::int), created_at) WHERE dhash IS NOT NULL;
CREATE INDEX photos_dhash_band1_idx ON photos ((((dhash >> 32) & 65535)::int), created_at) WHERE dhash IS NOT NULL;
CREATE INDEX photos_dhash_band2_idx ON photos ((((dhash >> 16) & 65535)::int), created_at) WHERE dhash IS NOT NULL;
CREATE INDEX photos_dhash_band3_idx ON photos (((dhash & 65535)::int), created_at) WHERE dhash IS NOT NULL;

COMMENT ON COLUMN incidents.area_id IS
    'Routed: the grid that owns the incident. Unrouted: the smallest area containing the point (or the county), '
    'whose supervisors must dispatch it.';
