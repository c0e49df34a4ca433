"""`assetgen provenance FILE...`: the C2PA manifest chain of files, validated offline."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Annotated, Any

import fsspec
import typer
from PIL import Image
from rich.console import Console
from rich.markup import escape

from assetgen.flows.cli.common import EXIT_OK, EXIT_SOME_FAILED, JsonOpt, fail
from assetgen.tasks.renditions.credentials import Credentials, mime_of, read_credentials


def provenance(
    files: Annotated[list[str], typer.Argument(help="Files or URIs (s3://...) to check.")],
    trust_anchors: Annotated[
        Path | None,
        typer.Option(
            "--trust-anchors", help="PEM file of the root certificates to trust (offline)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Each file's Content Credentials: its claim, its parent's, the signers, whether trusted.

    Exit code 0: every file has a valid manifest; 1: some file has none or an
    invalid one; 2: a file or the trust anchors cannot be read.
    """
    anchors = None
    if trust_anchors is not None:
        try:
            anchors = trust_anchors.read_text(encoding="utf-8")
        except OSError as e:
            fail(f"--trust-anchors {trust_anchors}: {e.strerror or e}")
    results: list[dict[str, Any]] = []
    for uri in files:
        try:
            with fsspec.open(uri, "rb") as f:
                data = f.read()
        except OSError as e:
            fail(f"{uri}: cannot read: {e.strerror or e}")
        found = read_credentials(data, _mime(data, uri), anchors)
        results.append({"file": uri, **found.model_dump()})
    if as_json:
        print(json.dumps({"files": results}))
    else:
        console = Console(highlight=False, soft_wrap=True)
        for result in results:
            _print(console, result["file"], Credentials.model_validate(result), anchors is not None)
    bad = [r for r in results if not r["present"] or r["validation_state"] == "Invalid"]
    raise typer.Exit(EXIT_SOME_FAILED if bad else EXIT_OK)


def _mime(data: bytes, uri: str) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return mime_of((image.format or "").lower())
    except Exception:  # not an image Pillow reads here: go by the name
        return mime_of(uri.rsplit(".", 1)[-1].lower())


def _print(console: Console, uri: str, found: Credentials, anchored: bool) -> None:
    if not found.present:
        console.print(f"[bold]{escape(uri)}[/]: [yellow]no C2PA manifest[/]")
        return
    state = found.validation_state or "unknown"
    trust = (
        "trusted" if found.trusted else "signer not trusted" if anchored else "no --trust-anchors"
    )
    colour = "red" if state == "Invalid" else "green" if found.trusted else "yellow"
    console.print(f"[bold]{escape(uri)}[/]: [{colour}]{state}[/] ({trust})")
    depth, node = 0, found
    while node is not None:
        label = "this file" if depth == 0 else "parent" + " of parent" * (depth - 1)
        actions = ", ".join(node.actions) or "none"
        kind = node.digital_source_type
        source = f", {kind.rsplit('/', 1)[-1]}" if kind else ""
        console.print(
            f"  {label}: claim by {escape(str(node.claim_generator))}, signed by "
            f"{escape(str(node.signer))}; actions {escape(actions)}{escape(source)}"
        )
        depth, node = depth + 1, node.parent
    for error in found.errors:
        console.print(f"  [red]{escape(error)}[/]")
