"""Reading and writing spec files: YAML in, `JobSpec` out, every problem reported with its line.

Kept apart from `spec.py` so the models stay pure and this module owns files, paths and messages.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from .errors import Problem, SpecError
from .spec import LORA_FAMILY, LORA_ONLY_KEYS, JobSpec


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a spec file; relative data and model paths are resolved against its folder."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"Spec file {path} not found", [Problem(str(path), "no such file",
                                                                  "check the path, or run `uft quickstart`")])
    text = path.read_text(encoding="utf-8")
    spec = parse_spec(text, source=str(path))
    return resolve_paths(spec, path.resolve().parent)


def parse_spec(text: str, source: str = "<spec>") -> JobSpec:
    """Validate spec text (YAML or JSON); collect every problem and raise them together."""
    try:
        data = yaml.safe_load(text)
        lines = _line_numbers(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise SpecError(f"{source} is not valid YAML", [Problem(where, str(getattr(exc, "problem", exc)),
                                                               "fix the YAML syntax at that line")]) from None
    if not isinstance(data, dict):
        raise SpecError(f"{source} is not a spec", [Problem(source, "expected a mapping of keys (name, model, "
                                                            "data, ...)", "see `uft schema` or specs/*.yaml")])
    return validate_spec_dict(data, source, lines)


def validate_spec_dict(data: dict[str, Any], source: str = "<spec>",
                       lines: dict[tuple, int] | None = None) -> JobSpec:
    """Validate a plain dict (library use); problems name the key path and the fix."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(err, source, lines or {}) for err in exc.errors()]
        raise SpecError(f"{source} has {len(problems)} problem(s)", problems) from None


def resolve_paths(spec: JobSpec, base: Path) -> JobSpec:
    """Make relative dataset and model folder paths absolute, so a run does not depend on its cwd."""
    forgetting = spec.evaluation.forgetting
    extra = [forgetting] if forgetting and forgetting.path != "builtin" else []
    for dataset in [*spec.data.train, *([spec.data.eval] if spec.data.eval else []), *extra]:
        if dataset.path is not None and not Path(dataset.path).is_absolute():
            dataset.path = str((base / dataset.path).resolve())
    lm_eval = spec.evaluation.lm_eval
    if lm_eval:
        if lm_eval.include_path and not Path(lm_eval.include_path).is_absolute():
            lm_eval.include_path = str((base / lm_eval.include_path).resolve())
        lm_eval.tasks = [str((base / t).resolve()) if t.endswith((".yaml", ".yml")) and not Path(t).is_absolute()
                         else t for t in lm_eval.tasks]
    model_path = spec.model.path
    if model_path.startswith((".", "/", "~")) or (base / model_path).exists():
        spec.model.path = str((base / Path(model_path).expanduser()).resolve())
    return spec


def dump_spec(spec: JobSpec) -> str:
    """The resolved spec as YAML, every default filled in."""
    data = json.loads(spec.model_dump_json())
    if spec.adapter.type not in LORA_FAMILY:  # LoRA settings mean nothing here and would not validate back
        for key in LORA_ONLY_KEYS:
            data["adapter"].pop(key, None)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _problem(err: dict[str, Any], source: str, lines: dict[tuple, int]) -> Problem:
    loc = tuple(err["loc"])
    key = _dotted(loc)
    line = _nearest_line(loc, lines)
    where = f"{source}:{line}" if line else source
    where = f"{where} ({key})" if key else where
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {guess[0]!r}?" if guess else f"known keys here: {', '.join(known)}"
        return Problem(where, f"unknown key {loc[-1]!r}", hint)
    if kind == "missing":
        return Problem(where, "required key is missing", f"add `{key}:` (see `uft schema`)")
    message = err["msg"].removeprefix("Value error, ")
    if kind not in ("value_error", "assertion_error"):
        message = f"{message} (got {err.get('input')!r})"
    return Problem(where, message)


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


def _line_numbers(node: yaml.Node | None, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each key path of a YAML document to its 1-based line, for error messages."""
    found: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, key_node.value)
            found[path] = key_node.start_mark.line + 1
            found.update(_line_numbers(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found[(*prefix, index)] = item.start_mark.line + 1
            found.update(_line_numbers(item, (*prefix, index)))
    return found


def _nearest_line(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
