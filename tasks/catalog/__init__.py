"""The catalog: a queryable table of every asset, rebuilt from the store when needed."""
