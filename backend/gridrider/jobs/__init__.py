"""arq wiring and job functions: claim → call domain → record. The `jobs` table is the record."""
