"""Where the catalog's Delta table is, and how delta-rs reaches it."""

from __future__ import annotations

import os
from typing import Any

from assetgen.tasks.store.assets import AssetStore

CATALOG = "_catalog"
RUN_KEY = "assetgen_run"  # commit metadata: which run wrote a version
FILE_BYTES = 8 * 2**20  # the table's data files, as compact and every MERGE write them
# delta-rs rewrites a whole file to change one row of it: a MERGE's output files must stay
# as small as compact's (its default is 100 MB, some 300,000 rows to copy for one change).
TABLE_PROPERTIES = {"delta.targetFileSize": str(FILE_BYTES)}
# Object stores delta-rs reaches itself (from the AWS, Google or Azure environment).
DELTA_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss")


class CatalogUnavailable(ValueError):
    """The store is on a filesystem delta-rs cannot write (fsspec's memory://, ...)."""


def location(store: AssetStore) -> tuple[str, dict[str, str]]:
    """The table's URI for delta-rs and its storage options, from the store's own settings.

    delta-rs does not use fsspec: an S3 endpoint, keys and region are read off
    the store's s3fs filesystem (its options, fsspec's config, the AWS
    environment it already honours) and passed the way delta-rs takes them.
    """
    if store.is_local:
        return os.path.abspath(store.path(CATALOG)), {}
    scheme = store.url.split("://", 1)[0]
    if scheme not in DELTA_SCHEMES:
        raise CatalogUnavailable(
            f"store {store.url}: the catalog (a Delta table) needs a local folder or an "
            f"{', '.join(s + '://' for s in DELTA_SCHEMES)} store, not {scheme}://"
        )
    uri = store.uri(CATALOG)
    if not scheme.startswith("s3"):
        return uri, {}
    fs: Any = store.fs
    options: dict[str, str] = {}
    endpoint = getattr(fs, "endpoint_url", None) or (fs.client_kwargs or {}).get("endpoint_url")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    for option, attribute in (
        ("AWS_ACCESS_KEY_ID", "key"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
    ):
        if value := getattr(fs, attribute, None):
            options[option] = value
    region = (fs.client_kwargs or {}).get("region_name") or os.environ.get("AWS_DEFAULT_REGION")
    if region and "AWS_REGION" not in os.environ:
        options["AWS_REGION"] = region
    return uri, options
