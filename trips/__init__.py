"""The trip lifecycle and its persistence."""
