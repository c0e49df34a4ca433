"""The Prefect flows (each reads like its data flow) and the `assetgen` command line."""
