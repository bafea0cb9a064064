"""Write arguments.json: every key a LLaMA-Factory train YAML may hold, with its declared default.

uft's importer uses it to tell a typo from a real LLaMA-Factory key (did-you-mean) and to write
LLaMA-Factory's defaults out explicitly, without LLaMA-Factory installed. The v0 keys come from the
dataclasses `llamafactory-cli train` parses (`_TRAIN_ARGS` in llamafactory/hparams/parser.py: model, data,
training (Seq2SeqTrainingArguments plus LLaMA-Factory's ray/fp8/profiler fields), finetuning and generating
arguments), read inside the LLaMA-Factory environment. Refresh after a lock change:
    $(uft env path llamafactory)/bin/python backends/llamafactory/dump_arguments.py v0 > /tmp/v0.json
and the "v1" section (the `USE_V1=1` config language of LLaMA-Factory's main branch, not in the pinned
release) from a checkout of its source, parsed with `ast` (nothing of it is imported):
    python backends/llamafactory/dump_arguments.py v1 LLaMA-Factory/src/llamafactory/v1/config COMMIT
then merge the two into arguments.json with `merge /tmp/v0.json /tmp/v1.json`.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

V1_FILES = ("model_args.py", "data_args.py", "training_args.py", "sample_args.py")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "value") and type(value).__module__ != "builtins":  # enums: their value, as YAML has it
        value = value.value
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return _jsonable(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return _jsonable(field.default_factory())
    return None


def dump_v0() -> dict[str, Any]:
    """The fields of every dataclass in _TRAIN_ARGS, as HfArgumentParser combines them (one namespace)."""
    with contextlib.redirect_stdout(sys.stderr):  # LLaMA-Factory logs to stdout while it imports
        import llamafactory
        import transformers
        from llamafactory.hparams import parser

    found: dict[str, Any] = {}
    groups: dict[str, list[str]] = {}
    for cls in parser._TRAIN_ARGS:
        names = []
        for field in dataclasses.fields(cls):
            if not field.init:
                continue  # not a parser option
            found[field.name] = _default(field)
            names.append(field.name)
        groups[cls.__name__] = sorted(names)
    return {
        "llamafactory_version": llamafactory.__version__,
        "transformers_version": transformers.__version__,
        "arguments": dict(sorted(found.items())),
        "groups": groups,
    }


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)  # an expression (an enum member, a factory): its source text


def _field_default(call: ast.Call) -> Any:
    keywords = {k.arg: k.value for k in call.keywords}
    if "default" in keywords:
        return _literal(keywords["default"])
    factory = keywords.get("default_factory")
    if isinstance(factory, ast.Lambda):
        return _literal(factory.body)
    if isinstance(factory, ast.Name):
        return {"list": [], "dict": {}}.get(factory.id, factory.id + "()")
    return None


def _enums(config_dir: Path) -> dict[str, str]:
    """`Class.MEMBER` -> its string value, for the StrEnums v1's defaults name (arg_utils.py, utils/types.py)."""
    values = {}
    for path in (config_dir / "arg_utils.py", config_dir.parent / "utils" / "types.py"):
        if not path.is_file():
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "").endswith("Enum") for b in node.bases):
                for item in node.body:
                    if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant):
                        values[f"{node.name}.{item.targets[0].id}"] = item.value.value
    return values


def dump_v1(config_dir: Path, commit: str) -> dict[str, Any]:
    """The fields of the v1 argument dataclasses (ModelArguments, DataArguments, TrainingArguments,
    SampleArguments), read from their source with `ast`; enum defaults as their values, a computed default
    (output_dir's random folder) as its source text."""
    enums = _enums(config_dir)
    found: dict[str, Any] = {}
    groups: dict[str, list[str]] = {}
    for name in V1_FILES:
        path = config_dir / name
        if not path.is_file():
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.ClassDef):
                continue
            names = []
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    value = item.value
                    default = (
                        _field_default(value)
                        if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field"
                        else _literal(value)
                    )
                    found[item.target.id] = enums.get(default, default) if isinstance(default, str) else default
                    names.append(item.target.id)
            if names:
                groups[node.name] = sorted(names)
    return {
        "source": "github.com/hiyouga/LLaMA-Factory src/llamafactory/v1/config",
        "commit": commit,
        "arguments": dict(sorted(found.items())),
        "groups": groups,
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["v1"]:
        out = dump_v1(Path(argv[1]), argv[2])
    elif argv[:1] == ["merge"]:
        out = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        out["v1"] = json.loads(Path(argv[2]).read_text(encoding="utf-8"))
    else:
        out = dump_v0()
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
