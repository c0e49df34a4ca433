"""The API key never shows: not in debug output, the store, Prefect's database or errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from assetgen.tasks.generation.openai_images import OpenAIProvider, redact
from assetgen.tasks.generation.providers import ProviderError
from assetgen.tasks.plan.jobs import Job
from tests.fakes.images_api import FakeOpenAI

CANARY = "sk-canary-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4"
WRONG = "sk-canary-WRONG-0b1c2d3e4f5a6b7c8d9e0f1a2b3c"


def _files_containing(root: Path, needle: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


def test_key_never_appears_anywhere(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.api_key = CANARY
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "id,prompt,size\n"
        "ok1,a red chair,1024x1024\n"
        "ok2,a blue lamp,1024x1024\n"
        "refused,something [[moderation]],1024x1024\n"
        "bad,a table,1000x1000\n"
        "flaky,a stool [[status:500x1]],1024x1024\n"
    )
    home = tmp_path / "prefect"
    env = {
        **os.environ,
        "OPENAI_BASE_URL": fake.base_url,
        "PREFECT_HOME": str(home),
        "PREFECT_LOGGING_LEVEL": "DEBUG",
        "OPENAI_LOG": "debug",
    }
    env.pop("PREFECT_API_URL", None)
    cli = str(Path(sys.executable).parent / "assetgen")
    outputs = []
    for key, expected_code in ((CANARY, 1), (WRONG, 1)):
        proc = subprocess.run(
            [
                cli,
                "run",
                str(manifest),
                "--store",
                str(tmp_path / "store"),
                "--provider",
                "openai",
                "--ipm",
                "6000",
                "--json",
            ],
            env={**env, "OPENAI_API_KEY": key},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == expected_code, proc.stderr[-3000:]
        outputs.append(proc.stdout + proc.stderr)
    assert '"generated": 3' in outputs[0]  # the first run did real work
    assert "401" in outputs[1] and "sk-***" in outputs[1]  # the second was refused
    for key in (CANARY, WRONG):
        for text in outputs:
            assert key not in text
        assert _files_containing(tmp_path / "store", key) == []
        assert _files_containing(home, key) == []  # logs, flow runs, artifacts


def test_error_messages_are_redacted(fake: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(api_key=WRONG, base_url=fake.base_url, max_retries=0)
    job = Job(
        asset_id="a1",
        row=1,
        row_id="r1",
        variant=0,
        model="gpt-image-2",
        prompt="x",
        size="1024x1024",
        quality="low",
        output_format="png",
        output_compression=None,
        background="auto",
        cost_low=0,
        cost_expected=0,
        cost_worst=0,
    )
    with pytest.raises(ProviderError) as caught:
        asyncio.run(OpenAIProvider(timeout_s=5, client=client).generate(job))
    assert caught.value.scope == "run"
    assert WRONG not in caught.value.describe()
    assert WRONG not in str(caught.value)
    assert "sk-***" in caught.value.describe()


@pytest.mark.parametrize(
    "text",
    [
        f"Incorrect API key provided: {CANARY}.",
        "key sk-proj-abc123def456ghi789 here",
        "sk-abcd****************wxyz",
    ],
)
def test_redact(text: str) -> None:
    assert "sk-***" in redact(text)
    assert "abc123" not in redact(text) and CANARY not in redact(text)
