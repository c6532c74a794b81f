"""Geography: H3 cells, distances and ETA, PostGIS types, the live driver index in Redis."""
