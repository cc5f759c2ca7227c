"""Photo metadata: reading and writing the keywords inside photos."""
