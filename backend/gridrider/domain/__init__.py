"""Rules: states and transitions, dedupe, deadlines, points, geo. No HTTP, no SQL strings."""
