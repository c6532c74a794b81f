"""Riders, drivers, vehicles and their bearer tokens."""
