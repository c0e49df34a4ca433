"""assetgen: a batch image-asset pipeline on Prefect.

The repository keeps `flows/` and `tasks/` at its top; they are installed as
`assetgen.flows` (the Prefect flows and the `assetgen` command line) and
`assetgen.tasks` (the work, one sub-package per stage of the data flow), so
nothing of ours is importable as a bare `flows` or `tasks`, names a Prefect
project usually has for its own code.
"""
