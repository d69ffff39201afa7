"""Rules over tracked objects: zones, lines, dwell, counts and schedules → alerts (`sightline rules`)."""
