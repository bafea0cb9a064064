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
from .spec import JobSpec
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
    problems = _backend_name_problems(data, source, lines or {})
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        errors = _without_mismatched_branches(exc.errors())
        problems = _one_per_place([_problem(err, source, lines or {}, typed or {}) for err in errors]) + problems
    if problems:
        raise SpecError(f"{source} has {len(problems)} problem(s)", problems) from None
    return spec


def _backend_name_problems(data: dict[str, Any], source: str, lines: dict[tuple, int]) -> list[Problem]:
    """`backend_options` for a backend that does not exist (`swfit`) would never be used: say so, with its line."""
    options = data.get("backend_options")
    if not isinstance(options, dict) or not options:
        return []
    from .plugin import backend_name_problem

    found = [(name, backend_name_problem(name)) for name in options]
    return [Problem(_where(("backend_options", name), source, lines), p.message, p.hint) for name, p in found if p]


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
    return dump_yaml(redact_data(json.loads(spec.model_dump_json())))


#: pydantic error types that mean "wanted text (or a name, or a section)": where YAML typed an unquoted
#: value (`no`, `007`, `1.10`, a date, an empty value), the fix is to quote it.
_WANTED_TEXT = ("string_type", "literal_error", "enum", "model_type", "model_attributes_type", "dict_type")
_YAML_KINDS = {"bool": "a boolean", "int": "a number", "float": "a number", "timestamp": "a date",
               "null": "null (no value)"}
#: Parts of a pydantic error location that name a union member rather than a key of the spec.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|\[key\]|[a-z-]+\[.*\])$")
#: Sections that also take a plain name (`method: dpo`, `template: chatml`): only there is text a fix for a
#: value that is not a mapping.
_NAME_SHORTHANDS = (("template",), ("method",))
#: Errors the spec models raise about one key inside them (ctx `key`): a key of another adapter type or
#: method, or one that this type or method needs.
_AT_KEY = ("misplaced_key", "needed_key")


def _problem(err: dict[str, Any], source: str, lines: dict[tuple, int],
             typed: dict[tuple, tuple[str, str]]) -> Problem:
    loc, _ = _walk(tuple(err["loc"]))
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind in _AT_KEY:  # a spec model's own message about one key inside it: point at that key's line
        return Problem(_where((*loc, ctx["key"]), source, lines), err["msg"])
    if kind == "union_tag_invalid":
        return _unknown_member(loc, ctx, source, lines, typed)
    where = _where(loc, source, lines)
    key = _dotted(loc)
    if kind == "extra_forbidden":
        parent = _walk(tuple(err["loc"])[:-1])[1]
        known = list(parent.model_fields) if parent else []
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {guess[0]!r}?" if guess else f"known keys here: {', '.join(known)}"
        return Problem(where, f"unknown key {loc[-1]!r}", hint)
    if kind == "missing":
        return Problem(where, "required key is missing", f"add `{key}:` (see `uft schema`)")
    leaf = str(loc[-1]) if loc else "key"
    wants_text = kind in _WANTED_TEXT and (kind != "literal_error" or "'" in str(ctx.get("expected")))
    if loc in typed and wants_text:
        written, yaml_type = typed[loc]
        if yaml_type == "null":
            return Problem(where, f"has no value (YAML reads {written or 'an empty value'!r} as null)",
                           "give a value, or remove the key to use the default")
        if not kind.startswith("model_") or loc in _NAME_SHORTHANDS:
            return Problem(where, f"YAML reads the unquoted {written} as {_YAML_KINDS.get(yaml_type, yaml_type)} "
                           f"({value!r}), not as text", f'quote it: {leaf}: "{written}"')
    strict = _strict_type_problem(kind, typed[loc][0] if kind == "finite_number" and loc in typed else value, leaf)
    if strict:
        return Problem(where, *strict)
    if kind == "model_attributes_type":
        return Problem(where, f"expected a mapping of keys, got {value!r}", "see `uft schema` or specs/*.yaml")
    message = err["msg"].removeprefix("Value error, ")
    if kind not in ("value_error", "assertion_error"):
        message = f"{message} (got {value!r})"
    return Problem(where, message)


def _where(loc: tuple, source: str, lines: dict[tuple, int]) -> str:
    """`file:line (key.path)`, the line being that of the key or of its nearest parent."""
    line, key = _nearest_line(loc, lines), _dotted(loc)
    where = f"{source}:{line}" if line else source
    return f"{where} ({key})" if key else where


def _unknown_member(loc: tuple, ctx: dict[str, Any], source: str, lines: dict[tuple, int],
                    typed: dict[tuple, tuple[str, str]]) -> Problem:
    """`adapter.type: lorra`: one line naming the known types, where pydantic lists its union's tags."""
    field = _field_at(loc)
    tag_key = str(field.discriminator) if field is not None else "type"
    tags = list(_members(field)) if field is not None else []
    at = (*loc, tag_key)
    written, yaml_type = typed.get(at, (str(ctx.get("tag")), "str"))
    if yaml_type == "null":
        return Problem(_where(at, source, lines), f"has no value (YAML reads {written or 'an empty value'!r} as null)",
                       f"give one of {', '.join(tags)}, or remove the key to use the default")
    close = difflib.get_close_matches(written, tags, n=1)
    hint = f"use one of {', '.join(tags)}" + (f" (did you mean {close[0]!r}?)" if close else "")
    what = f"{loc[-1]} {tag_key}" if loc else tag_key
    return Problem(_where(at, source, lines), f"unknown {what} {written!r}", hint)


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


def _walk(loc: tuple) -> tuple[tuple, type[BaseModel] | None]:
    """A pydantic error location as a spec key path (union members' tags left out), and the model it reaches.

    `adapter.lora.r` is `adapter.r` inside LoraAdapter: the tag after a discriminated union names the member.
    """
    model: Any = JobSpec
    path: list = []
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(part, str) and _UNION_TAG.match(part):
            continue
        path.append(part)
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        members = _members(field) if field is not None else {}
        if members and parts and parts[0] in members:
            model = members[parts.pop(0)]
        else:
            model = _model_in(field.annotation) if field is not None else None
    return tuple(path), model


def _field_at(loc: tuple) -> Any:
    """The pydantic FieldInfo at a spec key path, or None."""
    parent = _walk(loc[:-1])[1] if loc else None
    return parent.model_fields.get(loc[-1]) if parent is not None else None


def _members(field: Any) -> dict[str, type[BaseModel]]:
    """A discriminated union field's members by tag (lora -> LoraAdapter); {} for any other field."""
    if not field.discriminator:
        return {}
    tag_key = str(field.discriminator)
    return {tag: member for member in get_args(field.annotation)
            for tag in get_args(member.model_fields[tag_key].annotation)}


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
