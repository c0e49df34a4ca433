"""prompt_template: rendered per row from its columns, in a sandbox, strict about missing values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assetgen.tasks.config.job import ConfigError, load_job_config
from assetgen.tasks.config.models import ModelCaps
from assetgen.tasks.manifest.prompts import PromptTemplate, TemplateError
from assetgen.tasks.manifest.read import Reject
from assetgen.tasks.manifest.rows import RowContext
from assetgen.tasks.plan.jobs import Job, Planner
from tests.helpers import plan_all, write_manifest

TEMPLATE = "Studio photo of the {{ product }} in {{ color }}"


def plan_rows(
    planner: Planner, folder: Path, rows: list[dict[str, Any]], fmt: str = "csv"
) -> tuple[list[Job], list[Reject]]:
    return plan_all(planner, write_manifest(str(folder / f"m.{fmt}"), rows))


# --- rendering -----------------------------------------------------------------------------


def test_template_renders_from_row_columns(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rows = [
        {"id": "a", "product": "mug", "color": "blue"},
        {"id": "b", "product": "lamp", "color": "red"},
    ]
    jobs, rejects = plan_rows(make_planner(prompt_template=TEMPLATE), tmp_path, rows)
    assert rejects == []
    assert [(j.row, j.prompt) for j in jobs] == [
        (1, "Studio photo of the mug in blue"),
        (2, "Studio photo of the lamp in red"),
    ]
    # Template columns are still kept as metadata.
    assert jobs[0].metadata == {"product": "mug", "color": "blue"}


def test_template_replaces_the_prompt_column(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rows = [{"id": "a", "prompt": "ignored", "product": "mug", "color": "blue"}]
    jobs, rejects = plan_rows(make_planner(prompt_template=TEMPLATE), tmp_path, rows)
    assert rejects == []
    assert jobs[0].prompt == "Studio photo of the mug in blue"


def test_rendered_prompt_is_trimmed(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    planner = make_planner(prompt_template="\n  A {{ color }} mug  \n")
    jobs, _ = plan_rows(planner, tmp_path, [{"id": "a", "color": "red"}])
    assert jobs[0].prompt == "A red mug"


def test_jsonl_values_keep_their_types_in_the_template(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(prompt_template="{{ count * 2 }} {{ tags | join(', ') }}")
    jobs, rejects = plan_rows(
        planner, tmp_path, [{"id": "a", "count": 3, "tags": ["red", "round"]}], "jsonl"
    )
    assert rejects == []
    assert jobs[0].prompt == "6 red, round"


def test_row_values_are_not_template_code(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(prompt_template="A {{ color }} mug")
    rows = [{"id": "a", "color": "{{ 7 * 7 }} {% if true %}x{% endif %}"}]
    jobs, rejects = plan_rows(planner, tmp_path, rows)
    assert rejects == []
    assert jobs[0].prompt == "A {{ 7 * 7 }} {% if true %}x{% endif %} mug"


def test_rendered_prompt_is_checked_like_a_prompt(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(prompt_template="{{ text }}")
    rows = [{"id": "a", "text": "fine"}, {"id": "b", "text": "x" * 32_001}]
    jobs, rejects = plan_rows(planner, tmp_path, rows)
    assert [j.row for j in jobs] == [1]
    assert [(r.row, r.column, r.code) for r in rejects] == [(2, "prompt", "too_long")]


def test_template_that_renders_to_nothing_is_an_empty_prompt(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(prompt_template="{% if color == 'red' %}A red mug{% endif %}")
    rows = [{"id": "a", "color": "red"}, {"id": "b", "color": "blue"}]
    jobs, rejects = plan_rows(planner, tmp_path, rows)
    assert [j.prompt for j in jobs] == ["A red mug"]
    assert [(r.row, r.column, r.code) for r in rejects] == [(2, "prompt", "missing")]


# --- missing values ------------------------------------------------------------------------


def test_missing_column_rejects_the_row_naming_the_variable(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rows: list[dict[str, Any]] = [
        {"id": "a", "product": "mug", "color": "blue"},
        {"id": "b", "product": "lamp"},
        {"id": "c", "product": "vase", "color": "green"},
    ]
    jobs, rejects = plan_rows(make_planner(prompt_template=TEMPLATE), tmp_path, rows, "jsonl")
    assert [j.row for j in jobs] == [1, 3]
    assert [(r.row, r.id, r.column, r.code) for r in rejects] == [(2, "b", "color", "template")]
    assert "'color' is undefined" in rejects[0].reason


@pytest.mark.parametrize("cell", ["", "   "], ids=["empty", "blank"])
def test_empty_cell_counts_as_missing(
    cell: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rows = [
        {"id": "a", "product": "mug", "color": "blue"},
        {"id": "b", "product": "lamp", "color": cell},
    ]
    jobs, rejects = plan_rows(make_planner(prompt_template=TEMPLATE), tmp_path, rows)
    assert [j.row for j in jobs] == [1]
    assert [(r.row, r.column, r.code) for r in rejects] == [(2, "color", "template")]
    assert "color" in rejects[0].reason


def test_missing_object_of_an_attribute_is_named(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(prompt_template="A {{ product.name }}")
    jobs, rejects = plan_rows(planner, tmp_path, [{"id": "a", "color": "red"}], "jsonl")
    assert jobs == []
    assert [(r.row, r.column, r.code) for r in rejects] == [(1, "product", "template")]


def test_missing_attribute_of_a_present_value_blames_the_template(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(prompt_template="A {{ product.name }}")
    jobs, rejects = plan_rows(planner, tmp_path, [{"id": "a", "product": "mug"}], "jsonl")
    assert jobs == []
    assert [(r.row, r.column, r.code) for r in rejects] == [(1, "prompt_template", "template")]
    assert "name" in rejects[0].reason


def test_a_template_failure_is_the_only_prompt_reject(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    # No extra "prompt is empty" on top of the missing variable; other columns still checked.
    rows = [{"id": "a", "product": "mug", "n": "0"}]
    jobs, rejects = plan_rows(make_planner(prompt_template=TEMPLATE), tmp_path, rows)
    assert jobs == []
    assert [(r.row, r.column, r.code) for r in rejects] == [
        (1, "color", "template"),
        (1, "n", "out_of_range"),
    ]


def test_defined_test_makes_a_column_optional(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(
        prompt_template="A mug{% if color is defined %} in {{ color }}{% endif %}"
    )
    rows = [{"id": "a", "color": "red"}, {"id": "b", "color": ""}]
    jobs, rejects = plan_rows(planner, tmp_path, rows)
    assert rejects == []
    assert [j.prompt for j in jobs] == ["A mug in red", "A mug"]


# --- the default filter --------------------------------------------------------------------


def test_default_filter_fills_missing_and_empty_cells(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(prompt_template="A {{ color | default('white') }} mug")
    rows: list[dict[str, Any]] = [
        {"id": "given", "color": "red"},
        {"id": "empty", "color": ""},
        {"id": "blank", "color": "  "},
        {"id": "absent"},
    ]
    jobs, rejects = plan_rows(planner, tmp_path, rows, "jsonl")
    assert rejects == []
    assert [(j.row_id, j.prompt) for j in jobs] == [
        ("given", "A red mug"),
        ("empty", "A white mug"),
        ("blank", "A white mug"),
        ("absent", "A white mug"),
    ]


def test_default_filter_on_one_column_does_not_excuse_another(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(prompt_template="A {{ color | default('white') }} {{ product }}")
    jobs, rejects = plan_rows(planner, tmp_path, [{"id": "a", "color": "", "product": ""}])
    assert jobs == []
    assert [(r.row, r.column) for r in rejects] == [(1, "product")]


# --- sandbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attack", "words"),
    [
        ("{{ ''.__class__.__mro__ }}", ["SecurityError", "__class__", "unsafe"]),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", ["SecurityError", "unsafe"]),
        ("{{ cycler.__init__.__globals__ }}", ["SecurityError", "__init__", "unsafe"]),
        ("{{ lipsum.__globals__['os'] }}", ["SecurityError", "__globals__", "unsafe"]),
        ("{{ color.__class__ }}", ["SecurityError", "unsafe"]),
        ("{{ color | attr('__class__') }}", ["SecurityError", "unsafe"]),
        ("{{ range(10 ** 7) | list | length }}", ["OverflowError", "Range too big"]),
    ],
)
def test_sandbox_escape_rejects_the_row_and_the_others_go_on(
    attack: str,
    words: list[str],
    tmp_path: Path,
    make_planner: Callable[..., Planner],
) -> None:
    # The attack runs only for row 2, so rows 1 and 3 show the plan carries on.
    template = f"{{% if mode == 'evil' %}}{attack}{{% else %}}A {{{{ color }}}} mug{{% endif %}}"
    rows = [
        {"id": "a", "mode": "plain", "color": "red"},
        {"id": "b", "mode": "evil", "color": "red"},
        {"id": "c", "mode": "plain", "color": "blue"},
    ]
    jobs, rejects = plan_rows(make_planner(prompt_template=template), tmp_path, rows)
    assert [(j.row, j.prompt) for j in jobs] == [(1, "A red mug"), (3, "A blue mug")]
    assert [(r.row, r.id, r.column, r.code) for r in rejects] == [
        (2, "b", "prompt_template", "template")
    ]
    for word in words:
        assert word in rejects[0].reason, rejects[0].reason


def test_sandbox_blocks_internals_even_in_a_direct_render() -> None:
    with pytest.raises(TemplateError) as err:
        PromptTemplate("{{ ''.__class__.__mro__ }}").render({})
    assert err.value.variable is None
    assert "unsafe" in str(err.value)


# --- syntax errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("A {{ color mug", ["prompt_template", "line 1"]),
        ("A mug\n{% if color %}in {{ color }}", ["prompt_template", "line 2"]),
        ("{{ color | no_such_filter }}", ["prompt_template", "no_such_filter"]),
        ("{% for x in %}{% endfor %}", ["prompt_template"]),
    ],
)
def test_template_syntax_error_is_a_config_error(
    source: str, words: list[str], models: dict[str, ModelCaps]
) -> None:
    config = load_job_config(None, {"prompt_template": source})
    with pytest.raises(ConfigError) as err:
        RowContext.build(config, models)
    for word in words:
        assert word in str(err.value), str(err.value)


def test_syntax_error_stops_the_planner_before_any_row(
    make_planner: Callable[..., Planner],
) -> None:
    with pytest.raises(ConfigError, match="prompt_template: line 1"):
        make_planner(prompt_template="{{ color ")


def test_no_template_means_the_prompt_column(
    tmp_path: Path, make_planner: Callable[..., Planner], models: dict[str, ModelCaps]
) -> None:
    assert RowContext.build(load_job_config(None, {}), models).template is None
    jobs, _ = plan_rows(make_planner(), tmp_path, [{"id": "a", "prompt": "{{ color }} as text"}])
    assert jobs[0].prompt == "{{ color }} as text"


# --- asset_id follows the rendered prompt --------------------------------------------------


def test_asset_id_follows_the_rendered_prompt(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(prompt_template="A {{ color | lower }} {{ product }}")
    rows = [
        {"id": "a", "color": "RED", "product": "mug", "note": "first"},
        {"id": "b", "color": "red", "product": "mug", "note": "second"},
        {"id": "c", "color": "blue", "product": "mug", "note": "first"},
    ]
    jobs, rejects = plan_rows(planner, tmp_path, rows)
    assert rejects == []
    ids = {j.row_id: j.asset_id for j in jobs}
    assert jobs[0].prompt == jobs[1].prompt == "A red mug"
    assert ids["a"] == ids["b"]
    assert ids["a"] != ids["c"]

    # The same text given as a plain prompt column is the same image.
    (plain,), _ = plan_rows(make_planner(), tmp_path, [{"id": "x", "prompt": "A red mug"}])
    assert plain.asset_id == ids["a"]


def test_changing_the_template_changes_the_asset_id(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rows = [{"id": "a", "color": "red"}]
    (one,), _ = plan_rows(make_planner(prompt_template="A {{ color }} mug"), tmp_path, rows)
    (two,), _ = plan_rows(make_planner(prompt_template="A {{ color }} cup"), tmp_path, rows)
    (same,), _ = plan_rows(make_planner(prompt_template="A {{color}} mug "), tmp_path, rows)
    assert one.asset_id != two.asset_id
    assert one.asset_id == same.asset_id
