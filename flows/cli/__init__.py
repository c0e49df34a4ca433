"""The `assetgen` command line: one module per command group, assembled in app.py."""

from assetgen.flows.cli.app import app, main

__all__ = ["app", "main"]
