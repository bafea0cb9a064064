"""Spec files: YAML problems with file and line, did-you-mean, path resolution, round trips, the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from unified_ft.errors import SpecError
from unified_ft.schema import schema_dict, schema_text
from unified_ft.specfile import dump_spec, load_spec, parse_spec, validate_spec_dict

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml"))

GOOD = """\
name: unit
model:
  path: org/model
data:
  train:
    - path: train.jsonl
      format: alpaca
training:
  max_steps: 3
"""


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value


def problem_lines(err: SpecError) -> list[str]:
    return [str(p) for p in err.problems]


# --- problems with file names and lines -----------------------------------------------------------


def test_good_spec_loads(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.name == "unit" and spec.training.max_steps == 3


def test_unknown_top_level_key_has_line_and_suggestion(tmp_path):
    path = write(tmp_path, GOOD + "traning:\n  seed: 1\n")  # line 10
    err = load_error(path)
    assert len(err.problems) == 1
    text = str(err)
    assert "job.yaml:10" in text
    assert "unknown key 'traning'" in text
    assert "did you mean 'training'?" in text


def test_unknown_nested_key_has_line_and_suggestion(tmp_path):
    text = GOOD.replace("  max_steps: 3\n", "  max_steps: 3\n  learnig_rate: 0.001\n")  # line 10
    err = load_error(write(tmp_path, text))
    (problem,) = err.problems
    assert problem.where.endswith("job.yaml:10 (training.learnig_rate)")
    assert "unknown key 'learnig_rate'" in problem.message
    assert problem.hint == "did you mean 'learning_rate'?"
    assert str(tmp_path / "job.yaml") in str(err)


def test_unknown_key_inside_list_item_suggests_from_dataset_fields(tmp_path):
    text = GOOD.replace("      format: alpaca\n", "      format: alpaca\n      wieght: 2\n")  # line 8
    (problem,) = load_error(write(tmp_path, text)).problems
    assert "job.yaml:8" in problem.where and "data.train[0].wieght" in problem.where
    assert "did you mean 'weight'?" in problem.hint


def test_unknown_key_without_close_match_lists_known_keys(tmp_path):
    (problem,) = load_error(write(tmp_path, GOOD + "zzzzzz: 1\n")).problems
    assert "known keys here:" in problem.hint and "training" in problem.hint


def test_wrong_type_names_key_line_and_value(tmp_path):
    err = load_error(write(tmp_path, GOOD.replace("max_steps: 3", 'max_steps: "ten"')))
    (problem,) = err.problems
    assert "job.yaml:9" in problem.where and "training.max_steps" in problem.where
    assert "'ten'" in problem.message and "integer" in problem.message


def test_missing_required_key(tmp_path):
    text = GOOD.replace("model:\n  path: org/model\n", "")
    (problem,) = load_error(write(tmp_path, text)).problems
    assert "(model)" in problem.where
    assert "required key is missing" in problem.message
    assert "model:" in problem.hint


def test_several_problems_each_with_its_own_line(tmp_path):
    text = GOOD.replace("  max_steps: 3\n", '  max_steps: "x"\n  learnig_rate: 1\n')
    err = load_error(write(tmp_path, text))
    assert "2 problem(s)" in str(err)
    wheres = sorted(p.where for p in err.problems)
    assert any("job.yaml:9" in w for w in wheres) and any("job.yaml:10" in w for w in wheres)


def test_nested_value_error_points_at_its_section(tmp_path):
    text = GOOD + "adapter:\n  type: qlora\n"  # adapter on line 10; the key it lacks has no line of its own
    (problem,) = load_error(write(tmp_path, text)).problems
    assert "job.yaml:10 (adapter.bits)" in problem.where
    assert "adapter.bits" in problem.message


def test_invalid_yaml_names_the_line(tmp_path):
    text = "name: unit\nmodel:\n  path: a: b\n"
    err = load_error(write(tmp_path, text))
    assert "not valid YAML" in err.title
    (problem,) = err.problems
    assert problem.where == f"{tmp_path / 'job.yaml'}:3"


def test_tab_indentation_names_the_line(tmp_path):
    (problem,) = load_error(write(tmp_path, "name: unit\n\tmodel: x\n")).problems
    assert problem.where.endswith("job.yaml:2")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "42\n"])
def test_non_mapping_document(tmp_path, text):
    err = load_error(write(tmp_path, text))
    assert "is not a spec" in err.title
    assert "mapping" in str(err)


def test_missing_spec_file(tmp_path):
    err = load_error(tmp_path / "absent.yaml")
    assert "absent.yaml" in str(err) and "not found" in str(err)


def test_spec_path_that_is_a_directory(tmp_path):
    assert "not found" in str(load_error(tmp_path))


def test_parse_spec_accepts_json():
    data = yaml.safe_load(GOOD)
    assert parse_spec(json.dumps(data)).name == "unit"


def test_validate_spec_dict_default_source():
    with pytest.raises(SpecError) as info:
        validate_spec_dict({"name": "x"})
    assert info.value.title.startswith("<spec>")


# --- paths ----------------------------------------------------------------------------------------


def test_relative_paths_are_resolved_against_the_spec_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    (folder / "model").mkdir(parents=True)
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    text = ("name: unit\nmodel:\n  path: ./model\ndata:\n  train:\n    - path: data/train.jsonl\n"
            "      format: alpaca\n    - path: /abs/other.jsonl\n      format: alpaca\n  eval:\n"
            "    path: ../eval.jsonl\n    format: alpaca\n")
    spec = load_spec(write(folder, text))
    assert spec.data.train[0].path == str((folder / "data" / "train.jsonl").resolve())
    assert spec.data.train[1].path == "/abs/other.jsonl"
    assert spec.data.eval is not None and spec.data.eval.path == str((tmp_path / "eval.jsonl").resolve())
    assert spec.model.path == str((folder / "model").resolve())


def test_hub_id_model_path_is_left_alone(tmp_path):
    assert load_spec(write(tmp_path, GOOD)).model.path == "org/model"


def test_existing_relative_model_folder_without_dot_is_resolved(tmp_path):
    (tmp_path / "mymodel").mkdir()
    spec = load_spec(write(tmp_path, GOOD.replace("org/model", "mymodel")))
    assert spec.model.path == str((tmp_path / "mymodel").resolve())


# --- round trips ----------------------------------------------------------------------------------

ALPACA = [{"path": "/d/train.jsonl", "format": "alpaca"}]
PREF = [{"path": "/d/pref.jsonl", "format": "preference"}]
ROUND_TRIP = [
    pytest.param({}, id="minimal"),
    pytest.param({"method": "dpo", "data": {"train": PREF, "eval_split": 0.2}}, id="dpo"),
    pytest.param({"method": "grpo"}, id="grpo"),
    pytest.param({"adapter": {"type": "dora", "r": 4}}, id="dora"),
    pytest.param({"adapter": {"type": "qlora", "bits": 8}, "template": "chatml"}, id="qlora"),
    pytest.param({"template": {"name": "jinja", "jinja": "{{ x }}"}, "backend_options": {"trl": {"a": 1}}},
                 id="jinja"),
    pytest.param({"training": {"max_steps": 7, "report_to": ["wandb"]}}, id="max-steps"),
    pytest.param({"adapter": {"type": "full"}}, id="full"),
    pytest.param({"adapter": {"type": "freeze", "trainable_layers": 3}}, id="freeze"),
]


@pytest.mark.parametrize("extra", ROUND_TRIP)
def test_dump_spec_round_trips(extra):
    spec = validate_spec_dict({"name": "rt", "model": {"path": "org/m"}, "data": {"train": ALPACA}, **extra})
    text = dump_spec(spec)
    assert parse_spec(text) == spec


def test_dump_spec_writes_every_default():
    data = yaml.safe_load(dump_spec(validate_spec_dict({"name": "rt", "model": {"path": "m"},
                                                        "data": {"train": ALPACA}})))
    assert data["training"]["epochs"] == 1.0
    assert data["adapter"] == {**data["adapter"], "type": "lora", "r": 8, "alpha": 16.0, "dropout": 0.0}
    assert data["template"] == {"name": "model", "jinja": None, "system": None}


# --- reference specs and schema -------------------------------------------------------------------


def test_reference_specs_exist():
    assert len(SPEC_FILES) >= 5


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_reference_spec_validates(path):
    spec = load_spec(path)
    assert spec.name == path.stem
    for dataset in spec.data.train:
        assert Path(dataset.path).is_file(), f"{path.name}: dataset {dataset.path} does not exist"


@pytest.mark.parametrize(
    "path",
    SPEC_FILES,
    ids=lambda p: p.name,
)
def test_reference_spec_round_trips(path):
    spec = load_spec(path)
    assert parse_spec(dump_spec(spec)) == spec


def test_checked_in_schema_is_current():
    checked_in = (ROOT / "specs" / "unified_ft.schema.json").read_text(encoding="utf-8")
    assert checked_in == schema_text(), (
        "specs/unified_ft.schema.json is stale: run `uft schema -o specs/unified_ft.schema.json`")


def test_checked_in_eval_schema_is_current():
    from unified_ft.schema import eval_schema_text

    checked_in = (ROOT / "specs" / "eval.schema.json").read_text(encoding="utf-8")
    assert checked_in == eval_schema_text(), "specs/eval.schema.json is stale: run `uft schema --eval -o " \
        "specs/eval.schema.json`"
    assert json.loads(checked_in)["properties"]["schema_version"]["default"] == 1


def test_checked_in_effective_schema_is_current():
    from unified_ft.schema import effective_schema_text

    checked_in = (ROOT / "specs" / "effective.schema.json").read_text(encoding="utf-8")
    assert checked_in == effective_schema_text(), "specs/effective.schema.json is stale: run `uft schema " \
        "--effective -o specs/effective.schema.json`"
    schema = json.loads(checked_in)
    assert schema["properties"]["schema_version"]["default"] == 1
    assert {"samples", "batch", "learning_rate", "adapter", "precision", "optimizer", "order", "versions"} <= set(
        schema["required"])


def test_schema_is_valid_json_with_id():
    data = json.loads(schema_text())
    assert data["$schema"].startswith("https://json-schema.org/")
    assert data["additionalProperties"] is False
    assert set(data["required"]) == {"name", "model", "data"}


def test_every_property_in_defs_has_a_description():
    defs = schema_dict()["$defs"]
    assert {"ModelSpec", "LoraAdapter", "FreezeAdapter", "DataSpec", "DatasetSpec", "TrainingSpec", "PlainMethod",
            "DpoMethod"} <= set(defs)
    missing = [f"{name}.{key}" for name, obj in defs.items()
               for key, prop in obj.get("properties", {}).items() if not prop.get("description")]
    assert not missing, f"properties without a description: {missing}"
    assert all(obj.get("description") for obj in defs.values())


def _described(prop: dict, defs: dict) -> bool:
    if prop.get("description"):
        return True
    ref = prop.get("$ref", "")
    return bool(ref) and bool(defs[ref.rsplit("/", 1)[-1]].get("description"))


def test_every_top_level_property_is_described_directly_or_by_its_definition():
    schema = schema_dict()
    missing = [k for k, p in schema["properties"].items() if not _described(p, schema["$defs"])]
    assert not missing


def test_every_top_level_property_has_its_own_description():
    missing = [k for k, p in schema_dict()["properties"].items() if not p.get("description")]
    assert not missing, f"top-level properties without a description: {missing}"


def _accepts_string(prop: dict) -> bool:
    if prop.get("type") == "string":
        return True
    return any(_accepts_string(branch) for branch in prop.get("anyOf", []) + prop.get("oneOf", []))


@pytest.mark.parametrize("key", ["method", "template"])
def test_schema_allows_string_shorthand(key):
    assert _accepts_string(schema_dict()["properties"][key])


def test_checked_in_bakeoff_schema_is_current():
    from unified_ft.schema import bakeoff_schema_text

    checked_in = (ROOT / "specs" / "bakeoff.schema.json").read_text(encoding="utf-8")
    assert checked_in == bakeoff_schema_text(), "specs/bakeoff.schema.json is stale: run `uft schema --bakeoff -o " \
        "specs/bakeoff.schema.json`"
