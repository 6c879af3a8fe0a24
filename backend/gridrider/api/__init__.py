"""HTTP edge only: parse → call domain → return Struct. One controller per resource."""
