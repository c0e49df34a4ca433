"""`python -m assetgen` is the `assetgen` command."""

from assetgen.flows.cli import main

main()
