"""gridrider: couriers report street hazards, grid teams fix them within deadlines."""

__version__ = "0.1.0"
