"""Reading and writing spec files: YAML in, `JobSpec` out, every problem reported with its line.

Kept apart from `spec.py` so the models stay pure and this module owns files, paths and messages.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from .errors import Problem, SpecError
from .redact import redact_data
from .spec import LORA_FAMILY, LORA_ONLY_KEYS, JobSpec
from .userfile import dump_yaml, load_yaml, read_user_file


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a spec file; relative data and model paths are resolved against its folder."""
    text = read_user_file(path, "spec file", "check the path, or run `uft quickstart` for a working example")
    spec = parse_spec(text, source=str(path))
    return resolve_paths(spec, Path(path).resolve().parent)


def parse_spec(text: str, source: str = "<spec>") -> JobSpec:
    """Validate spec text (YAML or JSON); collect every problem and raise them together."""
    document = load_yaml(text, source)
    if not isinstance(document.data, dict):
        raise SpecError(f"{source} is not a spec", [Problem(source, "expected a mapping of keys (name, model, "
                                                            "data, ...)", "see `uft schema` or specs/*.yaml")])
    return validate_spec_dict(document.data, source, document.lines, document.typed)


def validate_spec_dict(data: dict[str, Any], source: str = "<spec>", lines: dict[tuple, int] | None = None,
                       typed: dict[tuple, tuple[str, str]] | None = None) -> JobSpec:
    """Validate a plain dict (library use); problems name the key path and the fix.

    `lines` and `typed` come from the YAML (see `userfile.load_yaml`): the line of each key path, and which
    unquoted values YAML read as something other than text, so a message can say "quote it".
    """
    if not isinstance(data, dict):
        raise SpecError(f"{source} is not a spec", [Problem(source, "expected a mapping of keys (name, model, "
                                                            "data, ...)", "see `uft schema` or specs/*.yaml")])
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        errors = _without_mismatched_branches(exc.errors())
        problems = _one_per_place([_problem(err, source, lines or {}, typed or {}) for err in errors])
        raise SpecError(f"{source} has {len(problems)} problem(s)", problems) from None


def resolve_paths(spec: JobSpec, base: Path) -> JobSpec:
    """Make relative dataset and model folder paths absolute, so a run does not depend on its cwd.

    Paths are made absolute without following symlinks: messages then name the path the user wrote, and a
    dataset that is a symlink to an extension-less blob (the Hugging Face cache, DVC) keeps its own name.
    """
    forgetting = spec.evaluation.forgetting
    extra = [forgetting] if forgetting and forgetting.path != "builtin" else []
    for dataset in [*spec.data.train, *([spec.data.eval] if spec.data.eval else []), *extra]:
        if dataset.path is not None:
            dataset.path = _absolute(base, dataset.path)
    lm_eval = spec.evaluation.lm_eval
    if lm_eval:
        if lm_eval.include_path:
            lm_eval.include_path = _absolute(base, lm_eval.include_path)
        lm_eval.tasks = [_absolute(base, t) if t.endswith((".yaml", ".yml")) else t for t in lm_eval.tasks]
    model_path = spec.model.path
    if model_path.startswith((".", "/", "~")) or _exists(base / model_path):
        spec.model.path = _absolute(base, model_path)
    return spec


def _absolute(base: Path, path: str) -> str:
    return os.path.normpath(base / Path(path).expanduser())


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # too long, NUL: not a local folder, so a hub id
        return False


def dump_spec(spec: JobSpec) -> str:
    """The resolved spec as YAML, every default filled in; secrets redacted (a spec holds none, but this text
    lands in spec.yaml and `uft plan`, so nothing that slipped past validation is written as is)."""
    data = redact_data(json.loads(spec.model_dump_json()))
    if spec.adapter.type not in LORA_FAMILY:  # LoRA settings mean nothing here and would not validate back
        for key in LORA_ONLY_KEYS:
            data["adapter"].pop(key, None)
    return dump_yaml(data)


#: pydantic error types that mean "wanted text (or a name, or a section)": where YAML typed an unquoted
#: value (`no`, `007`, `1.10`, a date, an empty value), the fix is to quote it.
_WANTED_TEXT = ("string_type", "literal_error", "enum", "model_type", "model_attributes_type", "dict_type")
_YAML_KINDS = {"bool": "a boolean", "int": "a number", "float": "a number", "timestamp": "a date",
               "null": "null (no value)"}
#: Parts of a pydantic error location that name a union member rather than a key of the spec.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|\[key\]|[a-z-]+\[.*\])$")


def _problem(err: dict[str, Any], source: str, lines: dict[tuple, int],
             typed: dict[tuple, tuple[str, str]]) -> Problem:
    loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and _UNION_TAG.match(part)))
    key = _dotted(loc)
    line = _nearest_line(loc, lines)
    where = f"{source}:{line}" if line else source
    where = f"{where} ({key})" if key else where
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {guess[0]!r}?" if guess else f"known keys here: {', '.join(known)}"
        return Problem(where, f"unknown key {loc[-1]!r}", hint)
    if kind == "missing":
        return Problem(where, "required key is missing", f"add `{key}:` (see `uft schema`)")
    leaf = str(loc[-1]) if loc else "key"
    wants_text = kind in _WANTED_TEXT and (kind != "literal_error" or "'" in str(err.get("ctx", {}).get("expected")))
    if loc in typed and wants_text:
        written, yaml_type = typed[loc]
        if yaml_type == "null":
            return Problem(where, f"has no value (YAML reads {written or 'an empty value'!r} as null)",
                           "give a value, or remove the key to use the default")
        return Problem(where, f"YAML reads the unquoted {written} as {_YAML_KINDS.get(yaml_type, yaml_type)} "
                       f"({value!r}), not as text", f'quote it: {leaf}: "{written}"')
    strict = _strict_type_problem(kind, typed[loc][0] if kind == "finite_number" and loc in typed else value, leaf)
    if strict:
        return Problem(where, *strict)
    message = err["msg"].removeprefix("Value error, ")
    if kind not in ("value_error", "assertion_error"):
        message = f"{message} (got {value!r})"
    return Problem(where, message)


def _strict_type_problem(kind: str, value: Any, leaf: str) -> tuple[str, str] | None:
    """Message and fix for a value of the wrong type (numbers and booleans are never coerced)."""
    wanted = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false"}.get(kind)
    if kind == "finite_number":
        return f"{value} is not a finite number", "give a finite value"
    if wanted is None:
        return None
    if isinstance(value, bool):
        return f"expected {wanted}, got the boolean {str(value).lower()}", f"write {wanted} for {leaf}"
    if isinstance(value, str):
        fix = (f"write it without quotes: {leaf}: {value.strip()}" if _reads_as(kind, value.strip())
               else f"give {wanted}")
        return f"expected {wanted}, got the text {value!r}", fix
    return f"expected {wanted}, got {value!r}", f"write {wanted} for {leaf}"


def _reads_as(kind: str, text: str) -> bool:
    """Would this quoted text be a valid value of that kind if written unquoted?"""
    if kind == "bool_type":
        return text.lower() in ("true", "false")
    try:
        number = int(text) if kind == "int_type" else float(text)
    except ValueError:
        return False
    return number == number and abs(number) != float("inf")


def _without_mismatched_branches(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For a union (`str | list[str]`), drop "not a string" when the value is a list with a bad item: the
    branch the value was clearly meant for says what is wrong."""
    def branch(err: dict[str, Any]) -> tuple[tuple, int] | None:
        loc = tuple(err["loc"])
        at = next((i for i, part in enumerate(loc) if isinstance(part, str) and _UNION_TAG.match(part)), None)
        return (loc[:at], len(loc) - at) if at is not None else None

    deeper = {b[0] for b in map(branch, errors) if b and b[1] > 1}
    return [err for err in errors if not ((b := branch(err)) and b[1] == 1 and b[0] in deeper
                                          and err["type"].endswith("_type"))]


def _one_per_place(problems: list[Problem]) -> list[Problem]:
    """A union field fails once per member; keep the "quote it" problem, or each distinct one, per place."""
    quoted = {p.where for p in problems if p.hint.startswith("quote it")}
    kept: list[Problem] = []
    for problem in problems:
        if (problem.where in quoted and not problem.hint.startswith("quote it")) or problem in kept:
            continue
        kept.append(problem)
    return kept


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _known_keys(loc: tuple) -> list[str]:
    """Field names of the model found at `loc` inside JobSpec (for did-you-mean)."""
    model: Any = JobSpec
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field else None
    return list(model.model_fields) if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation) if get_origin(annotation) else ():
        found = _model_in(arg)
        if found:
            return found
    return None


def _nearest_line(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
