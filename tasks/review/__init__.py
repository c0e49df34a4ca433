"""Review: decisions kept in the store, the catalog review columns, the review app."""
