"""The `uft` command in-process: exit codes, messages without tracebacks, nothing left behind on errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unified_ft.cli import main

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")


def alpaca_file(path: Path, rows: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"instruction": f"say {i}", "input": "", "output": f"number {i}"}) + "\n"
                            for i in range(rows)), encoding="utf-8")
    return path


def write_spec(tmp_path: Path, extra: str = "", name: str = "unit", data: str | None = None,
               filename: str = "job.yaml") -> Path:
    """A spec with a local model folder (a config.json, no weights) and an alpaca dataset, both in tmp_path."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}", encoding="utf-8")
    if data is None:
        data = str(alpaca_file(tmp_path / "train.jsonl"))
    text = f"name: {name}\nmodel:\n  path: {model}\ndata:\n  train:\n    - path: {data}\n      format: alpaca\n"
    text += "training:\n  max_steps: 2\n" + extra
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")
    return path


def flat(text: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(text.split())


def outputs(capsys) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out, captured.err


def trl_ready() -> bool:
    from unified_ft.plugin import load_backend

    return load_backend("trl").environment().ready


# --- validate, help, schema, backends -------------------------------------------------------------


def test_validate_good_spec(tmp_path, capsys):
    assert main(["validate", str(write_spec(tmp_path))]) == 0
    out, err = outputs(capsys)
    assert flat(out).startswith("ok ")
    assert "unit (sft, lora, 1 train dataset(s))" in flat(out)
    assert "error" not in err


def test_validate_bad_spec_reports_problem_without_traceback(tmp_path, capsys):
    spec = write_spec(tmp_path, "  learnig_rate: 0.001\n")  # line 10
    assert main(["validate", str(spec)]) == 2
    out, err = outputs(capsys)
    both = out + err
    assert "Traceback" not in both
    assert "job.yaml:10 (training.learnig_rate)" in err
    assert "unknown key 'learnig_rate'" in err and "did you mean 'learning_rate'?" in err
    assert not out.strip().startswith("ok")


def test_validate_cross_field_problem(tmp_path, capsys):
    assert main(["validate", str(write_spec(tmp_path, "adapter:\n  type: qlora\n"))]) == 2
    _, err = outputs(capsys)
    assert "adapter.bits" in err and "Traceback" not in err


def test_validate_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "absent.yaml")]) == 2
    _, err = outputs(capsys)
    assert "absent.yaml" in err and "not found" in err


def test_validate_missing_file_with_debug_raises(tmp_path):
    from unified_ft.errors import SpecError

    with pytest.raises(SpecError):
        main(["--debug", "validate", str(tmp_path / "absent.yaml")])
    assert main(["validate", str(tmp_path / "absent.yaml")]) == 2  # --debug does not stick


def test_help(capsys):
    assert main(["--help"]) == 0
    out, _ = outputs(capsys)
    for command in ("validate", "translate", "run", "backends", "schema"):
        assert command in out


@pytest.mark.parametrize("argv", [["validate"], ["nosuchcommand"], ["validate", "x.yaml", "--bogus"], []],
                         ids=["missing-arg", "unknown-command", "unknown-option", "no-args"])
def test_usage_errors_return_2_without_traceback(argv, capsys):
    assert main(argv) == 2
    out, err = outputs(capsys)
    assert "Traceback" not in out + err
    assert (err if argv else out).strip()  # with no arguments the help is the message


def test_schema_prints_json(capsys):
    assert main(["schema"]) == 0
    out, _ = outputs(capsys)
    data = json.loads(out)
    assert data["title"] == "JobSpec" and "name" in data["properties"]


def test_schema_writes_file(tmp_path, capsys):
    from unified_ft.schema import schema_text

    target = tmp_path / "schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == schema_text()


def test_backends_lists_trl(capsys):
    assert main(["backends"]) == 0
    out, _ = outputs(capsys)
    assert "trl" in out and "method.sft" in out


def _matrix_rows(out: str) -> dict[str, list[str]]:
    """`uft backends --matrix` as feature -> one cell per backend (rich's box characters split the columns)."""
    lines = [line for line in out.splitlines() if "│" in line or "┃" in line]
    rows = [[cell.strip() for cell in line.replace("┃", "│").split("│")] for line in lines]
    return {row[0]: row[1:] for row in rows}


def test_backends_matrix_is_one_table_of_features_by_backend(capsys):
    from unified_ft.plugin import all_features, available_backends

    assert main(["backends", "--matrix"]) == 0
    out, _ = outputs(capsys)
    rows = _matrix_rows(out)
    header = rows.pop("feature")
    assert header == available_backends()
    assert set(rows) == set(all_features())
    assert len(out.splitlines()) < len(all_features()) + 10  # one line per feature, not a table per backend
    column = {name: i for i, name in enumerate(header)}
    assert rows["method.sft"] == ["native"] * len(header)
    assert rows["adapter.prefix"][column["trl"]] == "native"
    assert rows["adapter.prefix"][column["llamafactory"]] == "unsupported"
    assert rows["adapter.freeze"][column["swift"]] == "emulated"
    assert rows["adapter.qlora"][column["trl"]] == "native GPU"
    assert " note " not in out  # the per-backend tables (feature, support, note) are not printed


# --- translate ------------------------------------------------------------------------------------


def test_translate_writes_native_files(tmp_path, capsys):
    out_dir = tmp_path / "native"
    assert main(["translate", str(write_spec(tmp_path)), "--backend", "trl", "-o", str(out_dir)]) == 0
    assert {p.name for p in out_dir.iterdir()} >= {"config.yaml", "train.jsonl", "train.py"}
    assert len((out_dir / "train.jsonl").read_text().splitlines()) == 6
    out, _ = outputs(capsys)
    assert "train.py config.yaml" in flat(out)


def test_plan_shows_resolved_spec_derived_values_native_config_and_command(tmp_path, capsys):
    spec = write_spec(tmp_path, extra="adapter:\n  r: 4\n  alpha: 12\n")
    assert main(["plan", str(spec), "--backend", "trl"]) == 0
    out = flat(outputs(capsys)[0])
    from unified_ft.plan import detect_gpu

    precision = "bf16" if detect_gpu() else "fp32"
    assert f"precision: {precision}" in out and f"derived: training.precision = auto -> {precision}" in out
    assert "lora_alpha: 12.0" in out and "native/config.yaml" in out
    assert "train.py config.yaml" in out
    assert not (tmp_path / "runs").exists()


def test_translate_into_non_empty_dir_is_refused_and_untouched(tmp_path, capsys):
    out_dir = tmp_path / "native"
    out_dir.mkdir()
    (out_dir / "precious.txt").write_text("keep me")
    (out_dir / "sub").mkdir()
    assert main(["translate", str(write_spec(tmp_path)), "--backend", "trl", "-o", str(out_dir)]) == 2
    _, err = outputs(capsys)
    assert "not empty" in err and "Traceback" not in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["precious.txt", "sub"]
    assert (out_dir / "precious.txt").read_text() == "keep me"
    assert not any((out_dir / "sub").iterdir())


def test_translate_unknown_backend_writes_nothing(tmp_path, capsys):
    out_dir = tmp_path / "native"
    assert main(["translate", str(write_spec(tmp_path)), "--backend", "nosuch", "-o", str(out_dir)]) == 2
    assert not out_dir.exists()
    assert "trl" in outputs(capsys)[1]


# --- run: every input error fails before anything is written ---------------------------------------


def test_run_unknown_backend_names_available(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["run", str(write_spec(tmp_path)), "--backend", "nosuch", "--runs-dir", str(runs)]) == 2
    _, err = outputs(capsys)
    assert "'nosuch'" in err and "available: axolotl, colossalai, llamafactory, swift, trl" in err
    assert "Traceback" not in err
    assert not runs.exists() or not any(runs.iterdir())


def test_run_ppo_on_trl_names_feature_and_backend(tmp_path, capsys):
    runs = tmp_path / "runs"
    spec = write_spec(tmp_path, "method:\n  name: ppo\n  reward_model: org/reward\n")
    assert main(["run", str(spec), "--backend", "trl", "--runs-dir", str(runs)]) == 2
    _, err = outputs(capsys)
    assert "method.ppo" in err and "backend trl" in err and "method: ppo" in err
    assert "Traceback" not in err
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("backend", ["trl", "unsloth"])
def test_run_qlora_without_gpu_says_it_needs_cuda_while_translate_writes_it(backend, tmp_path, capsys):
    from unified_ft.plan import detect_gpu

    if detect_gpu():
        pytest.skip("this machine has a CUDA GPU")
    runs = tmp_path / "runs"
    spec = write_spec(tmp_path, "adapter:\n  type: qlora\n  bits: 4\n  target_modules: [q_proj, v_proj]\n")
    assert main(["run", str(spec), "--backend", backend, "--runs-dir", str(runs)]) == 2
    _, err = outputs(capsys)
    assert "adapter.qlora needs a CUDA GPU" in err and "adapter.type: qlora" in err
    assert not runs.exists() or not any(runs.iterdir())
    assert main(["translate", str(spec), "--backend", backend, "-o", str(tmp_path / "native")]) == 0
    assert (tmp_path / "native").is_dir() and any((tmp_path / "native").iterdir())


def test_run_missing_dataset_names_file_and_leaves_no_run_dir(tmp_path, capsys):
    if not trl_ready():
        pytest.skip("the trl backend's environment is not installed here")
    runs = tmp_path / "runs"
    missing = tmp_path / "data" / "missing.jsonl"
    spec = write_spec(tmp_path, data=str(missing))
    assert main(["run", str(spec), "--backend", "trl", "--runs-dir", str(runs)]) == 2
    _, err = outputs(capsys)
    assert str(missing) in err and "file not found" in err and "Traceback" not in err
    assert not runs.exists() or list(runs.iterdir()) == []


def test_run_missing_model_folder(tmp_path, capsys):
    runs = tmp_path / "runs"
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text().replace(str(tmp_path / "model"), str(tmp_path / "nomodel")))
    assert main(["run", str(spec), "--runs-dir", str(runs)]) == 2
    _, err = outputs(capsys)
    assert "nomodel" in err and "does not exist" in err
    assert not runs.exists() or not any(runs.iterdir())


def test_error_text_with_brackets_is_printed_verbatim(tmp_path, capsys):
    spec = write_spec(tmp_path, "adapter:\n  type: qlora\n", filename="job[v2].yaml")
    assert main(["validate", str(spec)]) == 2
    _, err = outputs(capsys)
    assert "job[v2].yaml" in err


# --- the CLI and the package stay light ------------------------------------------------------------

LIGHT_SCRIPTS = {
    "import": "import unified_ft\nfrom unified_ft import JobSpec, load_spec\n",
    "help": "from unified_ft.cli import main\nmain(['--help'])\n",
    "validate": "from unified_ft.cli import main\nassert main(['validate', SPEC]) == 0\n",
}


@pytest.mark.parametrize("which", sorted(LIGHT_SCRIPTS))
def test_no_framework_is_imported(which, tmp_path):
    spec = write_spec(tmp_path)
    script = (f"import sys\nSPEC = {str(spec)!r}\n" + LIGHT_SCRIPTS[which]
              + f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
              + "print('HEAVY=' + ','.join(heavy))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    line = [x for x in result.stdout.splitlines() if x.startswith("HEAVY=")][-1]
    assert line == "HEAVY=", f"{which} imported: {line[6:]}"


def test_adapter_export_of_a_full_finetune_is_refused_before_anything_starts(tmp_path, capsys):
    runs = tmp_path / "runs"
    spec = write_spec(tmp_path, extra="adapter:\n  type: full\nexport:\n  formats: [adapter]\n")
    assert main(["run", str(spec), "--runs-dir", str(runs)]) == 2
    _, err = outputs(capsys)
    assert "export.formats" in flat(err) and "export `merged` instead" in flat(err)
    assert not runs.exists()


def test_run_without_the_trl_stack_names_the_install_command(tmp_path, capsys, monkeypatch):
    import unified_ft.backends.trl as trl_backend

    monkeypatch.setattr(trl_backend, "module_available", lambda name: name != "trl")
    runs = tmp_path / "runs"
    assert main(["run", str(write_spec(tmp_path)), "--runs-dir", str(runs)]) == 2
    err = flat(outputs(capsys)[1])
    assert "backend trl is not ready" in err and "missing in this environment: trl" in err
    assert "pip install 'unified_ft[trl]'" in err
    assert not runs.exists()


def test_lm_eval_asked_for_but_missing_is_refused_before_anything_starts(tmp_path, capsys, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval"
                        else real_find_spec(name, *a))
    runs = tmp_path / "runs"
    spec = write_spec(tmp_path, extra="evaluation:\n  lm_eval: {tasks: [hellaswag]}\n")
    assert main(["run", str(spec), "--runs-dir", str(runs)]) == 2
    err = flat(outputs(capsys)[1])
    assert "evaluation.lm_eval" in err and "pip install 'lm-eval==0.4.13'" in err
    assert not runs.exists()


def test_env_commands_for_the_embedded_backend(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UFT_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["env", "check", "trl"]) == 0
    out = flat(outputs(capsys)[0])
    assert "trl runs in the current environment" in out and "transformers" in out
    assert main(["env", "list"]) == 0
    assert "no backend environments under" in flat(outputs(capsys)[0])
    assert main(["env", "create", "nosuch"]) == 2


def test_translate_check_runs_trls_own_config_parsing(tmp_path, capsys):
    good = write_spec(tmp_path, name="good")
    assert main(["translate", str(good), "-o", str(tmp_path / "ok"), "--check"]) == 0
    assert "trl accepts the translated config" in flat(outputs(capsys)[0])
    bad = write_spec(tmp_path, extra="backend_options:\n  trl: {no_such_trl_setting: 1}\n", name="bad",
                     filename="bad.yaml")
    assert main(["translate", str(bad), "-o", str(tmp_path / "bad"), "--check"]) == 2
    err = flat(outputs(capsys)[1])
    assert "trl rejects the translated config" in err and "no_such_trl_setting" in err


def test_the_cli_needs_no_separate_click(monkeypatch, capsys):
    """typer >= 0.26 vendors click and no longer installs it: a bare install must still run `uft`."""
    import sys

    monkeypatch.setitem(sys.modules, "click", None)  # `import click` now fails, as on a bare install
    monkeypatch.setitem(sys.modules, "click.exceptions", None)
    assert main(["no-such-command"]) == 2
    assert main(["validate", "no-such-spec.yaml"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_plan_prints_native_files_whole_when_piped(tmp_path, capsys):
    """Piped to a file or a pager, a native file's lines come out exactly as written: not cut at 80 columns."""
    spec = write_spec(tmp_path, "template: chatml\n")
    assert main(["plan", str(spec)]) == 0
    out = capsys.readouterr().out
    assert main(["translate", str(spec), "-o", str(tmp_path / "native")]) == 0
    written = (tmp_path / "native" / "config.yaml").read_text(encoding="utf-8").splitlines()
    printed = set(out.splitlines())
    assert max(map(len, written)) > 80  # the chat template's line, at least
    assert [line for line in written if line not in printed] == []
