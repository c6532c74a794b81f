"""Fares, quotes and surge."""
