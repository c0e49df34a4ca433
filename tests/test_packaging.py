"""One installed package, `assetgen`: the wheel's names, and no collision with a user's own code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "examples" / "manifest.csv"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    build = ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)]
    subprocess.run(
        [sys.executable, "-m", "pip", *build],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("assetgen-*.whl")
    return built


def test_the_wheel_installs_one_package_holding_every_module_and_data_file(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "assetgen",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    for folder in ("flows", "tasks"):
        for module in (ROOT / folder).rglob("*.py"):
            assert f"assetgen/{module.relative_to(ROOT).as_posix()}" in names
    for data in (
        "configs/default.yaml",
        "configs/presets/ecommerce.yaml",
        "deployments/prefect.yaml",
    ):
        assert f"assetgen/{data}" in names
    assert "assetgen/tasks/reporting/templates/contact_sheet.html.j2" in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    )
    assert b"assetgen = assetgen.flows.cli:app" in entry_points


@pytest.fixture
def user_project(wheel: Path, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A Prefect user's project folder with its own flows/ and tasks/, and the wheel installed.

    The wheel is unpacked into a folder of its own (a regular install, not
    this checkout's editable one); the user's folder comes first on sys.path
    after it, as in a worker's working directory.
    """
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    project = tmp_path / "project"
    for name in ("flows", "tasks"):
        package = project / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name}')\n")
        (package / "generate.py").write_text("raise ImportError('the user\\'s own module')\n")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{project}"}
    yield project, env


def _python(project: Path, env: dict[str, str], code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.stdout


def test_plan_runs_from_a_folder_with_its_own_flows_and_tasks(
    user_project: tuple[Path, dict[str, str]],
) -> None:
    project, env = user_project
    code = (
        "import sys, assetgen\n"
        "print(assetgen.__file__)\n"
        "from assetgen.flows.cli import app\n"
        "app(['plan', sys.argv[1], '--rejects', 'r.csv', '--json'])\n"
    )
    where, out = _python(project, env, code, str(MANIFEST)).splitlines()
    assert where.startswith(str(project.parent / "site"))  # the wheel, not this checkout
    plan = json.loads(out)
    assert (plan["valid"], plan["rejected"], plan["jobs"]) == (5, 0, 6)


def test_a_deployment_entrypoint_runs_from_a_folder_with_its_own_flows_and_tasks(
    user_project: tuple[Path, dict[str, str]], prefect_api_url: str, tmp_path: Path
) -> None:
    project, env = user_project
    code = (
        "import json, sys\n"
        "from prefect.flows import load_flow_from_entrypoint\n"
        "flow = load_flow_from_entrypoint(sys.argv[1])\n"
        "overrides = {'provider': 'placeholder', 'store': sys.argv[3], 'limits.ipm': 6000}\n"
        "print(json.dumps(flow(sys.argv[2], overrides=overrides)))\n"
    )
    entrypoint = "assetgen.flows.generate:generate_assets"  # as in deployments/prefect.yaml
    out = _python(
        project,
        {**env, "PREFECT_API_URL": prefect_api_url},
        code,
        entrypoint,
        str(MANIFEST),
        str(tmp_path / "store"),
    )
    summary = json.loads(out.splitlines()[-1])
    assert summary["generated"] == 6
