"""The HTTP API: health, events, dead letters, device counts, metrics."""
