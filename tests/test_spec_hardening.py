"""Hostile-but-realistic spec files, values and command lines: each is one clean message, exit code 2.

Every case drives `uft` in-process and checks the same four things: exit code 2, the file and key (or
line) in the message with its fix, no traceback, and nothing left behind (no runs/, no output file).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from unified_ft.cli import main

HEAD = "name: unit\n"  # line 1


def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"q{i}", "input": "", "output": f"a{i}"}) + "\n"
                            for i in range(4)), encoding="utf-8")
    return path


def model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}", encoding="utf-8")
    return model


def spec_text(tmp_path: Path, extra: str = "", *, name: str = "unit", model: str | None = None) -> str:
    """A valid spec (lines 1-8) followed by `extra`."""
    model = model or str(model_dir(tmp_path))
    return (f"name: {name}\nmodel:\n  path: {model}\ndata:\n  train:\n    - path: {data_file(tmp_path)}\n"
            f"      format: alpaca\ntraining:\n  max_steps: 2\n" + extra)


def write(tmp_path: Path, text: str | bytes, filename: str = "job.yaml") -> Path:
    path = tmp_path / filename
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def flat(text: str) -> str:
    return " ".join(text.split())


def refused(capsys, argv: list[str], *needles: str) -> str:
    """Run uft; assert exit 2, no traceback, and each needle in the (unwrapped) message."""
    code = main(argv)
    captured = capsys.readouterr()
    err = flat(captured.err)
    assert code == 2, captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
    for needle in needles:
        assert needle in err, f"{needle!r} not in: {err}"
    return err


def refused_everywhere(capsys, tmp_path: Path, spec: Path, *needles: str) -> None:
    """validate, plan and run all refuse the spec, and run leaves no runs/ behind."""
    runs = tmp_path / "runs"
    for argv in (["validate", str(spec)], ["plan", str(spec)], ["run", str(spec), "--runs-dir", str(runs)]):
        refused(capsys, argv, *needles)
    assert not runs.exists()


# --- the bytes of the spec file ---------------------------------------------------------------------


def test_spec_that_is_not_utf8_names_line_and_byte(tmp_path, capsys):
    text = spec_text(tmp_path, "# a comment\n\n").encode() + "evaluation:\n  main_metric: café\n".encode("latin-1")
    spec = write(tmp_path, text)  # the é is on line 13, after a comment and a blank line
    refused_everywhere(capsys, tmp_path, spec, f"{spec}:13", "byte 0xe9", "not UTF-8", "save the file as UTF-8")


def test_utf16_spec_is_named_as_such(tmp_path, capsys):
    spec = write(tmp_path, spec_text(tmp_path).encode("utf-16"))
    refused(capsys, ["validate", str(spec)], f"{spec}:1", "UTF-16")


def test_spec_with_a_bom_is_fine(tmp_path, capsys):
    spec = write(tmp_path, b"\xef\xbb\xbf" + spec_text(tmp_path).encode())
    assert main(["validate", str(spec)]) == 0


def test_control_character_names_its_line(tmp_path, capsys):
    spec = write(tmp_path, spec_text(tmp_path, "\n\nrevision: a\x00b\n"))
    refused(capsys, ["validate", str(spec)], f"{spec}:12", "#x0000")


def test_binary_file_as_spec(tmp_path, capsys):
    spec = write(tmp_path, bytes(range(256)) * 4, "model.bin")
    refused(capsys, ["validate", str(spec)], str(spec), "not UTF-8")


# --- YAML that costs nothing to write and a lot to read ---------------------------------------------

BOMB = ('backend_options:\n  trl:\n    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
        + "".join(f"    {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)))


def test_alias_bomb_is_refused_before_any_work(tmp_path, capsys):
    spec = write(tmp_path, spec_text(tmp_path, BOMB))  # anchor &a on line 12
    started = time.monotonic()
    refused_everywhere(capsys, tmp_path, spec, f"{spec}:12", "anchors and aliases", "write the repeated values out")
    assert time.monotonic() - started < 30


def test_a_single_alias_is_refused_too(tmp_path, capsys):
    spec = write(tmp_path, spec_text(tmp_path, "evaluation:\n  forgetting: &f {path: builtin, format: text}\n"))
    refused(capsys, ["validate", str(spec)], f"{spec}:11", "anchors and aliases")


@pytest.mark.parametrize("nest", ["flow", "block"])
def test_very_deep_nesting_is_bounded(tmp_path, capsys, nest):
    depth = 5000
    if nest == "flow":
        extra = "backend_options:\n  trl:\n    deep: " + "[" * depth + "]" * depth + "\n"
    else:
        extra = "backend_options:\n  trl:\n" + "".join("  " * (i + 2) + f"k{i}:\n" for i in range(300))
    spec = write(tmp_path, spec_text(tmp_path, extra))
    refused(capsys, ["validate", str(spec)], str(spec), "nested more than 100 levels deep")


def test_duplicate_top_level_key_names_both_lines(tmp_path, capsys):
    extra = "data:\n  train:\n    - path: other.jsonl\n      format: alpaca\n"  # a second data: on line 10
    spec = write(tmp_path, spec_text(tmp_path, extra))
    refused_everywhere(capsys, tmp_path, spec, f"{spec}:10", "'data' appears twice, on lines 4 and 10")


def test_duplicate_nested_key(tmp_path, capsys):
    spec = write(tmp_path, spec_text(tmp_path, "  seed: 1\n  seed: 2\n"))
    refused(capsys, ["validate", str(spec)], f"{spec}:11", "'seed' appears twice, on lines 10 and 11")


def test_keys_that_are_equal_after_yaml_typing_are_duplicates(tmp_path, capsys):
    spec = write(tmp_path, spec_text(tmp_path, "backend_options:\n  trl: {yes: 1, true: 2}\n"))
    refused(capsys, ["validate", str(spec)], f"{spec}:11", "appears twice")


@pytest.mark.parametrize("line, needle", [
    ('x: "never closed\n', "the quote opened here"),
    ("x: [1, 2\n", "the bracket [ opened here"),
    ("x: {a: 1\n", "the brace { opened here"),
])
def test_unclosed_quote_or_bracket_names_the_line_where_it_opened(tmp_path, capsys, line, needle):
    extra = "# comment\n\n" + "backend_options:\n  trl:\n    " + line + "\n\n# more\nexport: {}\n"
    spec = write(tmp_path, spec_text(tmp_path, extra))  # the opener is on line 14
    refused(capsys, ["validate", str(spec)], f"{spec}:14", needle, "is not closed")


def test_python_tag_is_refused(tmp_path, capsys):
    tagged = "backend_options:\n  trl:\n    x: !!python/object/apply:os.system [ls]\n"
    spec = write(tmp_path, spec_text(tmp_path, tagged))
    refused(capsys, ["validate", str(spec)], f"{spec}:12", "python/object", "plain YAML only")


# --- YAML 1.1 typing of text fields: "quote it" -----------------------------------------------------


@pytest.mark.parametrize("extra, key, written", [
    ("revision: no\n", "revision", "no"),
    ("revision: 007\n", "revision", "007"),
    ("revision: 1.10\n", "revision", "1.10"),
    ("revision: 2024-01-01\n", "revision", "2024-01-01"),
    ("revision: 1e5\n", "revision", "1e5"),
    ("revision: 0x1F\n", "revision", "0x1F"),
], ids=["bool", "octal-looking", "version", "date", "exponent", "hex"])
def test_yaml_typed_text_field_says_quote_it(tmp_path, capsys, extra, key, written):
    text = spec_text(tmp_path).replace(f"  path: {tmp_path / 'model'}\n", f"  path: {tmp_path / 'model'}\n  {extra}")
    spec = write(tmp_path, text)  # model.revision on line 4
    refused(capsys, ["validate", str(spec)], f"{spec}:4 (model.{key})", f"YAML reads the unquoted {written}",
            f'quote it: {key}: "{written}"')


@pytest.mark.parametrize("name", ["no", "007", "1.10", "2024-01-01", "null"])
def test_yaml_typed_run_name_says_quote_it(tmp_path, capsys, name):
    spec = write(tmp_path, spec_text(tmp_path, name=name))
    expected = "has no value" if name == "null" else f'quote it: name: "{name}"'
    refused(capsys, ["validate", str(spec)], f"{spec}:1 (name)", expected)


def test_yaml_typed_values_inside_lists_and_mappings(tmp_path, capsys):
    extra = "adapter:\n  target_modules: [q_proj, on]\n"
    spec = write(tmp_path, spec_text(tmp_path, extra))
    refused(capsys, ["validate", str(spec)], "adapter.target_modules[1]", 'quote it: 1: "on"')
    text = spec_text(tmp_path).replace("      format: alpaca\n", "      format: alpaca\n      columns: {output: yes}\n")
    spec = write(tmp_path, text)
    refused(capsys, ["validate", str(spec)], "data.train[0].columns.output", "quote it")


def test_null_for_a_section_says_remove_or_give_a_value(tmp_path, capsys):
    spec = write(tmp_path, spec_text(tmp_path, "template: null\n"))
    refused(capsys, ["validate", str(spec)], f"{spec}:10 (template)", "has no value", "remove the key")


def test_quoted_text_is_kept(tmp_path, capsys):
    spec = write(tmp_path, spec_text(tmp_path, name='"007"').replace("max_steps: 2\n", 'max_steps: 2\n  seed: 7\n'))
    assert main(["validate", str(spec)]) == 0


# --- values are refused, not coerced ----------------------------------------------------------------


@pytest.mark.parametrize("extra, where, needle", [
    ("adapter:\n  r: true\n", "adapter.r", "got the boolean true"),
    ("adapter:\n  r: 8.5\n", "adapter.r", "expected an integer"),
    ('adapter:\n  r: "8"\n', "adapter.r", "write it without quotes: r: 8"),
    ("data:\n  packing: 1\n", "data", "appears twice"),
    ("  gradient_checkpointing: 1\n", "training.gradient_checkpointing", "expected true or false"),
    ("  learning_rate: .inf\n", "training.learning_rate", "not a finite number"),
    ("  learning_rate: .nan\n", "training.learning_rate", "not a finite number"),
    ('  learning_rate: "1e-4"\n', "training.learning_rate", "write it without quotes: learning_rate: 1e-4"),
    ("  learning_rate: true\n", "training.learning_rate", "got the boolean true"),
    ("  seed: -1\n", "training.seed", "greater than or equal to 0"),
    ("  seed: 4294967296\n", "training.seed", "less than or equal to 4294967295"),
    ("  seed: 1.0\n", "training.seed", "expected an integer"),
    ("adapter:\n  target_modules: [q_proj, '']\n", "adapter.target_modules[1]", "is an empty name"),
    ("adapter:\n  target_modules: '  '\n", "adapter.target_modules", "is an empty name"),
    ("method:\n  name: dpo\n  loss_type: sigmod\n", "method", "did you mean 'sigmoid'?"),
    ("method:\n  name: kto\n  loss_type: sigmoid\n", "method", "kto, apo_zero_unpaired"),
    ("evaluation:\n  lm_eval: {tasks: [hellaswag, ' ']}\n", "evaluation.lm_eval.tasks[1]", "is an empty name"),
    ("runs_dir: ''\n", "runs_dir", "the path is empty"),
], ids=lambda v: v if "\n" not in v else v.strip().replace("\n", "|")[:40])
def test_bad_values_are_refused(tmp_path, capsys, extra, where, needle):
    text = spec_text(tmp_path)
    if extra.startswith("  "):  # under training:
        text = text.replace("  max_steps: 2\n", "  max_steps: 2\n" + extra)
    elif extra.startswith(("method:\n  name: dpo", "method:\n  name: kto")):
        text = text.replace("format: alpaca", "format: preference") + extra
    else:
        text += extra
    spec = write(tmp_path, text)
    refused(capsys, ["validate", str(spec)], where, needle)


@pytest.mark.parametrize("gguf", ["../x.gguf", "/abs/x.gguf", "sub/../../x.gguf", "~/x.gguf", "..\\x.gguf"])
def test_gguf_file_must_stay_inside_the_model_folder(tmp_path, capsys, gguf):
    text = spec_text(tmp_path).replace("\ndata:", f"\n  gguf_file: '{gguf}'\ndata:")
    refused(capsys, ["validate", str(write(tmp_path, text))], "model.gguf_file", "leaves the model folder")


def test_numbers_people_write_are_numbers(tmp_path):
    from unified_ft.specfile import load_spec

    text = spec_text(tmp_path, "adapter:\n  alpha: 16\n  dropout: 0\n").replace(
        "  max_steps: 2\n", "  max_steps: 2\n  learning_rate: 1e-4\n  weight_decay: 1E2\n")
    spec = load_spec(write(tmp_path, text))
    assert spec.training.learning_rate == pytest.approx(1e-4) and spec.training.weight_decay == 100.0
    assert spec.adapter.alpha == 16.0 and isinstance(spec.adapter.alpha, float)


def test_text_that_looks_like_a_number_survives_a_dump(tmp_path):
    from unified_ft.specfile import dump_spec, load_spec, parse_spec

    extra = "backend_options:\n  trl: {label: '1e-4', flag: 'no', code: '007', lr: 1e-4}\n"
    spec = load_spec(write(tmp_path, spec_text(tmp_path, extra)))
    again = parse_spec(dump_spec(spec))
    assert again.backend_options["trl"] == {"label": "1e-4", "flag": "no", "code": "007", "lr": 1e-4}


def test_runs_dir_with_a_tilde_is_the_home_folder(tmp_path, monkeypatch):
    from unified_ft.specfile import load_spec

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = load_spec(write(tmp_path, spec_text(tmp_path, "runs_dir: ~/experiments\n")))
    assert spec.runs_dir == str(tmp_path / "home" / "experiments")


def test_symlinked_dataset_keeps_the_name_the_user_wrote(tmp_path):
    from unified_ft.specfile import load_spec

    blob = tmp_path / "blobs" / "3f9a0c"  # the Hugging Face cache layout: an extension-less blob
    blob.parent.mkdir()
    blob.write_text(data_file(tmp_path).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "train.jsonl").symlink_to(blob)
    text = spec_text(tmp_path).replace(str(tmp_path / "train.jsonl"), "snap/train.jsonl")
    spec = load_spec(write(tmp_path, text))
    assert spec.data.train[0].path == str(tmp_path / "snap" / "train.jsonl")


# --- local files the spec names, checked before a run directory exists -----------------------------


def test_model_path_that_is_a_file(tmp_path, capsys):
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    spec = write(tmp_path, spec_text(tmp_path, model=str(weights)))
    runs = tmp_path / "runs"
    refused(capsys, ["run", str(spec), "--runs-dir", str(runs)], "model.path", "is a file, not a model folder",
            f"model.gguf_file: {weights.name}")
    assert not runs.exists()


@pytest.mark.parametrize("content, needle", [({}, "is an empty folder"),
                                             ({"x.gguf": "GGUF"}, "set model.gguf_file: x.gguf"),
                                             ({"README.md": "hi"}, "has no config.json")])
def test_model_folder_without_a_model(tmp_path, capsys, content, needle):
    folder = tmp_path / "weights"
    folder.mkdir()
    for name, text in content.items():
        (folder / name).write_text(text)
    spec = write(tmp_path, spec_text(tmp_path, model=str(folder)))
    runs = tmp_path / "runs"
    refused(capsys, ["run", str(spec), "--runs-dir", str(runs)], "model.path", needle)
    refused(capsys, ["plan", str(spec)], "model.path", needle)
    assert not runs.exists()


def test_model_path_too_long_for_the_system(tmp_path, capsys):
    spec = write(tmp_path, spec_text(tmp_path, model="/" + "m" * 5000))
    refused(capsys, ["plan", str(spec)], "model.path", "longer than the system allows")


@pytest.mark.parametrize("extra, needle", [
    ("evaluation:\n  forgetting: {path: general.jsonl, format: text}\n", "evaluation.forgetting.path"),
    ("evaluation:\n  lm_eval: {tasks: [tasks/mine.yaml]}\n", "evaluation.lm_eval.tasks[0]"),
    ("evaluation:\n  lm_eval: {tasks: [mine], include_path: tasks}\n", "evaluation.lm_eval.include_path"),
])
def test_evaluation_files_are_checked_before_training(tmp_path, capsys, extra, needle):
    runs = tmp_path / "runs"
    spec = write(tmp_path, spec_text(tmp_path, extra))
    refused(capsys, ["run", str(spec), "--runs-dir", str(runs)], needle, "no such file")
    assert not runs.exists()


# --- the CLI's own arguments -------------------------------------------------------------------------


@pytest.mark.parametrize("path, needle", [
    ("dir", "it is a directory"),
    ("absent.yaml", "no such file"),
    ("x" * 5000 + ".yaml", "longer than the system allows"),
    ("a\0b.yaml", "embedded null byte"),  # click's own refusal, naming the argument
    ("file/below.yaml", "a part of the path is a file"),
    ("loop.yaml", "symlink loop"),
    ("fifo.yaml", "not a regular file"),
])
def test_spec_argument_that_is_not_a_readable_file(tmp_path, capsys, path, needle):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    os.mkfifo(tmp_path / "fifo.yaml")
    for command in ("validate", "plan"):
        refused(capsys, [command, str(tmp_path / path)], needle)


def test_schema_into_a_missing_folder_or_onto_a_directory(tmp_path, capsys):
    refused(capsys, ["schema", "-o", str(tmp_path / "nope" / "schema.json")], "does not exist",
            "create its folder first")
    assert not (tmp_path / "nope").exists()
    refused(capsys, ["schema", "-o", str(tmp_path)], "it is a directory")
    refused(capsys, ["schema", "-o", str(tmp_path / "bad\0name.json")], "'-o' / '--output'", "null byte")
    refused(capsys, ["schema", "-o", str(tmp_path / ("s" * 5000))], "longer than the system allows")


@pytest.mark.parametrize("target, needle", [
    ("file/native", "a part of the path is a file"),
    ("x" * 5000, "longer than the system allows"),
])
def test_translate_output_that_cannot_be_a_folder(tmp_path, capsys, target, needle):
    (tmp_path / "file").write_text("keep")
    spec = write(tmp_path, spec_text(tmp_path))
    refused(capsys, ["translate", str(spec), "-o", str(tmp_path / target)], "cannot make the folder", needle)
    refused(capsys, ["translate", str(spec), "-o", str(tmp_path / "a\0b")], "'-o' / '--output'", "null byte")
    assert (tmp_path / "file").read_text() == "keep"


def _fake_run(tmp_path: Path, manifest: str, spec: str) -> Path:
    run_dir = tmp_path / "runs" / "unit" / "trl"
    (run_dir / "adapter").mkdir(parents=True)
    (run_dir / "manifest.json").write_text(manifest, encoding="utf-8")
    (run_dir / "spec.yaml").write_text(spec, encoding="utf-8")
    return run_dir


@pytest.mark.parametrize("command", [["eval"], ["export", "--to", "adapter"]])
def test_eval_and_export_on_a_damaged_run(tmp_path, capsys, command):
    good_spec = spec_text(tmp_path)
    run_dir = _fake_run(tmp_path, '{"status": "succeeded",\n "exit_code": 0,,\n}', good_spec)
    refused(capsys, [*command, str(run_dir)], f"{run_dir / 'manifest.json'}:2", "not valid JSON", "damaged")
    (run_dir / "manifest.json").write_text("[1, 2]")
    refused(capsys, [*command, str(run_dir)], "expected a JSON object")
    (run_dir / "manifest.json").write_text(json.dumps({"status": "succeeded"}))
    (run_dir / "spec.yaml").write_text(good_spec + "adapter: {r: [\n")
    refused(capsys, [*command, str(run_dir)], f"{run_dir / 'spec.yaml'}:10", "is not closed")
    (run_dir / "spec.yaml").write_bytes(b"\xff\xfe" + good_spec.encode("utf-16-le"))
    refused(capsys, [*command, str(run_dir)], "spec.yaml:1", "not UTF-8")
    refused(capsys, [*command, str(tmp_path / "a\0b")], "null byte")
    refused(capsys, [*command, str(tmp_path / ("r" * 5000))], "RUN_DIR", "longer than the system allows")
    refused(capsys, [*command, str(tmp_path / "nothing")], "not a uft run directory")
    assert not (run_dir / "export").exists() and not (run_dir / "eval.json").exists()


SWIFT_SH = "swift sft --model org/m --dataset data.jsonl --learning_rate 1e-4\n"
LF_YAML = ("stage: sft\nmodel_name_or_path: org/m\ntemplate: qwen\ndataset: mine\nlearning_rate: 1e-4\n"
           "max_steps: 3\n")


@pytest.mark.parametrize("backend, filename, content, needle", [
    ("llamafactory", "absent.yaml", None, "no such file"),
    ("swift", "absent.sh", None, "no such file"),
    ("llamafactory", "bin.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xd8", "not UTF-8"),
    ("swift", "bin.sh", b"\x7fELF\x02\x01\x01\x00\xff\xfe", "not UTF-8"),
    ("llamafactory", "quote.yaml", "stage: sft\n\nmodel_name_or_path: 'org/m\ndataset: x\n", "bad.yaml:3"),
    ("swift", "quote.sh", "#!/bin/sh\n\nswift sft --model 'org/m \\\n  --dataset x\n", "quote.sh:3"),
    ("llamafactory", "tag.yaml", "stage: !!python/object/apply:os.system [id]\n", "python/object"),
    ("swift", "tag.yaml", "model: !!python/object/apply:os.system [id]\n", "python/object"),
    ("swift", "args.json", '{"model": "org/m",\n "x": }', "args.json:2"),
    ("llamafactory", "list.yaml", "- a\n- b\n", "expected a mapping"),
    ("swift", "list.yaml", "- a\n", "expected a mapping"),
    ("llamafactory", "dir", "DIR", "it is a directory"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_import_of_a_file_that_cannot_be_read(tmp_path, capsys, backend, filename, content, needle):
    path = tmp_path / filename
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    if needle == "bad.yaml:3":
        needle = f"{filename}:3"
    out = tmp_path / "spec.yaml"
    refused(capsys, ["import", backend, str(path), "-o", str(out)], needle)
    assert not out.exists()


def test_import_output_is_checked_before_reading(tmp_path, capsys):
    config = tmp_path / "train.sh"
    config.write_text(SWIFT_SH)
    refused(capsys, ["import", "swift", str(config), "-o", str(tmp_path / "missing" / "spec.yaml")],
            "does not exist")
    (tmp_path / "taken.yaml").write_text("mine")
    refused(capsys, ["import", "swift", str(config), "-o", str(tmp_path / "taken.yaml")], "already exists")
    assert (tmp_path / "taken.yaml").read_text() == "mine"
    refused(capsys, ["import", "swift", str(config), "-o", str(tmp_path / "a\0b.yaml")], "null byte")


def test_imported_exponent_numbers_validate(tmp_path, capsys):
    """LLaMA-Factory configs write `learning_rate: 1e-4`; it is a number, as LLaMA-Factory itself reads it."""
    (tmp_path / "data.jsonl").write_text(json.dumps({"instruction": "q", "input": "", "output": "a"}) + "\n")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "data.jsonl"}}))
    config = tmp_path / "lf.yaml"
    config.write_text(LF_YAML + "dataset_dir: .\n")
    out = tmp_path / "spec.yaml"
    assert main(["import", "llamafactory", str(config), "-o", str(out)]) == 0, capsys.readouterr().err
    from unified_ft.specfile import load_spec

    assert load_spec(out).training.learning_rate == pytest.approx(1e-4)


def test_quickstart_with_negative_steps_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "qs"
    refused(capsys, ["quickstart", "--steps", "-1", "--folder", str(folder)], "--steps -1", "nothing was written")
    assert not folder.exists() and not (tmp_path / "runs").exists()


def test_quickstart_folder_under_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("")
    refused(capsys, ["quickstart", "--folder", str(tmp_path / "file" / "qs")], "cannot make the quickstart folder")
    assert not (tmp_path / "runs").exists()


def test_runs_dir_option_with_nul(tmp_path, capsys):
    spec = write(tmp_path, spec_text(tmp_path))
    refused(capsys, ["run", str(spec), "--runs-dir", str(tmp_path / "r\0uns")], "--runs-dir", "null byte")


def test_export_output_under_a_file_is_refused_first(tmp_path, capsys):
    (tmp_path / "file").write_text("keep")
    run_dir = _fake_run(tmp_path, json.dumps({"status": "succeeded"}), spec_text(tmp_path))
    refused(capsys, ["export", str(run_dir), "--to", "adapter", "-o", str(tmp_path / "file" / "out")], "--output",
            "a part of the path is a file")
    assert (tmp_path / "file").read_text() == "keep"


def test_swift_config_with_a_bad_env_block(tmp_path, capsys):
    config = tmp_path / "swift.yaml"
    config.write_text("model: org/m\ndataset: [data.jsonl]\nENV: [A, B]\n")
    refused(capsys, ["import", "swift", str(config), "-o", str(tmp_path / "spec.yaml")], "(ENV)", "mapping")
    assert not (tmp_path / "spec.yaml").exists()


@pytest.mark.parametrize("extra, where, needle", [
    ("  max_steps: 99999999999999999999\n", "training.max_steps", "larger than any real setting"),
    ("  max_steps: " + "9" * 5000 + "\n", "job.yaml:9", "not a valid integer"),
    ("  learning_rate: 1e999\n", "training.learning_rate", "1e999 is not a finite number"),
], ids=["huge", "5000-digits", "overflowing-float"])
def test_numbers_beyond_any_setting(tmp_path, capsys, extra, where, needle):
    text = spec_text(tmp_path).replace("  max_steps: 2\n", extra)
    refused(capsys, ["validate", str(write(tmp_path, text))], where, needle)


def test_impossible_date_names_its_line(tmp_path, capsys):
    text = spec_text(tmp_path).replace("\ndata:", "\n  revision: 2024-13-45\ndata:")
    refused(capsys, ["validate", str(write(tmp_path, text))], "job.yaml:4", "not a valid date", "quote it")


@pytest.mark.parametrize("key", ["revision", "hub", "subset", "split"])
def test_blank_names_are_refused(tmp_path, capsys, key):
    if key == "revision":
        text = spec_text(tmp_path).replace("\ndata:", "\n  revision: ''\ndata:")
    else:
        text = spec_text(tmp_path).replace(f"    - path: {tmp_path / 'train.jsonl'}\n",
                                           "    - hub: org/d\n" if key != "hub" else "    - hub: ' '\n")
        text = text.replace("      format: alpaca\n", "      format: alpaca\n" + (f"      {key}: ''\n" if key != "hub"
                                                                                  else ""))
    refused(capsys, ["validate", str(write(tmp_path, text))], key, "is an empty name")


def test_runs_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("keep")
    spec = write(tmp_path, spec_text(tmp_path))
    refused(capsys, ["run", str(spec), "--runs-dir", str(tmp_path / "afile")], "--runs-dir", "is a file")
    spec = write(tmp_path, spec_text(tmp_path, f"runs_dir: {tmp_path / 'afile'}\n"))
    refused(capsys, ["run", str(spec)], "runs_dir (in the spec)", "is a file")
    assert (tmp_path / "afile").read_text() == "keep"


def test_empty_llamafactory_config_names_the_file(tmp_path, capsys):
    config = tmp_path / "conf.yaml"
    config.write_text("# nothing yet\n")
    refused(capsys, ["import", "llamafactory", str(config), "-o", str(tmp_path / "spec.yaml")], str(config),
            "the file is empty")
    assert not (tmp_path / "spec.yaml").exists()


def test_forgetting_set_with_a_bad_row_is_found_before_training(tmp_path, capsys):
    general = tmp_path / "general.jsonl"
    general.write_text('{"text": "fine"}\n{"text": \n')
    spec = write(tmp_path, spec_text(tmp_path, f"evaluation:\n  forgetting: {{path: {general}, format: text}}\n"))
    runs = tmp_path / "runs"
    refused(capsys, ["run", str(spec), "--runs-dir", str(runs)], str(general), "row 2")
    assert not runs.exists()
