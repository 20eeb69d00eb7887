"""The headless pipeline: read -> normalize -> references -> synthesize -> classify -> map."""
