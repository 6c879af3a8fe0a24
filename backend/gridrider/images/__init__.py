"""Photos: the blob store interface and (later) the Pillow pipeline."""
