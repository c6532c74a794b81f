"""Matching: supply, candidates, offers, and the dispatcher worker."""
