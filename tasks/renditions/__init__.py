"""Renditions: resized, re-encoded copies of each original, marked as AI-generated."""
