"""What the commands share: options, exit codes, and how bad input is reported."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from assetgen.tasks.config.base import ConfigError
from assetgen.tasks.store.assets import AssetStore

if TYPE_CHECKING:
    from assetgen.tasks.config.job import JobConfig

EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Job config YAML (over configs/default.yaml).")
]
StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Store URL [default: the config's store].")
]
ManifestFormatOpt = Annotated[
    str | None,
    typer.Option("--format", help="Manifest format: csv, parquet or jsonl (default: extension)."),
]
BudgetOpt = Annotated[
    float | None, typer.Option("--budget", help="Hard cap on spend for this run, USD.")
]
ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--mode",
        help="online, or batch: submit to OpenAI's Batch API at its discount and store the "
        "results later with `assetgen collect`.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option("--where", help="KEY=VALUE on a partition, column or metadata key; repeatable."),
]


def open_store(store: str | None, config: Path | None) -> AssetStore:
    """The store of `--store`, else of the config. A store named with no config is opened
    as the default config would (its store_options are empty) without loading it: the
    catalog commands then need none of what a job config holds (presets, overlays)."""
    if store is not None and config is None:
        return AssetStore(store)
    from assetgen.tasks.config.job import load_job_config

    try:
        cfg = load_job_config(config, {"store": store})
    except ConfigError as e:
        fail(str(e))
    return AssetStore(cfg.store, cfg.store_options)


def fail(message: str) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(2)


def parse_where(where: list[str] | None) -> list[tuple[str, str]]:
    pairs = []
    for item in where or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--where {item!r}: expected KEY=VALUE")
        pairs.append((key.strip(), value))
    return pairs


def bad_input(e: Exception, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps({"error": str(e)}))
    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(str(e))}", highlight=False
    )
    raise typer.Exit(EXIT_BAD_INPUT) from None


def check_credentials(cfg: JobConfig) -> None:
    """What must be right before anything is spent: the API key, and the signing material."""
    # Here, not at the top: every command imports this module, few sign (cryptography, c2pa).
    from assetgen.tasks.renditions.signing import signing_material

    if cfg.provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError("provider openai needs OPENAI_API_KEY in the environment")
    signing_material(cfg)
