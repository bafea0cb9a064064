"""Write arguments.json: every top-level key of axolotl's config (AxolotlInputConfig and its mixins, with their
aliases), each dataset model's keys, and each integration plugin's own keys, with their declared defaults and
annotations.

axolotl is not installed anywhere uft runs (it needs torch at import), so the pydantic models are read from
axolotl's source with `ast`: a field is a class-level annotated assignment, its default the literal value or
`Field(default=...)`; anything that is no literal is written as its source text. uft's importer uses the table to
tell a typo from a real axolotl key and a default from a choice. Refresh against a checkout (or a bare git dir):
    python backends/axolotl/dump_arguments.py /path/to/axolotl > backends/axolotl/arguments.json
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCHEMAS = "src/axolotl/utils/schemas"
INTEGRATIONS = "src/axolotl/integrations"
TOP = "AxolotlInputConfig"
DATASETS = ("SFTDataset", "PretrainingDataset", "DPODataset", "KTODataset", "StepwiseSupervisedDataset",
            "SyntheticDataset")


class Source:
    """An axolotl checkout, or a bare git directory read at HEAD (as the `fetch` mirrors are)."""

    def __init__(self, root: Path):
        self.root = root
        self.bare = not (root / "src").is_dir() and (root / "HEAD").is_file()

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", f"--git-dir={self.root}", *args], check=True, capture_output=True,
                              text=True).stdout

    def files(self, folder: str) -> list[str]:
        if self.bare:
            return [p for p in self._git("ls-tree", "-r", "--name-only", "HEAD", folder).split() if p.endswith(".py")]
        return sorted(str(p.relative_to(self.root)) for p in (self.root / folder).rglob("*.py"))

    def read(self, path: str) -> str:
        return self._git("show", f"HEAD:{path}") if self.bare else (self.root / path).read_text()

    def commit(self) -> str | None:
        try:
            return self._git("rev-parse", "HEAD").strip() if self.bare else subprocess.run(
                ["git", "-C", str(self.root), "rev-parse", "HEAD"], check=True, capture_output=True,
                text=True).stdout.strip()
        except (subprocess.CalledProcessError, FileNotFoundError):
            return None


def _literal(node: ast.AST | None) -> Any:
    """A default as JSON: literals as themselves, anything else as its source text."""
    if node is None:
        return None
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def _field(value: ast.AST | None) -> tuple[Any, str | None]:
    """(default, alias) of a field's right-hand side: a plain value or a `Field(...)` call."""
    if isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", "")) == "Field":
        kwargs = {k.arg: k.value for k in value.keywords}
        alias = _literal(kwargs["alias"]) if "alias" in kwargs else None
        if "default" in kwargs:
            return _literal(kwargs["default"]), alias
        if value.args:
            return _literal(value.args[0]), alias
        if "default_factory" in kwargs:
            factory = kwargs["default_factory"]
            if isinstance(factory, ast.Lambda):
                return _literal(factory.body), alias
            return {"list": [], "dict": {}}.get(ast.unparse(factory), ast.unparse(factory)), alias
        return None, alias  # Field() without a default: required
    return _literal(value), None


def read_classes(source: Source, folders: list[str]) -> dict[str, dict[str, Any]]:
    """Every class of the given folders: its bases and its own fields {name: (default, annotation, alias)}."""
    classes: dict[str, dict[str, Any]] = {}
    for folder in folders:
        for path in source.files(folder):
            tree = ast.parse(source.read(path))
            for node in tree.body:
                if not isinstance(node, ast.ClassDef):
                    continue
                fields = {}
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        name = item.target.id
                        if name.startswith("_") or name == "model_config":
                            continue
                        default, alias = _field(item.value)
                        fields[name] = (default, ast.unparse(item.annotation), alias)
                classes.setdefault(node.name, {"bases": [ast.unparse(b) for b in node.bases], "fields": fields,
                                               "path": path})
    return classes


def collect(classes: dict[str, dict[str, Any]], name: str) -> dict[str, tuple[Any, str, str | None]]:
    """The fields of a class and of all its bases (a subclass's own definition wins, as in Python)."""
    found: dict[str, tuple[Any, str, str | None]] = {}
    cls = classes.get(name)
    if cls is None:
        return found
    for base in reversed(cls["bases"]):
        found.update(collect(classes, base))
    found.update(cls["fields"])
    return found


def table(fields: dict[str, tuple[Any, str, str | None]]) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """(defaults, annotations, aliases) for a set of fields; an alias is a key of its own in a config."""
    defaults, types, aliases = {}, {}, {}
    for name, (default, annotation, alias) in sorted(fields.items()):
        defaults[name], types[name] = default, annotation
        if alias:
            aliases[alias] = name
            defaults[alias], types[alias] = default, annotation
    return dict(sorted(defaults.items())), dict(sorted(types.items())), aliases


def plugins(source: Source, classes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each integration's own config keys (its args.py models), merged into the config when it is in `plugins:`."""
    found: dict[str, dict[str, Any]] = {}
    for name, cls in classes.items():
        path = cls["path"]
        if not path.startswith(INTEGRATIONS) or not path.endswith("args.py") or not cls["fields"]:
            continue
        integration = path.split("/")[-2]
        defaults, _, _ = table(collect(classes, name))
        found.setdefault(integration, {}).update(defaults)
    return dict(sorted(found.items()))


def main(root: str) -> None:
    source = Source(Path(root))
    classes = read_classes(source, [SCHEMAS, INTEGRATIONS])
    defaults, types, aliases = table(collect(classes, TOP))
    datasets = {name: table(collect(classes, name))[0] for name in DATASETS}
    version = source.read("VERSION").strip() if "VERSION" in (source._git("ls-tree", "--name-only", "HEAD").split()
                                                              if source.bare else
                                                              [p.name for p in source.root.iterdir()]) else None
    json.dump({"axolotl_version": version, "axolotl_commit": source.commit(), "config": defaults, "types": types,
               "aliases": aliases, "datasets": datasets, "plugins": plugins(source, classes)},
              sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
