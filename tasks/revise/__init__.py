"""Revise: a new version of each rejected asset, the reviewer's note put to use."""
