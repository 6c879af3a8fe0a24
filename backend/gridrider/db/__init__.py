"""The only place SQL lives: the pool, the migration runner and one module per aggregate."""
