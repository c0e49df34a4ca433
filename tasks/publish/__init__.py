"""Publish: approved, current versions to stable keys in a destination, with a feed."""
