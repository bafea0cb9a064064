"""Reading the text files people hand to uft (specs, native configs, run records) without surprises.

Every way a path or its bytes can be wrong (NUL in the name, too long, a folder, a pipe, a symlink loop,
not UTF-8) becomes one `SpecError` naming the path as the user wrote it, and YAML is read by a loader
that refuses what costs nothing to write but hurts to read: anchors and aliases (an alias bomb expands
to gigabytes), unbounded nesting, and duplicate keys (where YAML silently keeps the last one). Unquoted
numbers such as `1e-4` are read as numbers, as YAML 1.2 and every framework's config parser do.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, ProblemsError, RunDirError, SpecError

#: Larger than any spec or config a person writes; stops a wrong path (a dataset, a model) being parsed.
MAX_FILE_BYTES = 8 * 1024 * 1024
#: Deeper than any real config; bounds the recursion of composing and validating.
MAX_DEPTH = 100
STR_TAG = "tag:yaml.org,2002:str"
#: YAML 1.2 floats that YAML 1.1 (PyYAML) reads as text: no dot, or an exponent without a sign (1e-4, 1e5).
_FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_SHOWN_PATH_CHARS = 160


def shown(path: str | os.PathLike[str]) -> str:
    """A path as the user wrote it, NUL made visible, an absurdly long one shortened in the middle (so the
    file's own name still shows)."""
    text = os.fspath(path).replace("\0", "\\0")
    if len(text) <= _SHOWN_PATH_CHARS:
        return text
    return f"{text[:_SHOWN_PATH_CHARS - 60]}...({len(text)} characters)...{text[-60:]}"


def path_problem(path: str | Path) -> str | None:
    """What is wrong with a path's name itself (before touching the disk), or None."""
    text = str(path)
    if "\0" in text:
        return "the path contains a NUL character"
    if not text.strip():
        return "the path is empty"
    return None


def os_error_text(exc: OSError) -> str:
    """An OSError as a short reason a person understands."""
    reasons = {errno.ENAMETOOLONG: "the path (or one of its names) is longer than the system allows",
               errno.ELOOP: "the path goes through a symlink loop", errno.ENOENT: "no such file",
               errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EACCES: "permission denied",
               errno.EISDIR: "it is a directory", errno.EROFS: "the file system is read-only",
               errno.ENOSPC: "the disk is full"}
    return reasons.get(exc.errno, exc.strerror or str(exc))


def read_user_file(path: str | Path, what: str = "spec file", hint: str = "check the path",
                   error: type[ProblemsError] = SpecError) -> str:
    """The text of a file the user named: a regular file of UTF-8 (a BOM is fine), or `error` naming the path."""
    where = shown(path)

    def fail(message: str, fix: str = hint, missing: bool = False) -> ProblemsError:
        title = f"The {what} {where} was not found" if missing else f"The {what} {where} cannot be read"
        return error(title, [Problem(where, message, fix)])

    if problem := path_problem(path):
        raise fail(problem)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise fail(os_error_text(exc), missing=exc.errno == errno.ENOENT) from None
    if stat.S_ISDIR(info.st_mode):
        raise fail("it is a directory, not a file", f"give the {what} inside it", missing=True)
    if not stat.S_ISREG(info.st_mode):
        raise fail("it is not a regular file (a pipe, socket or device)", f"give the {what} itself")
    if info.st_size > MAX_FILE_BYTES:
        raise fail(f"it is {info.st_size} bytes; a {what} is text of at most {MAX_FILE_BYTES} bytes",
                   f"is this really the {what}?")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise fail(os_error_text(exc)) from None
    return decode_utf8(data, where, what, error)


def decode_utf8(data: bytes, source: str, what: str = "file", error: type[ProblemsError] = SpecError) -> str:
    """UTF-8 bytes as text (a leading BOM dropped); else `error` naming the line, column and byte."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        looks = (" (it starts with a UTF-16 byte order mark)" if data.startswith((codecs.BOM_UTF16_LE,
                                                                                 codecs.BOM_UTF16_BE))
                 else " (it looks like a binary file)" if b"\0" in data[:1024] else "")
        raise error(f"The {what} {source} is not UTF-8 text", [Problem(
            f"{source}:{line}", f"byte 0x{data[exc.start]:02x} at column {column} is not valid UTF-8{looks}",
            "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 old > new`)")]) from None


def output_file_problem(path: str | Path, *, may_exist: bool) -> str | None:
    """Why uft cannot write a file at `path` (checked before any work), or None."""
    if problem := path_problem(path):
        return problem
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            return os_error_text(exc)
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode):
        return "it is a directory; give a file name"
    if info is not None and not may_exist:
        return "it already exists; choose a new file"
    folder = os.path.dirname(os.path.abspath(path))
    try:
        is_folder = stat.S_ISDIR(os.stat(folder).st_mode)
    except OSError as exc:
        missing = exc.errno == errno.ENOENT
        return f"its folder {shown(folder)} does not exist" if missing else f"{shown(folder)}: {os_error_text(exc)}"
    return None if is_folder else f"{shown(folder)} is a file, not a folder"


def write_text_file(path: str | Path, text: str, *, may_exist: bool, what: str = "file") -> None:
    """Write a file the user asked for; any problem is a RunDirError naming it, and no partial file stays."""
    problem = output_file_problem(path, may_exist=may_exist)
    if problem:
        raise RunDirError(f"cannot write the {what} {shown(path)}: {problem}\n"
                          "    fix: choose another path (create its folder first); nothing was written")
    try:
        with open(path, "w" if may_exist else "x", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise RunDirError(f"cannot write the {what} {shown(path)}: {os_error_text(exc)}\n"
                          "    fix: choose another path; nothing was written") from None


def read_json_file(path: str | Path, what: str, hint: str = "check the path",
                   error: type[ProblemsError] = SpecError, broken_hint: str = "fix the JSON at that line") -> Any:
    """A JSON file the user named, parsed; a syntax error names its line and column."""
    text = read_user_file(path, what, hint, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"The {what} {shown(path)} is not valid JSON", [Problem(
            f"{shown(path)}:{exc.lineno}", f"{exc.msg} (column {exc.colno})", broken_hint)]) from None


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that uft will not read; carries its own fix."""

    def __init__(self, problem: str, mark: Any, hint: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint


class SafeYamlLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader without anchors, aliases, deep nesting or duplicate keys; `1e-4` is a number."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused("YAML anchors and aliases (&name, *name) are not accepted", event.start_mark,
                           "write the repeated values out in full")
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark,
                           "no real config is this deep; flatten it")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            self._refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)

    def _refuse_duplicate_keys(self, node: yaml.MappingNode) -> None:
        first: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:  # unhashable: SafeConstructor says so itself
                continue
            if earlier is not key_node:
                raise _Refused(f"key {key_node.value!r} appears twice, on lines {earlier.start_mark.line + 1} "
                               f"and {key_node.start_mark.line + 1} (YAML would silently keep only the last)",
                               key_node.start_mark, "keep one: merge the two into a single entry")


def _checked_constructor(tag: str, what: str) -> None:
    """A scalar YAML types but Python cannot build (a 5000-digit integer, a 13th month) names its line."""
    build = yaml.SafeLoader.yaml_constructors[tag]

    def construct(loader: SafeYamlLoader, node: Any) -> Any:
        try:
            return build(loader, node)
        except (ValueError, OverflowError) as exc:
            why = f"{len(node.value)} characters long" if what == "integer" else str(exc)
            shown_value = node.value if len(node.value) <= 40 else node.value[:40] + "..."
            raise _Refused(f"{shown_value!r} is not a valid {what} ({why})", node.start_mark,
                           f"fix the {what}, or quote it if it is text") from None

    SafeYamlLoader.add_constructor(tag, construct)


_checked_constructor("tag:yaml.org,2002:int", "integer")
_checked_constructor("tag:yaml.org,2002:timestamp", "date")
_checked_constructor("tag:yaml.org,2002:float", "number")


class SafeYamlDumper(yaml.SafeDumper):
    """SafeDumper that quotes text SafeYamlLoader would read as a number (`"1e-4"`), so text stays text."""


for _cls in (SafeYamlLoader, SafeYamlDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_WITHOUT_DOT, list("-+0123456789"))


def dump_yaml(data: Any) -> str:
    """YAML that SafeYamlLoader reads back to the same values."""
    return yaml.dump(data, Dumper=SafeYamlDumper, sort_keys=False, allow_unicode=True)


@dataclass
class YamlDocument:
    """A YAML document's data, with each key path's line and the plain scalars YAML typed as non-text."""

    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)
    #: key path -> (the text as written, the YAML type it was read as: bool, int, float, timestamp, null)
    typed: dict[tuple, tuple[str, str]] = field(default_factory=dict)


def load_yaml(text: str, source: str, what: str = "spec file") -> YamlDocument:
    """Parse one YAML document with SafeYamlLoader; any problem is a SpecError with the line it is on."""
    loader = None
    try:
        loader = SafeYamlLoader(text)  # its reader checks every character first
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise SpecError(f"The {what} {source} is not valid YAML", [yaml_problem(exc, source, text)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    document = YamlDocument(data)
    _index(node, (), document)
    return document


def yaml_problem(exc: yaml.YAMLError, source: str, text: str) -> Problem:
    """A YAML error at the line a person should look at: where a quote or bracket opened, if never closed."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return Problem(f"{source}:{line}", f"character #x{code:04x} is not allowed in YAML text",
                       "remove it (is this a binary file?)")
    hint = getattr(exc, "hint", "") or "fix the YAML syntax at that line"
    problem_mark, context_mark = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    problem, context = str(getattr(exc, "problem", "") or exc), str(getattr(exc, "context", "") or "")
    if "constructor for the tag" in problem:
        tag = problem.split("tag", 2)[-1].strip(" '")
        problem = f"the tag {tag} is not plain data"
        hint = "remove the !!tag: uft reads plain YAML only (tags that build Python objects are refused)"
    opener = next((w for w in ("quoted scalar", "flow sequence", "flow mapping") if w in context), None)
    if not opener and ("stream end" in problem or "end of stream" in problem):
        opener, context_mark = _unclosed_flow(text) or (None, context_mark)
    if opener and context_mark and "escape" not in problem:
        what = {"quoted scalar": "quote", "flow sequence": "bracket [", "flow mapping": "brace {"}[opener]
        ends = f" on line {problem_mark.line + 1}" if problem_mark else ""
        return Problem(f"{source}:{context_mark.line + 1}", f"the {what} opened here (column "
                       f"{context_mark.column + 1}) is not closed: YAML {problem}{ends}",
                       f"close the {what.split()[0]}, or check the lines after it")
    mark = problem_mark or context_mark
    if mark is None:
        return Problem(source, problem, hint)
    column = "" if isinstance(exc, _Refused) else f" (column {mark.column + 1})"
    return Problem(f"{source}:{mark.line + 1}", problem + column, hint)


def _unclosed_flow(text: str) -> tuple[str, Any] | None:
    """The innermost `[` or `{` still open when the text ends, and where it opened (for "never closed")."""
    openers: list[tuple[str, Any]] = []
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.FlowSequenceStartToken):
                openers.append(("flow sequence", token.start_mark))
            elif isinstance(token, yaml.FlowMappingStartToken):
                openers.append(("flow mapping", token.start_mark))
            elif isinstance(token, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)) and openers:
                openers.pop()
    except yaml.YAMLError:
        pass
    return openers[-1] if openers else None


def _index(node: Any, prefix: tuple, document: YamlDocument) -> None:
    """Record each key path's 1-based line and every plain scalar that YAML did not read as text."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, key_node.value)
            document.lines[path] = key_node.start_mark.line + 1
            _index(value_node, path, document)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            document.lines[(*prefix, position)] = item.start_mark.line + 1
            _index(item, (*prefix, position), document)
    elif isinstance(node, yaml.ScalarNode) and node.style is None and node.tag != STR_TAG:
        document.typed[prefix] = (node.value, node.tag.rsplit(":", 1)[-1])
