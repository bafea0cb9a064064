"""The fuzz cases: several hundred bad inputs to `uft`, generated systematically, as plain data.

Each `Case` is a command line, the files to write into a fresh folder first, and what a well-made
tool must say: exit code 2, no traceback, a message naming each of `expect` (the file, the key path,
the row...), and the folder left exactly as it was. The expectations describe the tool we want, not
what the code does today: a failing case is a bug to fix in the code, not in the case.

Placeholders, replaced when a case is written: `@MODEL@` (a shared minimal model folder),
`@CASE@` (the case's own folder, absolute). Commands run with the case folder as working directory.
Generators: spec fields (walked from `JobSpec`'s pydantic fields), unknown and misspelt keys, missing
required keys, YAML surprises, dataset files of every format and file type, filesystem oddities and
the CLI's own arguments.
"""

from __future__ import annotations

import gzip
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel

from unified_ft import spec as spec_module
from unified_ft.spec import JobSpec


@dataclass(frozen=True)
class Fifo:
    """A named pipe at this path (reading it blocks until someone writes)."""


@dataclass(frozen=True)
class Dir:
    """A directory at this path, optionally holding files."""

    files: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Link:
    """A symbolic link at this path pointing at `target` (relative to the link's folder)."""

    target: str


Content = str | bytes | Fifo | Dir | Link | None  # None: the path must not exist
Expect = str | tuple[str, ...]  # a tuple: any one of these alternatives


@dataclass(frozen=True)
class Case:
    """One bad input: run `argv` in a folder holding `files`; expect exit 2 and a message naming `expect`."""

    id: str
    group: str
    argv: tuple[str, ...]
    files: dict[str, Content] = field(default_factory=dict)
    expect: tuple[Expect, ...] = ()
    exit_codes: tuple[int, ...] = (2,)
    isolate: bool = False  # run in a subprocess with a time and memory limit (may hang or blow up)
    nofile: int | None = None  # RLIMIT_NOFILE for an isolated case
    allowed_new: tuple[str, ...] = ()  # paths a successful (exit 0) control case may create


SPEC = "job.yaml"
DATA = "train.jsonl"

ALPACA_ROWS = [{"instruction": f"say {i}", "input": "", "output": f"number {i}"} for i in range(5)]


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def base_spec() -> dict[str, Any]:
    """A small spec valid for validate, plan and translate on trl, llamafactory and swift."""
    return {
        "name": "fuzz",
        "model": {"path": "@MODEL@"},
        "template": "chatml",
        "data": {"train": [{"path": DATA, "format": "alpaca"}]},
        "training": {"max_steps": 2},
    }


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10_000)


def base_files(spec: dict[str, Any] | str | None = None, **extra: Content) -> dict[str, Content]:
    text = dump(spec if spec is not None else base_spec()) if not isinstance(spec, str) else spec
    return {SPEC: text, DATA: jsonl(ALPACA_ROWS), **extra}


# Commands a spec case can run with; most cases rotate through them so every level sees every class.
COMMANDS: dict[str, tuple[str, ...]] = {
    "validate": ("validate", SPEC),
    "plan-trl": ("plan", SPEC, "--backend", "trl"),
    "translate-trl": ("translate", SPEC, "--backend", "trl", "-o", "out"),
    "translate-llamafactory": ("translate", SPEC, "--backend", "llamafactory", "-o", "out"),
    "plan-swift": ("plan", SPEC, "--backend", "swift"),
    "translate-swift": ("translate", SPEC, "--backend", "swift", "-o", "out"),
}
ROTATION = ("validate", "plan-trl", "translate-trl", "translate-llamafactory", "plan-swift")
FS_ROTATION = ("plan-trl", "translate-trl", "translate-llamafactory", "translate-swift")


class _Rotor:
    def __init__(self, names: tuple[str, ...]) -> None:
        self.names, self.i = names, 0

    def next(self) -> str:
        self.i += 1
        return self.names[(self.i - 1) % len(self.names)]


# ------------------------------------------------------------------------------------------------
# Walking JobSpec's fields

@dataclass(frozen=True)
class Leaf:
    path: tuple[Any, ...]  # key path in the spec dict, e.g. ("data", "train", 0, "weight")
    kind: str  # bool, int, float, str, literal, list, dict, model, str_or_list
    optional: bool
    required: bool
    literal_values: tuple[Any, ...] = ()
    lower: float | None = None  # ge/gt bound
    upper: float | None = None  # lt/le bound
    min_len: int | None = None
    fs: bool = False  # a filesystem path: only plan/translate can judge it
    seed: dict[str, Any] | None = None  # the minimal content of the model holding it (e.g. {type: freeze})


def _member_seeds(members: tuple[type[BaseModel], ...], tag_key: str,
                  needs: dict[str, dict[str, Any]]) -> list[tuple[dict[str, Any], type[BaseModel]]]:
    """One (minimal content, model) per member of a tagged union (an adapter type, a method)."""
    found = []
    for member in members:
        tag = get_args(member.model_fields[tag_key].annotation)[0]
        found.append(({tag_key: tag, **needs.get(tag, {})}, member))
    return found


# Where each sub-model sits in the spec, and the minimal content that makes it exist there. The first
# location of a prefix is its default content; every adapter type and method has its own.
LOCATIONS: list[tuple[tuple[Any, ...], type[BaseModel], dict[str, Any] | None]] = [
    ((), JobSpec, None),
    (("model",), spec_module.ModelSpec, None),
    (("template",), spec_module.TemplateSpec, {"name": "chatml"}),
    *((("method",), member, seed) for seed, member in _member_seeds(
        spec_module.METHOD_MODELS, "name", {"ppo": {"reward_model": "org/reward"}})),
    *((("adapter",), member, seed) for seed, member in _member_seeds(
        spec_module.ADAPTER_MODELS, "type", {"qlora": {"bits": 4}})),
    (("data",), spec_module.DataSpec, None),
    (("data", "train", 0), spec_module.DatasetSpec, None),
    (("training",), spec_module.TrainingSpec, None),
    (("evaluation",), spec_module.EvaluationSpec, {"enabled": True}),
    (("evaluation", "checks", 0), spec_module.CheckSpec, {"type": "regex", "pattern": "a+"}),
    (("evaluation", "lm_eval"), spec_module.LmEvalSpec, {"tasks": ["arc_easy"]}),
    (("export",), spec_module.ExportSpec, {"formats": []}),
]
FS_FIELDS = {("model", "path"), ("model", "gguf_file"), ("data", "train", 0, "path"),
             ("evaluation", "lm_eval", "include_path")}
HUB_FIELDS = {("data", "train", 0, "hub"), ("data", "train", 0, "subset"), ("data", "train", 0, "split"),
              ("data", "train", 0, "hub_site")}


def _unannotated(annotation: Any) -> Any:
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    annotation = _unannotated(annotation)
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        if len(args) == 1:
            return _unannotated(args[0]), optional
        return typing.Union[tuple(args)], optional  # noqa: UP007 - built at runtime
    return annotation, False


def _kind(annotation: Any) -> str:
    origin = get_origin(annotation)
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if annotation is str:
        return "str"
    if origin is Literal:
        return "literal"
    if origin is list:
        return "list"
    if origin is dict:
        return "dict"
    if origin in (Union, types.UnionType):
        return "str_or_list"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model"
    raise TypeError(f"no mutations for {annotation!r}")


def leaves() -> list[Leaf]:
    """Every field once, from the first location (adapter type, method) that has it."""
    found, seen = [], set()
    for prefix, model, seed in LOCATIONS:
        for name, info in model.model_fields.items():
            if (*prefix, name) in seen:
                continue
            seen.add((*prefix, name))
            annotation, optional = _strip_optional(info.annotation)
            kind = _kind(annotation)
            lower = upper = min_len = None
            for meta in info.metadata:
                if isinstance(meta, (annotated_types.Ge, annotated_types.Gt)):
                    lower = float(getattr(meta, "ge", getattr(meta, "gt", 0)))
                if isinstance(meta, (annotated_types.Lt, annotated_types.Le)):
                    upper = float(getattr(meta, "lt", getattr(meta, "le", 0)))
                if isinstance(meta, annotated_types.MinLen):
                    min_len = meta.min_length
            path = (*prefix, name)
            found.append(Leaf(path, kind, optional, info.is_required(),
                              get_args(annotation) if kind == "literal" else (), lower, upper, min_len,
                              fs=path in FS_FIELDS, seed=seed))
    return found


def dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def with_value(path: tuple[Any, ...], value: Any, base: dict[str, Any] | None = None,
               delete: bool = False, seed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The base spec with `value` set at `path` (parents created from LOCATIONS' minimal content, or from
    `seed` for the direct parent: the adapter type or method that has the field)."""
    spec = json.loads(json.dumps(base or base_spec()))
    node: Any = spec
    for depth, part in enumerate(path[:-1]):
        prefix = path[: depth + 1]
        child = node[part] if (isinstance(node, list) and part < len(node)) or (
            isinstance(node, dict) and part in node) else None
        if isinstance(child, str):  # template/method shorthand
            child = {"name": child}
        if child is None:
            if isinstance(path[depth + 1], int):
                child = []
            else:
                made = seed if seed and prefix == path[:-1] else next((s for p, _, s in LOCATIONS if p == prefix),
                                                                      None)
                child = json.loads(json.dumps(made)) if made else {}
        if isinstance(node, list):
            while len(node) <= part:
                node.append({})
        node[part] = child
        node = child
    last = path[-1]
    if isinstance(node, list):
        while len(node) <= last:
            node.append({})
    if delete:
        del node[last]
    else:
        node[last] = value
    return spec


NUMBER_BAD: list[tuple[str, Any]] = [("bool-true", True), ("bool-false", False), ("word", "eight"),
                                     ("numeric-string", "1"), ("list", [1]), ("dict", {"value": 1}),
                                     ("empty-string", "")]
STR_BAD: list[tuple[str, Any]] = [("int", 7), ("float", 1.5), ("bool", True), ("list", ["a"]),
                                  ("dict", {"a": 1}), ("empty", ""), ("whitespace", "   ")]
STR_ODD: list[tuple[str, Any]] = [("nul", "fu\x00zz"), ("bidi-override", "\u202ezzuf"),
                                  ("zero-width", "fu\u200bzz"), ("newline", "fu\nzz")]
# Fields whose text is free-form (any string is fine there).
FREE_TEXT = {("template", "jinja"), ("evaluation", "checks", 0, "pattern")}
# Plain-name fields where odd unicode (bidi override, zero-width...) can never be right.
NAME_LIKE = {("name",), ("model", "path"), ("model", "revision"), ("model", "gguf_file"), ("template", "name"),
             ("method", "loss_type"), ("data", "train", 0, "path"), ("runs_dir",),
             ("evaluation", "main_metric")}


def leaf_mutations(leaf: Leaf) -> list[tuple[str, Any, str]]:
    """(label, value, level) for one field; level: any (rotate), validate, fs (plan/translate only)."""
    out: list[tuple[str, Any, str]] = []
    k = leaf.kind
    if not leaf.optional and not leaf.required:
        out.append(("null", None, "any"))
    if k in ("int", "float"):
        out += [(label, value, "any") for label, value in NUMBER_BAD]
        out += [("inf", float("inf"), "validate"), ("nan", float("nan"), "validate")]
        if k == "float":
            out.append(("neg-inf", float("-inf"), "validate"))
        if k == "int":
            out += [("fraction", 2.5, "any"), ("huge", 10**30, "validate")]
        if leaf.lower is not None or leaf.path[-1] == "seed":
            out.append(("negative", -1, "validate"))
        if leaf.upper is not None:
            out.append(("above-upper", leaf.upper + 1, "validate"))
    elif k == "bool":
        out += [("string-yes", "yes", "any"), ("int-one", 1, "any"), ("int-two", 2, "any"), ("word", "maybe", "any"),
                ("list", [True], "any"), ("dict", {"a": True}, "any")]
    elif k == "str":
        level = "fs" if leaf.fs else "any"
        out += [(label, value, level if label in ("empty", "whitespace") else "any") for label, value in STR_BAD
                if not (leaf.path in FREE_TEXT and label in ("empty", "whitespace"))]
        if leaf.path in NAME_LIKE:
            out += [(label, value, level) for label, value in STR_ODD]
    elif k == "literal":
        first = leaf.literal_values[0]
        out += [("unknown", "nope", "any"), ("number", 12345, "any"), ("list", [first], "any"),
                ("bool", True, "any"), ("empty", "", "any")]
        if isinstance(first, str) and first.upper() != first:
            out.append(("wrong-case", first.upper(), "any"))
    elif k == "list":
        out += [("dict", {"a": 1}, "any"), ("scalar-int", 5, "any"), ("item-int", [12345], "any"),
                ("item-null", [None], "any"), ("item-list", [["x"]], "any")]
        if leaf.min_len:
            out.append(("empty", [], "any"))
        if leaf.path[-1] in ("formats", "metrics", "report_to", "tasks"):
            out.append(("scalar-string", "adapter" if leaf.path[-1] == "formats" else "x", "any"))
    elif k == "dict":
        out += [("list", ["a"], "any"), ("scalar", "x", "any"), ("value-int", {"k": 1}, "any"),
                ("value-list", {"k": ["a"]}, "any")]
    elif k == "str_or_list":
        out += [("int", 5, "any"), ("dict", {"q_proj": 1}, "any"), ("empty-list", [], "any"),
                ("item-empty", [""], "any"), ("item-int", [1], "any"), ("empty-string", "", "any"),
                ("item-whitespace", [" "], "any")]
    elif k == "model":
        out += [("int", 5, "any"), ("list", [1], "any"), ("bool", True, "any")]
        if leaf.path[-1] not in ("template", "method"):
            out.append(("string", "text", "any"))
    return out


# Per kind of field, the mutations every field gets; the others are spread over the fields of that kind
# (EXTRAS_PER_FIELD each, in turn), so every (kind, mutation) pair is tried without the full product.
CORE = {"int": {"bool-true", "word", "huge", "negative"},
        "float": {"bool-true", "inf", "negative", "above-upper"},
        "bool": {"string-yes", "int-two"}, "str": {"int", "empty", "nul"},
        "literal": {"unknown"}, "list": {"dict", "item-int"},
        "dict": {"list"}, "str_or_list": {"int", "item-empty"},
        "model": {"int", "null"}}
EXTRAS_PER_FIELD = 1


def spec_field_cases() -> list[Case]:
    rotor, fs_rotor = _Rotor(ROTATION), _Rotor(FS_ROTATION)
    extra_turn: dict[str, int] = {}
    cases = []
    for index, leaf in enumerate(leaves()):
        mutations = leaf_mutations(leaf)
        core = [m for m in mutations if m[0] in CORE[leaf.kind]]
        extras = [m for m in mutations if m[0] not in CORE[leaf.kind]]
        if extras and index % 2 == 0:  # every other field also gets the next extra of its kind
            turn = extra_turn.get(leaf.kind, 0)
            picked = [extras[(turn + i) % len(extras)] for i in range(min(EXTRAS_PER_FIELD, len(extras)))]
            extra_turn[leaf.kind] = turn + EXTRAS_PER_FIELD
            core += picked
        for label, value, level in core:
            if leaf.path in HUB_FIELDS or leaf.path[-1] in ("samples",):
                level = "validate"  # never reach the hub, never draw 10**30 samples
            command = {"any": rotor.next, "fs": fs_rotor.next, "validate": lambda: "validate"}[level]()
            key = dotted(leaf.path)
            base = None
            if leaf.path in HUB_FIELDS:  # on a hub dataset, where these apply
                base = with_value(("data", "train"), [{"hub": "org/dataset", "format": "alpaca"}])
            spec = with_value(leaf.path, value, base, seed=leaf.seed)
            if leaf.path == ("template", "name"):
                key = "template"  # checked by TemplateSpec's own validator, which names the section
            # a path found wrong by plan/translate names the key; the spec file is named by validation
            named = (key, value) if isinstance(value, str) and value.strip() else (key,)
            expect = (named,) if level == "fs" else (SPEC, key)
            cases.append(Case(f"spec-{dotted(leaf.path)}-{label}-{command}", "spec-values", COMMANDS[command],
                              base_files(spec), expect))
    return cases


def unknown_key_cases() -> list[Case]:
    rotor = _Rotor(ROTATION)
    cases, sections, seen = [], set(), set()
    for prefix, model, seed in LOCATIONS:
        key = dotted((*prefix, "bogus_key"))
        if prefix not in sections:  # one unknown key per section is enough
            sections.add(prefix)
            spec = with_value((*prefix, "bogus_key"), 1)
            cases.append(Case(f"unknown-key-{key}-{(c := rotor.next())}", "unknown-keys", COMMANDS[c],
                              base_files(spec), (SPEC, key, "bogus_key")))
        for index, name in enumerate(model.model_fields):
            if len(name) < 4 or name == "schema_version" or index % 2 or (*prefix, name) in seen:
                continue  # every other field of each model: enough for the class
            seen.add((*prefix, name))
            typo = name[:1] + name[2] + name[1] + name[3:]  # swap two letters
            if typo in model.model_fields or typo == name:
                continue
            required = model.model_fields[name].is_required()
            spec = with_value((*prefix, typo), _sample_value(prefix, name), seed=seed)
            if required:
                spec = with_value((*prefix, name), None, spec, delete=True)
            cases.append(Case(f"typo-{dotted((*prefix, typo))}-{(c := rotor.next())}", "unknown-keys",
                              COMMANDS[c], base_files(spec), (SPEC, dotted((*prefix, typo)), f"'{name}'")))
    return cases


def _sample_value(prefix: tuple[Any, ...], name: str) -> Any:
    """A plausible value for a field, so the only fault is its misspelt name."""
    base = base_spec()
    node: Any = base
    for part in (*prefix, name):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return 1
    return node


def missing_key_cases() -> list[Case]:
    rotor = _Rotor(ROTATION)
    targets = [("name",), ("model",), ("data",), ("model", "path"), ("data", "train"), ("data", "train", 0, "format")]
    cases = []
    for path in targets:
        spec = with_value(path, None, delete=True)
        cases.append(Case(f"missing-{dotted(path)}-{(c := rotor.next())}", "missing-keys", COMMANDS[c],
                          base_files(spec), (SPEC, dotted(path))))
    extra = [
        ("missing-dataset-source", with_value(("data", "train", 0, "path"), None, delete=True), "data.train[0]"),
        ("missing-check-type", with_value(("evaluation", "checks"), [{"pattern": "a+"}]), "evaluation.checks[0]"),
        ("missing-lm-eval-tasks", with_value(("evaluation", "lm_eval"), {"limit": 2}), "evaluation.lm_eval.tasks"),
        ("missing-eval-format", with_value(("data", "eval"), {"path": DATA}), "data.eval.format"),
        ("missing-forgetting-format", with_value(("evaluation", "forgetting"), {"path": DATA}),
         "evaluation.forgetting.format"),
        ("missing-ppo-reward-model", with_value(("method",), "ppo"), "reward_model"),
        ("missing-qlora-bits", with_value(("adapter",), {"type": "qlora"}), "adapter.bits"),
        ("missing-jinja-text", with_value(("template",), {"name": "jinja"}), "template.jinja"),
        ("missing-regex-pattern", with_value(("evaluation", "checks"), [{"type": "regex"}]), "pattern"),
        ("empty-train-list", with_value(("data", "train"), []), "data.train"),
        ("empty-spec-mapping", {}, "name"),
    ]
    for cid, spec, key in extra:
        cases.append(Case(f"{cid}-{(c := rotor.next())}", "missing-keys", COMMANDS[c], base_files(spec), (SPEC, key)))
    return cases


def semantic_cases() -> list[Case]:
    """Values of the right type that no run can honour (issue 10, item 4)."""
    rotor = _Rotor(ROTATION)
    items: list[tuple[str, dict[str, Any], tuple[Expect, ...], str | None]] = [
        ("seed-above-uint32", with_value(("training", "seed"), 2**32), ("training.seed",), "validate"),
        ("seed-negative", with_value(("training", "seed"), -5), ("training.seed",), "validate"),
        ("empty-target-module", with_value(("adapter", "target_modules"), ["q_proj", ""]),
         ("adapter.target_modules",), None),
        ("unknown-dpo-loss-type", with_value(("method",), {"name": "dpo", "loss_type": "no_such_loss"},
                                             with_value(("data", "train", 0, "format"), "preference")),
         ("method.loss_type",), "validate"),
        ("lr-inf", with_value(("training", "learning_rate"), float("inf")), ("training.learning_rate",), "validate"),
        ("epochs-inf", with_value(("training", "epochs"), float("inf"),
                                  with_value(("training", "max_steps"), None, delete=True)),
         ("training.epochs",), "validate"),
        ("weight-inf", with_value(("data", "train", 0, "weight"), float("inf")), ("data.train[0].weight",),
         "validate"),
        ("unknown-template", with_value(("template",), "nosuchtemplate"), ("template",), None),
        ("jinja-without-name", with_value(("template",), {"name": "chatml", "jinja": "{{ x }}"}), ("template",),
         None),
        ("bad-regex", with_value(("evaluation", "checks"), [{"type": "regex", "pattern": "(unclosed"}]),
         ("pattern",), None),
        ("main-metric-unknown", with_value(("evaluation", "main_metric"), "accuracy"), ("evaluation.main_metric",),
         None),
        ("epochs-and-steps", with_value(("training", "epochs"), 1), ("training",), None),
        ("eval-and-split", with_value(("data", "eval_split"), 0.1,
                                      with_value(("data", "eval"), {"path": DATA, "format": "alpaca"})),
         ("data",), None),
        ("name-with-slash", with_value(("name",), "../escape"), ("name",), None),
        ("name-dotdot", with_value(("name",), ".."), ("name",), None),
        ("name-too-long", with_value(("name",), "a" * 300), ("name",), None),
        ("secret-in-backend-options", with_value(("backend_options",), {"trl": {"hub_token": "hf_abcdefghijkl"}}),
         ("backend_options.trl.hub_token",), None),
        ("backend-options-not-mapping", with_value(("backend_options",), {"trl": 5}), ("backend_options.trl",),
         None),
        ("backend-options-misspelt-backend", with_value(("backend_options",), {"swfit": {"max_pixels": 5}}),
         ("backend_options.swfit", "did you mean 'swift'?"), None),
        ("key-of-another-adapter-type", with_value(("adapter", "trainable_layers"), 3),
         ("adapter.trainable_layers", "type freeze, not lora"), None),
        ("key-of-another-method", with_value(("method",), {"name": "sft", "gamma": 0.5}),
         ("method.gamma", "applies to simpo, not sft"), None),
        ("dpo-on-alpaca", with_value(("method",), "dpo"), ("format",), None),
        ("report-to-none-and-wandb", with_value(("training", "report_to"), ["none", "wandb"]),
         ("training.report_to",), None),
        ("adapter-export-for-full", with_value(("export", "formats"), ["adapter"],
                                               with_value(("adapter",), {"type": "full"})),
         ("export.formats",), "plan-trl"),
        ("weight-huge-pair-translate", with_value(("data", "train"), [
            {"path": DATA, "format": "alpaca", "weight": 1e308}, {"path": DATA, "format": "alpaca", "weight": 1e-308}]),
         (), "translate-trl"),
    ]
    cases = []
    for cid, spec, expect, command in items:
        command = command or rotor.next()
        if cid == "weight-huge-pair-translate":  # valid, if extreme: it must work or be refused cleanly
            cases.append(Case(f"value-{cid}", "spec-values", COMMANDS[command], base_files(spec), (),
                              exit_codes=(0, 2), allowed_new=("out",)))
            continue
        plan_level = cid in ("adapter-export-for-full",)
        cases.append(Case(f"value-{cid}-{command}", "spec-values", COMMANDS[command], base_files(spec),
                          expect if plan_level else (SPEC, *expect)))
    return cases


def filesystem_spec_cases() -> list[Case]:
    """Paths in the spec that exist wrongly: a file for a folder, an empty folder, escapes, loops, NUL."""
    rotor = _Rotor(FS_ROTATION)
    long_name = "a" * 300 + ".jsonl"
    items: list[tuple[str, dict[str, Any], dict[str, Content], tuple[Expect, ...]]] = [
        ("model-path-is-file", with_value(("model", "path"), "weights.bin"), {"weights.bin": "not a model"},
         ("model.path", "weights.bin")),
        ("model-path-empty-folder", with_value(("model", "path"), "./emptymodel"), {"emptymodel": Dir()},
         ("model.path", "emptymodel")),
        ("model-path-missing", with_value(("model", "path"), "./nomodel"), {}, ("model.path", "nomodel")),
        ("model-path-nul", with_value(("model", "path"), "./mo\x00del"), {}, ("model.path",)),
        ("model-path-too-long", with_value(("model", "path"), "./" + "m" * 5000), {}, ("model.path",)),
        ("model-path-symlink-loop", with_value(("model", "path"), "./loopmodel"), {"loopmodel": Link("loopmodel")},
         ("model.path", "loopmodel")),
        ("gguf-escapes-model-folder", with_value(("model", "gguf_file"), "../outside.gguf"),
         {"outside.gguf": "GGUF"}, ("model.gguf_file",)),
        ("gguf-absolute", with_value(("model", "gguf_file"), "@CASE@/outside.gguf"), {"outside.gguf": "GGUF"},
         ("model.gguf_file",)),
        ("gguf-missing", with_value(("model", "gguf_file"), "nothere.gguf"), {}, ("model.gguf_file", "nothere.gguf")),
        ("data-path-nul", with_value(("data", "train", 0, "path"), "tr\x00ain.jsonl"), {}, ("data.train[0].path",)),
        ("data-path-too-long", with_value(("data", "train", 0, "path"), long_name), {}, ("aaaaaaaaaa",)),
        ("data-path-deep-too-long", with_value(("data", "train", 0, "path"), "d/" * 3000 + "x.jsonl"), {},
         ("x.jsonl",)),
        ("data-symlink-loop", with_value(("data", "train", 0, "path"), "loop.jsonl"),
         {"loop.jsonl": Link("loop.jsonl")},
         ("loop.jsonl",)),
        ("data-dangling-symlink", with_value(("data", "train", 0, "path"), "dangling.jsonl"),
         {"dangling.jsonl": Link("gone.jsonl")}, ("dangling.jsonl",)),
        ("data-symlink-to-bad-file-names-link", with_value(("data", "train", 0, "path"), "mylink.jsonl"),
         {"mylink.jsonl": Link("blobs/target.jsonl"),
          "blobs": Dir((("target.jsonl", jsonl(ALPACA_ROWS[:2]) + "{broken\n"),))},
         ("mylink.jsonl", "row 3")),
        ("eval-missing-file", with_value(("data", "eval"), {"path": "noeval.jsonl", "format": "alpaca"}), {},
         ("noeval.jsonl",)),
        ("forgetting-missing-file", with_value(("evaluation", "forgetting"),
                                               {"path": "noforget.jsonl", "format": "alpaca"}), {},
         ("noforget.jsonl",)),
        ("forgetting-bad-row", with_value(("evaluation", "forgetting"), {"path": "forget.jsonl", "format": "alpaca"}),
         {"forget.jsonl": jsonl(ALPACA_ROWS[:1]) + '{"instruction": "x"}\n'}, ("forget.jsonl", "row 2")),
        ("lm-eval-task-file-missing", with_value(("evaluation", "lm_eval"), {"tasks": ["mytask.yaml"]}), {},
         ("mytask.yaml",)),
        ("lm-eval-include-path-missing", with_value(("evaluation", "lm_eval"),
                                                    {"tasks": ["mytask"], "include_path": "tasks_dir"}), {},
         ("tasks_dir",)),
        ("lm-eval-include-path-is-file", with_value(("evaluation", "lm_eval"),
                                                    {"tasks": ["mytask"], "include_path": "tasks.txt"}),
         {"tasks.txt": "x"}, ("tasks.txt",)),
    ]
    cases = []
    for cid, spec, files, expect in items:
        command = rotor.next()
        cases.append(Case(f"fs-{cid}-{command}", "spec-paths", COMMANDS[command], base_files(spec, **files),
                          expect))
    return cases


# ------------------------------------------------------------------------------------------------
# YAML surprises

SPEC_LINES = ["name: fuzz", "model:", "  path: @MODEL@", "template: chatml", "data:", "  train:",
              f"    - path: {DATA}", "      format: alpaca", "training:", "  max_steps: 2"]


def spec_text(*lines: str, replace: dict[int, str] | None = None, insert: dict[int, list[str]] | None = None) -> str:
    """The base spec as text lines (1-based `replace`/`insert` before line N), for YAML-level faults."""
    out = list(lines or SPEC_LINES)
    for number, line in sorted((replace or {}).items()):
        out[number - 1] = line
    for number, new in sorted((insert or {}).items(), reverse=True):
        out[number - 1:number - 1] = new
    return "\n".join(out) + "\n"


def yaml_cases() -> list[Case]:
    rotor = _Rotor(ROTATION)
    cases: list[Case] = []

    def add(cid: str, text: str | bytes, expect: tuple[Expect, ...], command: str | None = None,
            isolate: bool = False) -> None:
        c = command or rotor.next()
        files = base_files()
        files[SPEC] = text
        cases.append(Case(f"yaml-{cid}-{c}", "yaml", COMMANDS[c], files, (SPEC, *expect), isolate=isolate))

    # duplicate keys: the last silently wins today (a second `data:` drops the first dataset)
    add("dup-top-name", spec_text(insert={2: ["name: other"]}), ("name", ("line 2", ":2")))
    add("dup-top-data", spec_text(insert={9: ["data:", "  train:", "    - path: other.jsonl", "      format: alpaca"]}),
        ("data", ("line 9", ":9")))
    add("dup-nested-max-steps", spec_text(insert={11: ["  max_steps: 5"]}), ("max_steps", ("line 11", ":11")))
    add("dup-nested-model-path", spec_text(insert={4: ["  path: ./other"]}), ("path", ("line 4", ":4")))
    add("dup-dataset-format", spec_text(insert={9: ["      format: sharegpt"]}), ("format", ("line 9", ":9")))
    # YAML 1.1 surprises in string fields: say "quote it"
    surprises = [("no", "no"), ("yes", "yes"), ("off", "off"), ("octal", "007"), ("version", "1.10"),
                 ("date", "2024-01-01"), ("hex", "0x1F"), ("underscore-int", "1_000"), ("inf", ".inf"),
                 ("sexagesimal", "1:30")]
    for label, value in surprises:
        add(f"name-{label}", spec_text(replace={1: f"name: {value}"}), ("name", "quote"))
    for field_line, label, value in [("  revision: {}", "revision", "1.10"),
                                     ("  revision: {}", "revision", "2024-01-01"),
                                     ("  gguf_file: {}", "gguf_file", "007")]:
        add(f"model-{label}-{value}", spec_text(insert={4: [field_line.format(value)]}), (label, "quote"))
    add("template-name-no", spec_text(replace={4: "template: no"}), ("template", "quote"))
    add("runs-dir-date", spec_text(insert={11: ["runs_dir: 2024-01-01"]}), ("runs_dir", "quote"))
    add("column-value-octal", spec_text(insert={9: ["      columns: {output: 007}"]}), ("columns", "quote"))
    add("target-module-no", spec_text(insert={11: ["adapter:", "  target_modules: [q_proj, no]"]}),
        ("target_modules", "quote"))
    # syntax faults, with the line where they start
    add("tab-indent", spec_text(replace={3: "\tpath: @MODEL@"}), (("line 3", ":3"),))
    add("unclosed-quote", spec_text(insert={4: ['  revision: "abc']}), (("line 4", ":4"),))
    add("unclosed-single-quote", spec_text(replace={1: "name: 'fuzz"}), (("line 1", ":1"),))
    add("unclosed-bracket", spec_text(insert={11: ["adapter:", "  target_modules: [q_proj, v_proj"]}),
        (("line 12", ":12"),))
    add("unclosed-brace", spec_text(replace={8: "      columns: {output: answer"}), (("line 8", ":8"),))
    add("bad-indent", spec_text(replace={10: "    max_steps: 2", 9: "training: x"}), (("line 10", ":10"),))
    add("stray-colon", spec_text(replace={1: "name: fu: zz"}), (("line 1", ":1"),))
    add("mixed-sequence", spec_text(insert={9: ["      - oops"]}), (("line 9", ":9"),))
    add("python-tag", spec_text(replace={1: "name: !!python/object/apply:os.system ['true']"}), (("line 1", ":1"),))
    add("python-name-tag", spec_text(replace={1: "name: !!python/name:os.system"}), (("line 1", ":1"),))
    add("custom-tag", spec_text(replace={1: "name: !mytag fuzz"}), (("line 1", ":1"),))
    add("binary-tag", spec_text(replace={1: "name: !!binary aGVsbG8="}), ("name",))
    add("set-tag", spec_text(replace={1: "name: !!set {a, b}"}), ("name",))
    add("complex-key", spec_text(insert={11: ["? [a, b]", ": c"]}), (("line 11", ":11"),))
    add("int-key", spec_text(insert={11: ["1: x"]}), (("line 11", ":11", "'1'", " 1"),))
    add("null-key", spec_text(insert={11: ["~: x"]}), (("line 11", ":11", "None", "null"),))
    add("multiple-documents", spec_text() + "---\n" + spec_text(), ("document",))
    # encodings and bytes
    base = spec_text()
    add("latin1-line-5", spec_text(insert={5: ["# caf\udce9"]}).encode("utf-8", "surrogateescape"),
        ("UTF-8", ("line 5", ":5")))
    add("latin1-after-blank-lines", ("\n\n\n" + spec_text(replace={1: "name: caf\udce9"})).encode(
        "utf-8", "surrogateescape"), ("UTF-8", ("line 4", ":4")))
    add("utf16", base.encode("utf-16"), ("UTF-8",))
    add("nul-byte", spec_text(replace={1: "name: fu\x00zz"}).encode(), (("line 1", ":1"),))
    add("bom-garbage", "\ufeff@@@ garbage: [".encode(), (("line 1", ":1"),))
    add("bom-valid", ("\ufeff" + spec_text(replace={1: "name: ../up"})).encode(), ("name",))
    add("control-char", spec_text(replace={1: "name: fu\x07zz"}).encode(), (("line 1", ":1"),))
    add("empty-file", "", ("mapping",))
    add("whitespace-only", "  \n\n   \n", ("mapping",))
    add("comments-only", "# nothing here\n# at all\n", ("mapping",))
    add("list-at-top", "- name: fuzz\n- model: x\n", ("mapping",))
    add("scalar-at-top", "fuzz\n", ("mapping",))
    add("random-binary", bytes(range(256)) * 4, ())
    # growth and depth: bounded before any work is done
    bomb = ["backend_options:", "  trl:", '    a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for level in range(1, 9):
        refs = ",".join([f"*a{level - 1}"] * 9)
        bomb.append(f"    a{level}: &a{level} [{refs}]")
    add("alias-bomb-validate", spec_text(*SPEC_LINES, *bomb), ("alias",), "validate", isolate=True)
    add("alias-bomb-plan", spec_text(*SPEC_LINES, *bomb), ("alias",), "plan-trl", isolate=True)
    add("deep-flow-nesting", spec_text(*SPEC_LINES, "backend_options:", "  trl:",
                                       "    deep: " + "[" * 20000 + "]" * 20000), ("deep",), "validate", isolate=True)
    add("deep-block-nesting", spec_text(*SPEC_LINES, "backend_options:", "  trl:",
                                        *[" " * (4 + 2 * i) + f"k{i}:" for i in range(400)],
                                        " " * 804 + "leaf: 1"), ("deep",), "plan-trl", isolate=True)
    add("huge-scalar", spec_text(replace={1: "name: " + "n" * 2_000_000}), ("name",), "validate")
    return cases


# ------------------------------------------------------------------------------------------------
# Dataset files

GOOD_ROW: dict[str, dict[str, Any]] = {
    "alpaca": {"instruction": "say hi", "input": "", "output": "hi"},
    "sharegpt": {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
    "messages": {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    "preference": {"instruction": "pick one", "chosen": "good", "rejected": "bad"},
    "unpaired": {"prompt": "is it good", "completion": "yes", "label": True},
    "text": {"text": "some plain text to learn"},
}
METHOD_FOR = {"alpaca": "sft", "sharegpt": "sft", "messages": "sft", "preference": "dpo", "unpaired": "kto",
              "text": "pt"}
REQUIRED = {"alpaca": ["instruction", "output"], "sharegpt": ["conversations"], "messages": ["messages"],
            "preference": ["chosen", "rejected", "instruction"], "unpaired": ["completion", "label", "prompt"],
            "text": ["text"]}
WRONG_CELLS: dict[str, list[tuple[str, str, Any]]] = {  # (label, field, value)
    "alpaca": [("bool", "output", True), ("null", "output", None), ("object", "output", {"a": 1}),
               ("list", "instruction", ["x"]), ("null", "instruction", None), ("empty", "output", "")],
    "sharegpt": [("string", "conversations", "hi"), ("object", "conversations", {"a": 1}),
                 ("empty-list", "conversations", []), ("item-int", "conversations", [5]),
                 ("unknown-role", "conversations", [{"from": "alien", "value": "x"}, {"from": "gpt", "value": "y"}]),
                 ("no-value", "conversations", [{"from": "human"}, {"from": "gpt", "value": "y"}]),
                 ("null-value", "conversations", [{"from": "human", "value": None}, {"from": "gpt", "value": "y"}]),
                 ("bool-value", "conversations", [{"from": "human", "value": "x"}, {"from": "gpt", "value": False}])],
    "messages": [("string", "messages", "hi"), ("object", "messages", {"role": "user"}), ("empty-list", "messages", []),
                 ("role-int", "messages", [{"role": 1, "content": "x"}, {"role": "assistant", "content": "y"}]),
                 ("content-list", "messages", [{"role": "user", "content": ["x"]},
                                               {"role": "assistant", "content": "y"}]),
                 ("no-assistant", "messages", [{"role": "user", "content": "x"}]),
                 ("content-null", "messages", [{"role": "user", "content": "x"}, {"role": "assistant",
                                                                                  "content": None}])],
    "preference": [("bool", "chosen", True), ("null", "rejected", None), ("object", "chosen", {"a": 1}),
                   ("empty", "rejected", ""), ("list-int", "chosen", [1])],
    "unpaired": [("label-word", "label", "maybe"), ("label-int", "label", 2), ("label-null", "label", None),
                 ("completion-bool", "completion", True), ("completion-null", "completion", None)],
    "text": [("bool", "text", True), ("null", "text", None), ("list", "text", ["a"]), ("object", "text", {}),
             ("empty", "text", ""), ("whitespace", "text", "   ")],
}


def data_spec(fmt: str, path: str, **dataset: Any) -> dict[str, Any]:
    spec = base_spec()
    spec["data"]["train"] = [{"path": path, "format": fmt, **dataset}]
    method = METHOD_FOR.get(fmt, "sft")
    if method != "sft":
        spec["method"] = method
    return spec


def _csv_cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return '"' + text.replace('"', '""') + '"'


def csv_text(rows: list[dict[str, Any]], header: list[str] | None = None) -> str:
    header = header or list(dict.fromkeys(k for r in rows for k in r))
    lines = [",".join(header)]
    for r in rows:
        last = max((i for i, h in enumerate(header) if h in r), default=-1)  # cells after the last given are absent
        lines.append(",".join(_csv_cell(r[h]) if h in r else "" for h in header[: last + 1]))
    return "\n".join(lines) + "\n"


def json_array(rows: list[Any]) -> str:
    return "[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n"


def rows_file(kind: str, rows: list[Any]) -> str:
    return {"jsonl": jsonl, "json": json_array, "csv": csv_text}[kind](rows)


DATA_ROTATION = ("translate-trl", "plan-trl")


def dataset_cases() -> list[Case]:
    rotor = _Rotor(DATA_ROTATION)
    cases: list[Case] = []

    def add(cid: str, fmt: str, name: str, content: Content, expect: tuple[Expect, ...], command: str | None = None,
            isolate: bool = False, extra: dict[str, Content] | None = None, **dataset: Any) -> None:
        c = command or rotor.next()
        files = {SPEC: dump(data_spec(fmt, name, **dataset)), name: content, **(extra or {})}
        cases.append(Case(f"data-{cid}-{c}", "datasets", COMMANDS[c], files, expect, isolate=isolate))

    for fmt, good in GOOD_ROW.items():
        for kind in ("jsonl", "json", "csv"):
            name = f"rows.{kind}"
            for column in REQUIRED[fmt]:
                bad = {k: v for k, v in good.items() if k != column}
                if fmt == "unpaired" and column == "prompt":
                    bad = {"completion": "yes", "label": True}
                if kind == "csv":  # a CSV row lacks a column only by ending early: put it last, after an id
                    order = ["id", *[k for k in good if k != column], column]
                    rows = [{"id": str(i), **(bad if i == 3 else good)} for i in (1, 2, 3, 4)]
                    content = csv_text(rows, order)
                else:
                    content = rows_file(kind, [good, good, bad, good])
                add(f"{fmt}-{kind}-missing-{column}-row3", fmt, name, content, (name, "row 3", column))
            if kind == "csv":
                continue
            for label, column, value in WRONG_CELLS[fmt][: None if kind == "jsonl" else 2]:
                bad = {**good, column: value}
                add(f"{fmt}-{kind}-{column}-{label}-row3", fmt, name, rows_file(kind, [good, good, bad, good]),
                    (name, "row 3", column))
        # malformed JSON lines at row N
        for n in (1, 4):
            lines = [json.dumps(good)] * 5
            lines[n - 1] = lines[n - 1][:-3]  # cut the closing of the object
            add(f"{fmt}-jsonl-malformed-row{n}", fmt, "rows.jsonl", "\n".join(lines) + "\n",
                ("rows.jsonl", f"row {n}"))
        add(f"{fmt}-jsonl-not-object-row2", fmt, "rows.jsonl", jsonl([good, [1, 2], good]), ("rows.jsonl", "row 2"))
        add(f"{fmt}-jsonl-empty", fmt, "rows.jsonl", "", ("rows.jsonl",))
        add(f"{fmt}-csv-header-only", fmt, "rows.csv", ",".join(good) + "\n", ("rows.csv",))
    # blank lines must not shift row numbers in JSON lines
    good = GOOD_ROW["alpaca"]
    add("jsonl-blank-lines-then-bad", "alpaca", "rows.jsonl", jsonl([good]) + "\n\n" + '{"instruction": "x"}\n',
        ("rows.jsonl", "row 4"))
    add("jsonl-crlf-bad-row3", "alpaca", "rows.jsonl", (json.dumps(good) + "\r\n") * 2 + '{"output": 1}\r\n',
        ("rows.jsonl", "row 3"))
    # CSV faults
    csv_good = csv_text([good] * 2)
    add("csv-unterminated-quote-row3", "alpaca", "rows.csv",
        csv_good + 'say 3,,"number 3\nsay 4,,number 4\nsay 5,,number 5\n', ("rows.csv", "row 3"))
    add("csv-unterminated-quote-last", "alpaca", "rows.csv", csv_good + 'say 3,,"number 3\n', ("rows.csv", "row 3"))
    add("csv-too-many-cells-row2", "alpaca", "rows.csv", csv_text([good]) + "a,b,c,d\n", ("rows.csv", "row 2"))
    add("csv-duplicate-header", "alpaca", "rows.csv", "instruction,output,output\na,b,c\n", ("rows.csv", "output"))
    add("csv-empty", "alpaca", "rows.csv", "", ("rows.csv",))
    add("csv-messages-not-json-row2", "messages", "rows.csv", csv_text([GOOD_ROW["messages"]]) + '"[{oops",\n',
        ("rows.csv", "row 2", "messages"))
    add("csv-label-word-row2", "unpaired", "rows.csv",
        csv_text([{"prompt": "p", "completion": "c", "label": "true"}, {"prompt": "p", "completion": "c",
                                                                        "label": "maybe"}]), ("rows.csv", "row 2"))
    # encodings: the row that is not UTF-8
    for kind in ("jsonl", "csv", "json"):
        body = rows_file(kind, [good] * 5).encode()
        lines = body.split(b"\n")
        first = 1 if kind in ("csv", "json") else 0  # header line / opening bracket
        lines[first + 2] = lines[first + 2].replace(b"say", b"s\xe9y")
        add(f"{kind}-latin1-row3", "alpaca", f"rows.{kind}", b"\n".join(lines), (f"rows.{kind}", "row 3", "UTF-8"))
        add(f"{kind}-utf16", "alpaca", f"rows.{kind}", rows_file(kind, [good] * 2).encode("utf-16"),
            (f"rows.{kind}", "UTF-8"))
    add("jsonl-nul-byte-row2", "alpaca", "rows.jsonl", jsonl([good]).encode() + b'{"instruction": "a\x00"}\n',
        ("rows.jsonl", "row 2"))
    add("jsonl-lone-surrogate-row2", "alpaca", "rows.jsonl",
        jsonl([good]) + '{"instruction": "\\ud800", "output": "x"}\n', ("rows.jsonl", "row 2"))
    # JSON array faults
    add("json-cut-off", "alpaca", "rows.json", json_array([good] * 3)[:-4], ("rows.json",))
    add("json-extra-data", "alpaca", "rows.json", json_array([good] * 2) + "[]\n", ("rows.json",))
    add("json-top-scalar", "alpaca", "rows.json", "42\n", ("rows.json",))
    add("json-top-string", "alpaca", "rows.json", '"rows"\n', ("rows.json",))
    add("json-missing-comma-row2", "alpaca", "rows.json", "[" + json.dumps(good) + "\n" + json.dumps(good) + "]",
        ("rows.json", "row 1"))
    add("json-deep-nesting", "alpaca", "rows.json", "[" + "[" * 100_000 + "]" * 100_000 + "]", ("rows.json",),
        "plan-trl", isolate=True)
    add("jsonl-deep-nesting", "alpaca", "rows.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", ("rows.jsonl", "row 1"),
        "plan-trl", isolate=True)
    # compression
    gz_good = gzip.compress(jsonl([good] * 3).encode())
    add("gz-garbage", "alpaca", "rows.jsonl.gz", b"this is not gzip at all", ("rows.jsonl.gz",))
    add("gz-truncated", "alpaca", "rows.jsonl.gz", gz_good[: len(gz_good) // 2], ("rows.jsonl.gz",))
    add("gz-empty", "alpaca", "rows.jsonl.gz", b"", ("rows.jsonl.gz",))
    add("gz-plain-text", "alpaca", "rows.jsonl.gz", jsonl([good]), ("rows.jsonl.gz",))
    add("json-gz-garbage", "alpaca", "rows.json.gz", b"\x1f\x8b\x08\x00garbage", ("rows.json.gz",))
    add("gz-bad-row2", "alpaca", "rows.jsonl.gz", gzip.compress((jsonl([good]) + "{oops\n").encode()),
        ("rows.jsonl.gz", "row 2"))
    add("parquet-garbage", "alpaca", "rows.parquet", b"PAR1 not really parquet", ("rows.parquet",))
    add("parquet-empty", "alpaca", "rows.parquet", b"", ("rows.parquet",))
    # not a file
    add("path-is-directory", "alpaca", "rows.jsonl", Dir((("inner.jsonl", jsonl([good])),)),
        ("rows.jsonl", "directory"))
    add("path-is-fifo", "alpaca", "rows.jsonl", Fifo(), ("rows.jsonl",), "plan-trl", isolate=True)
    add("path-missing", "alpaca", "rows.jsonl", None, ("rows.jsonl",))
    add("path-dangling-symlink", "alpaca", "rows.jsonl", Link("nothing-here.jsonl"), ("rows.jsonl",))
    add("unknown-extension", "alpaca", "rows.txt", jsonl([good]), ("rows.txt",))
    add("no-extension-plain-file", "alpaca", "rows", "not json at all\n", ("rows",))
    add("extension-but-binary", "alpaca", "rows.jsonl", bytes(range(256)), ("rows.jsonl",))
    add("format-unknown-columns-auto", "auto", "rows.jsonl", jsonl([{"foo": 1, "bar": 2}]), ("rows.jsonl", "row 1"))
    add("columns-unknown-key", "alpaca", "rows.jsonl", jsonl([good]), ("rows.jsonl", "columns"),
        columns={"answer": "output"})
    add("columns-maps-to-missing", "alpaca", "rows.jsonl", jsonl([good, good]), ("rows.jsonl", "row 1", "reply"),
        columns={"output": "reply"})
    # samples: the user's own file and row, not a temporary file
    bad3 = jsonl([good, good, {"instruction": "x"}, good])
    add("samples-bad-row3", "alpaca", "rows.jsonl", bad3, ("rows.jsonl", "row 3"), samples=2)
    add("samples-more-than-rows-bad-row3", "alpaca", "rows.jsonl", bad3, ("rows.jsonl", "row 3"), samples=10)
    add("samples-malformed-row2", "alpaca", "rows.jsonl", jsonl([good]) + "{oops\n", ("rows.jsonl", "row 2"), samples=1)
    add("samples-csv-bad-row2", "alpaca", "rows.csv", csv_text([good]) + "onlyone\n", ("rows.csv", "row 2"), samples=1)
    # eval set faults name the eval file
    spec = data_spec("alpaca", DATA)
    spec["data"]["eval"] = {"path": "eval.jsonl", "format": "alpaca"}
    for cid, content, expect in [("eval-bad-row2", jsonl([good]) + '{"output": "x"}\n', ("eval.jsonl", "row 2")),
                                 ("eval-empty", "", ("eval.jsonl",)),
                                 ("eval-directory", Dir(), ("eval.jsonl", "directory"))]:
        c = rotor.next()
        cases.append(Case(f"data-{cid}-{c}", "datasets", COMMANDS[c],
                          {SPEC: dump(spec), DATA: jsonl(ALPACA_ROWS), "eval.jsonl": content}, expect))
    # many datasets: no "too many open files" traceback
    spec = base_spec()
    spec["data"]["train"] = [{"path": DATA, "format": "alpaca"} for _ in range(300)]
    cases.append(Case("data-300-datasets-nofile-128-translate-trl", "datasets", COMMANDS["translate-trl"],
                      {SPEC: dump(spec), DATA: jsonl(ALPACA_ROWS)}, (), exit_codes=(0, 2), isolate=True, nofile=128,
                      allowed_new=("out",)))
    # the other backends read the same files: same messages
    for backend in ("translate-llamafactory", "translate-swift"):
        add(f"alpaca-bad-row2-{backend}", "alpaca", "rows.jsonl", jsonl([good, {"instruction": "x"}]),
            ("rows.jsonl", "row 2", "output"), backend)
        add(f"csv-unterminated-{backend}", "alpaca", "rows.csv", csv_good + 'a,,"b\nc,,d\n', ("rows.csv", "row 3"),
            backend)
    return cases


# ------------------------------------------------------------------------------------------------
# run: input errors leave no runs/ folder behind

def run_cases() -> list[Case]:
    bad = jsonl(ALPACA_ROWS[:2]) + '{"instruction": "x"}\n'
    cases = []
    for runs_dir, label in [(None, "default"), ("~/uftruns", "tilde"), ("deep/nested/runs", "nested")]:
        spec = base_spec()
        if runs_dir:
            spec["runs_dir"] = runs_dir
        cases.append(Case(f"run-bad-row3-runs-dir-{label}", "run", ("run", SPEC, "--backend", "trl"),
                          {SPEC: dump(spec), DATA: bad}, (DATA, "row 3")))
    cases.append(Case("run-bad-row3-runs-dir-option", "run", ("run", SPEC, "--backend", "trl", "--runs-dir", "myruns"),
                      {SPEC: dump(base_spec()), DATA: bad}, (DATA, "row 3")))
    cases.append(Case("run-unknown-backend", "run", ("run", SPEC, "--backend", "nosuch"), base_files(), ("nosuch",)))
    cases.append(Case("run-missing-model", "run", ("run", SPEC, "--backend", "trl"),
                      base_files(with_value(("model", "path"), "./nomodel")), ("nomodel",)))
    cases.append(Case("run-runs-dir-is-file", "run", ("run", SPEC, "--backend", "trl", "--runs-dir", "afile"),
                      {**base_files(), "afile": "x"}, ("afile",)))
    return cases


# ------------------------------------------------------------------------------------------------
# The CLI's own arguments

def _run_dir(manifest: str | None = None, spec: str | None = None, adapter: bool = False) -> Dir:
    files = []
    if manifest is not None:
        files.append(("manifest.json", manifest))
    if spec is not None:
        files.append(("spec.yaml", spec))
    if adapter:
        files.append(("adapter/adapter_config.json", "{}"))
    return Dir(tuple(files))


LF_DATASET_DIR = Dir((("dataset_info.json", json.dumps({"alpaca_en_demo": {"file_name": "alpaca.json"}})),
                      ("alpaca.json", json.dumps(ALPACA_ROWS))))
GOOD_MANIFEST = json.dumps({"status": "succeeded", "backend": "trl"})
RESOLVED_SPEC = dump({**base_spec(), "data": {"train": [{"path": "@CASE@/" + DATA, "format": "alpaca"}]}})


def cli_cases() -> list[Case]:
    cases: list[Case] = []

    def add(cid: str, argv: tuple[str, ...], expect: tuple[Expect, ...], files: dict[str, Content] | None = None,
            exit_codes: tuple[int, ...] = (2,)) -> None:
        cases.append(Case(f"cli-{cid}", "cli", argv, files if files is not None else base_files(), expect,
                          exit_codes=exit_codes))

    for command in ("plan", "translate"):
        for backend in ("nosuch", "", "TRL", "../trl", "trl "):
            add(f"{command}-backend-{backend.strip('./ ') or 'empty'}{'-space' if backend.endswith(' ') else ''}"
                f"{'-dots' if backend.startswith('.') else ''}",
                (command, SPEC, "--backend", backend, *(("-o", "out") if command == "translate" else ())),
                ("backend",))
    for argv in [("validate",), ("plan",), ("translate",), ("run",), ("import",), ("import", "llamafactory"),
                 ("eval",), ("export",), ("env", "create"), ("env", "path")]:
        add(f"missing-arg-{'-'.join(argv)}", argv, (("Missing argument", "missing"),))
    for argv in [("validate", SPEC), ("plan", SPEC), ("translate", SPEC), ("run", SPEC), ("schema",), ("backends",),
                 ("eval", "x"), ("export", "x"), ("quickstart",), ("import", "swift", "x"), ("env", "list")]:
        add(f"unknown-option-{argv[0]}{'-' + argv[1] if argv[0] == 'env' else ''}", (*argv, "--bogus"), ("--bogus",))
    add("unknown-command", ("frobnicate",), ("frobnicate",))
    add("unknown-env-command", ("env", "frobnicate"), ("frobnicate",))
    add("extra-argument-validate", ("validate", SPEC, SPEC), (SPEC,))
    add("option-missing-value", ("translate", SPEC, "-o"), ("-o",))
    add("env-create-unknown-backend", ("env", "create", "nosuch"), ("nosuch",))
    add("env-path-unknown-backend", ("env", "path", "nosuch"), ("nosuch",))
    add("env-remove-unknown-backend", ("env", "remove", "nosuch"), ("nosuch",))
    add("env-check-unknown-backend", ("env", "check", "nosuch"), ("nosuch",))
    # spec argument that is not a readable file
    add("validate-missing-spec", ("validate", "nothere.yaml"), ("nothere.yaml",))
    add("validate-spec-is-dir", ("validate", "specdir"), ("specdir",), {**base_files(), "specdir": Dir()})
    add("plan-spec-symlink-loop", ("plan", "loop.yaml"), ("loop.yaml",),
        {**base_files(), "loop.yaml": Link("loop.yaml")})
    add("validate-spec-nul-in-path", ("validate", "jo\x00b.yaml"), (("b.yaml", "spec"),))
    add("validate-spec-path-too-long", ("validate", "s" * 5000 + ".yaml"), ("sssss",))
    # schema -o
    add("schema-o-missing-folder", ("schema", "-o", "nofolder/schema.json"), ("nofolder",))
    add("schema-o-is-directory", ("schema", "-o", "adir"), ("adir",), {**base_files(), "adir": Dir()})
    add("schema-o-under-file", ("schema", "-o", "afile/schema.json"), ("afile",), {**base_files(), "afile": "x"})
    # translate -o
    add("translate-o-under-file", ("translate", SPEC, "-o", "afile/out"), ("afile",), {**base_files(), "afile": "x"})
    add("translate-o-nonempty", ("translate", SPEC, "-o", "full"), ("full",),
        {**base_files(), "full": Dir((("keep.txt", "mine"),))})
    add("translate-o-is-file", ("translate", SPEC, "-o", "afile"), ("afile",), {**base_files(), "afile": "x"})
    add("translate-o-cwd", ("translate", SPEC, "-o", "."), (".",))
    add("translate-o-nul", ("translate", SPEC, "-o", "o\x00ut"), ("-o", "out", "o"))
    add("translate-check-unknown-backend", ("translate", SPEC, "--backend", "nosuch", "--check", "-o", "out"),
        ("nosuch",))
    # eval / export on things that are not finished runs
    run_variants: list[tuple[str, Content, tuple[Expect, ...]]] = [
        ("missing-dir", None, ("rundir",)),
        ("empty-dir", Dir(), ("rundir",)),
        ("a-file", "not a run", ("rundir",)),
        ("manifest-corrupt", _run_dir("{not json", RESOLVED_SPEC, True), ("manifest.json",)),
        ("manifest-empty", _run_dir("", RESOLVED_SPEC, True), ("manifest.json",)),
        ("manifest-is-list", _run_dir("[]", RESOLVED_SPEC, True), ("manifest.json",)),
        ("manifest-binary", _run_dir("\udcff\udcfe".encode("utf-8", "surrogateescape").decode("latin-1"),
                                     RESOLVED_SPEC, True), ("manifest.json",)),
        ("manifest-running", _run_dir(json.dumps({"status": "running"}), RESOLVED_SPEC, True), ("running",)),
        ("manifest-no-status", _run_dir("{}", RESOLVED_SPEC, True), ("rundir",)),
        ("spec-corrupt", _run_dir(GOOD_MANIFEST, "name: [unclosed\n", True), ("spec.yaml",)),
        ("spec-empty", _run_dir(GOOD_MANIFEST, "", True), ("spec.yaml",)),
        ("spec-invalid", _run_dir(GOOD_MANIFEST, "name: x\n", True), ("spec.yaml",)),
        ("spec-python-tag", _run_dir(GOOD_MANIFEST, "name: !!python/object/apply:os.getcwd []\n", True),
         ("spec.yaml",)),
        ("no-adapter", _run_dir(GOOD_MANIFEST, RESOLVED_SPEC, False), ("rundir",)),
        ("manifest-is-dir", Dir((("manifest.json/x", "x"), ("spec.yaml", RESOLVED_SPEC))), ("manifest.json",)),
    ]
    for label, content, expect in run_variants:
        files = {**base_files(), "rundir": content}
        add(f"eval-{label}", ("eval", "rundir"), expect, files)
        add(f"export-{label}", ("export", "rundir", "--to", "adapter"), expect, files)
    bad_run = {**base_files(), "rundir": _run_dir(json.dumps({"status": "failed"}), RESOLVED_SPEC, True)}
    add("export-to-unknown", ("export", "rundir", "--to", "onnx"), ("onnx",), bad_run)
    add("export-gguf-type-unknown", ("export", "rundir", "--to", "gguf", "--gguf-type", "q99"), (("q99", "failed"),),
        bad_run)
    add("export-o-nonempty", ("export", "rundir", "--to", "adapter", "-o", "full"), (("full", "failed"),),
        {**bad_run, "full": Dir((("keep.txt", "mine"),))})
    # import
    lf_good = ("model_name_or_path: Qwen/Qwen2.5-0.5B\nstage: sft\nfinetuning_type: lora\ndataset: alpaca_en_demo\n"
               "template: qwen\n")
    import_inputs: list[tuple[str, str, Content, tuple[Expect, ...]]] = [
        ("missing", "conf.yaml", None, ("conf.yaml",)),
        ("binary", "conf.yaml", bytes(range(256)) * 8, ("conf.yaml",)),
        ("not-utf8", "conf.yaml", b"model_name_or_path: caf\xe9\n", ("conf.yaml", "UTF-8")),
        ("unclosed-quote", "conf.yaml", 'model_name_or_path: "Qwen/Qwen2.5\nstage: sft\n', ("conf.yaml",)),
        ("python-tag", "conf.yaml", "model_name_or_path: !!python/object/apply:os.system ['true']\n", ("conf.yaml",)),
        ("list-at-top", "conf.yaml", "- a\n- b\n", ("conf.yaml",)),
        ("empty", "conf.yaml", "", ("conf.yaml",)),
        ("directory", "conf.yaml", Dir(), ("conf.yaml",)),
        ("dup-keys", "conf.yaml", lf_good + "stage: dpo\n", ("conf.yaml", "stage")),
        ("bad-dataset-info", "conf.yaml", lf_good + "dataset_dir: dd\n", ("dataset_info.json",)),
    ]
    for label, name, content, expect in import_inputs:
        files = {**base_files(), name: content, "data": LF_DATASET_DIR}
        if label == "bad-dataset-info":
            files["dd"] = Dir((("dataset_info.json", "{oops"),))
        add(f"import-llamafactory-{label}", ("import", "llamafactory", name, "-o", "imported.yaml"), expect, files)
    swift_inputs: list[tuple[str, str, Content, tuple[Expect, ...]]] = [
        ("missing-sh", "train.sh", None, ("train.sh",)),
        ("binary-sh", "train.sh", bytes(range(256)) * 8, ("train.sh",)),
        ("unbalanced-quote-sh", "train.sh", "swift sft --model 'Qwen/Qwen2.5-0.5B --dataset x\n", ("train.sh",)),
        ("no-swift-command", "train.sh", "echo hello\n", ("train.sh",)),
        ("args-json-malformed", "args.json", '{"model": "x",', ("args.json",)),
        ("args-json-list", "args.json", "[1, 2]", ("args.json",)),
        ("args-json-not-utf8", "args.json", b'{"model": "caf\xe9"}', ("args.json",)),
        ("config-yaml-python-tag", "swift.yaml", "model: !!python/name:os.system\n", ("swift.yaml",)),
    ]
    for label, name, content, expect in swift_inputs:
        add(f"import-swift-{label}", ("import", "swift", name, "-o", "imported.yaml"), expect,
            {**base_files(), name: content})
    trl_inputs: list[tuple[str, str, Content, tuple[Expect, ...]]] = [
        ("missing-sh", "train.sh", None, ("train.sh",)),
        ("binary-sh", "train.sh", bytes(range(256)) * 8, ("train.sh",)),
        ("unbalanced-quote-sh", "train.sh", "trl sft --model_name_or_path 'Qwen/Qwen2.5-0.5B --dataset_name x\n",
         ("train.sh",)),
        ("no-trl-command", "train.sh", "echo hello\n", ("train.sh",)),
        ("unset-variable", "train.sh", "trl sft --model_name_or_path $MODEL --dataset_name d\n", ("$MODEL",)),
        ("command-substitution", "train.sh", "trl sft --model_name_or_path $(ls) --dataset_name d\n", ("$(ls)",)),
        ("config-missing", "train.sh", "trl dpo --config nosuch.yaml\n", ("nosuch.yaml",)),
        ("unknown-script", "train.sh", "python my_train.py --model_name_or_path m\n", ("my_train.py",)),
        ("no-method-for-ppo", "train.sh", "accelerate launch examples/scripts/ppo/ppo.py --model_name_or_path m\n",
         ("PPO",)),
        ("yaml-python-tag", "conf.yaml", "model_name_or_path: !!python/name:os.system\n", ("conf.yaml",)),
        ("yaml-list", "conf.yaml", "- a\n- b\n", ("conf.yaml",)),
        ("yaml-no-dataset", "conf.yaml", "model_name_or_path: m\n", ("dataset_name",)),
        ("bad-optim", "conf.yaml", "model_name_or_path: m\ndataset_name: d/x\noptim: lion\n", ("optim", "lion")),
    ]
    for label, name, content, expect in trl_inputs:
        add(f"import-trl-{label}", ("import", "trl", name, "-o", "imported.yaml"), expect,
            {**base_files(), name: content})
    add("import-trl-bad-method", ("import", "trl", "conf.yaml", "--method", "ppo", "-o", "imported.yaml"),
        ("--method",), {**base_files(), "conf.yaml": "model_name_or_path: m\ndataset_name: d/x\n"})
    lf_files = {**base_files(), "conf.yaml": lf_good, "data": LF_DATASET_DIR}
    add("import-unknown-backend", ("import", "nosuch", "conf.yaml"), ("nosuch",), lf_files)
    add("import-output-exists", ("import", "llamafactory", "conf.yaml", "-o", SPEC), (SPEC,), lf_files)
    add("import-output-missing-folder", ("import", "llamafactory", "conf.yaml", "-o", "nofolder/spec.yaml"),
        ("nofolder",), lf_files)
    add("import-output-under-file", ("import", "llamafactory", "conf.yaml", "-o", "afile/spec.yaml"),
        ("afile",), {**lf_files, "afile": "x"})
    # quickstart refuses before writing its folder
    add("quickstart-steps-negative", ("quickstart", "--steps", "-1", "--folder", "qs"), ("steps",))
    add("quickstart-steps-very-negative", ("quickstart", "--steps", "-100000", "--folder", "qs"), ("steps",))
    add("quickstart-steps-word", ("quickstart", "--steps", "many", "--folder", "qs"), ("steps",))
    add("quickstart-steps-float", ("quickstart", "--steps", "1.5", "--folder", "qs"), ("steps",))
    add("quickstart-negative-folder-is-file", ("quickstart", "--steps", "-1", "--folder", "afile"), ("steps",),
        {**base_files(), "afile": "x"})
    return cases


# ------------------------------------------------------------------------------------------------
# Controls: valid inputs that must be accepted (a fix must not refuse them)

def control_cases() -> list[Case]:
    cases = [Case(f"control-base-{c}", "controls", COMMANDS[c], base_files(), (), exit_codes=(0,),
                  allowed_new=("out",)) for c in COMMANDS]
    blob = {"hfcache": Dir((("blobs/3f2a9c", jsonl(ALPACA_ROWS)),)), "data.jsonl": Link("hfcache/blobs/3f2a9c")}
    spec = base_spec()
    spec["data"]["train"][0]["path"] = "data.jsonl"
    cases.append(Case("control-symlink-to-extensionless-blob", "controls", COMMANDS["translate-trl"],
                      {**base_files(spec), **blob}, (), exit_codes=(0,), allowed_new=("out",)))
    spec = data_spec("messages", "msgs.csv", samples=2)
    cases.append(Case("control-samples-on-csv-messages", "controls", COMMANDS["translate-trl"],
                      {SPEC: dump(spec), DATA: jsonl(ALPACA_ROWS),
                       "msgs.csv": csv_text([GOOD_ROW["messages"]] * 3)}, (), exit_codes=(0,), allowed_new=("out",)))
    lf = ("model_name_or_path: Qwen/Qwen2.5-0.5B\nstage: sft\nfinetuning_type: lora\ndataset: alpaca_en_demo\n"
          "template: qwen\n")
    cases.append(Case("control-import-llamafactory", "controls",
                      ("import", "llamafactory", "conf.yaml", "-o", "new.yaml"),
                      {**base_files(), "conf.yaml": lf, "data": LF_DATASET_DIR}, (), exit_codes=(0,),
                      allowed_new=("new.yaml",)))
    qlora = with_value(("adapter",), {"type": "qlora", "bits": 4})  # needs a GPU to run, not to translate
    cases += [Case(f"control-qlora-{c}-without-a-gpu", "controls", COMMANDS[c], base_files(qlora), (),
                   exit_codes=(0,), allowed_new=("out",)) for c in ("plan-trl", "translate-trl")]
    cases.append(Case("control-quoted-yaml-surprises", "controls", COMMANDS["validate"],
                      {**base_files(), SPEC: spec_text(replace={1: 'name: "007"'}, insert={4: ['  revision: "1.10"']})},
                      (), exit_codes=(0,)))
    return cases


def all_cases() -> list[Case]:
    cases = (spec_field_cases() + unknown_key_cases() + missing_key_cases() + semantic_cases()
             + filesystem_spec_cases() + yaml_cases() + dataset_cases() + run_cases() + cli_cases() + control_cases())
    seen: dict[str, int] = {}
    unique = []
    for case in cases:  # ids must be unique for pytest
        count = seen.get(case.id, 0)
        seen[case.id] = count + 1
        unique.append(case if not count else Case(**{**case.__dict__, "id": f"{case.id}-{count + 1}"}))
    return unique


CASES = all_cases()
