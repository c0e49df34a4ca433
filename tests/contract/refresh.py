"""Extract the schemas assetgen relies on from OpenAI's published API description.

    python tests/contract/refresh.py PATH/TO/openapi.json \\
        [--source-commit SHA --source-date YYYY-MM-DD] [--out FILE]

PATH is `openapi.json` of https://github.com/openai/openai-openapi (MIT licence,
copyright OpenAI). The roots below and every schema they reference, directly
or through other schemas (the transitive `$ref` closure), are copied verbatim
into tests/contract/openai-images.schema.json as
`{"x-source": {...}, "components": {"schemas": {...}}}`, so that the `$ref`s
(`#/components/schemas/Name`) resolve inside the extracted document as they do
in the whole description. tests/test_contract.py validates against it.

Standard library only: it runs without the project's virtualenv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# What assetgen sends and reads, and why each is kept (see README.md here).
ROOTS = {
    "CreateImageRequest": "POST /v1/images/generations: online and batch generation bodies",
    "CreateImageEditRequest": "POST /v1/images/edits, multipart: online edits",
    "EditImageBodyJsonParam": "POST /v1/images/edits, JSON: batch edit lines, JSON online edits",
    "ImagesResponse": "the answer to both image endpoints, online and in batch output lines",
    "OpenAIFile": "the file object POST /v1/files answers (references, batch input)",
    "CreateFileRequest": "POST /v1/files, multipart form",
    "Batch": "the batch object create, retrieve, list and cancel answer",
    "CreateBatchRequest": "POST /v1/batches",
}
REPOSITORY = "openai/openai-openapi"
PREFIX = "#/components/schemas/"
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "openai-images.schema.json"
COPYRIGHT = "Copyright (c) OpenAI (https://openai.com)"
# The MIT licence of openai/openai-openapi (its LICENSE file), whose notice
# must travel with any substantial portion of the description.
LICENCE_TEXT = f"""The MIT License

{COPYRIGHT}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in
all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
THE SOFTWARE.
"""


def refs(node: Any) -> set[str]:
    """Every `$ref` anywhere inside a schema."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(v for k, v in item.items() if k != "$ref")
        elif isinstance(item, list):
            stack.extend(item)
    return found


def closure(schemas: dict[str, Any], roots: list[str]) -> dict[str, Any]:
    """The roots and every schema they reference, by name, sorted."""
    kept: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        if name not in schemas:
            raise SystemExit(f"schema {name!r} is not in the description's components.schemas")
        kept[name] = schemas[name]
        for ref in sorted(refs(schemas[name])):
            if not ref.startswith(PREFIX):
                raise SystemExit(f"{name}: $ref {ref!r} does not point into components.schemas")
            todo.append(ref[len(PREFIX) :])
    return dict(sorted(kept.items()))


def git_facts(path: Path) -> tuple[str | None, str | None]:
    """Commit and commit date of the file, when it sits in a git work tree."""
    try:
        out = subprocess.run(
            ["git", "-C", str(path.parent), "log", "-1", "--format=%H %cs", "--", path.name],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return (out[0], out[1]) if len(out) == 2 else (None, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("openapi", type=Path, help="openapi.json of openai/openai-openapi")
    parser.add_argument("--source-commit", help="the commit of openai/openai-openapi it is from")
    parser.add_argument("--source-date", help="that commit's date, YYYY-MM-DD")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    args = parser.parse_args(argv)

    raw = args.openapi.read_bytes()
    description = json.loads(raw)
    schemas = description.get("components", {}).get("schemas", {})
    kept = closure(schemas, list(ROOTS))

    commit, date = args.source_commit, args.source_date
    if commit is None or date is None:
        found_commit, found_date = git_facts(args.openapi.resolve())
        commit, date = commit or found_commit, date or found_date
    if date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise SystemExit(f"--source-date {date!r}: expected YYYY-MM-DD")
    if commit is None or date is None:
        print("warning: source commit or date unknown; pass --source-commit", file=sys.stderr)

    info = description.get("info", {})
    source = {
        "repository": f"https://github.com/{REPOSITORY}",
        "path": "openapi.json",
        "commit": commit or "unknown",
        "date": date or "unknown",
        "api_version": info.get("version"),
        "openapi": description.get("openapi"),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "licence": "MIT",
        "copyright": COPYRIGHT,
        "licence_text": LICENCE_TEXT,
        "roots": ROOTS,
        "kept": "the roots and the transitive closure of their $refs, copied verbatim",
        "refresh": (
            "python tests/contract/refresh.py PATH/TO/openapi.json "
            "--source-commit SHA --source-date YYYY-MM-DD"
        ),
    }
    document = {"x-source": source, "components": {"schemas": kept}}
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.out}: {len(kept)} schemas ({', '.join(kept)}), {len(text.encode())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
