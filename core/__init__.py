"""Shared foundations: settings, database plumbing, clock, ids and domain errors."""
