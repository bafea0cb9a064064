"""Reading a training command out of a shell script, as the shell would, without running anything.

Importers of tools launched from the command line (ms-swift's `swift sft`, trl's `trl sft` / `accelerate launch
script.py`) share it: logical lines (backslash continuations joined), `NAME=value` prefixes, the variables the
script sets itself put in (`$VAR`, `${VAR}`), integer `$(expr A / B)` worked out, and `--key value` words read
into arguments. Anything the shell would compute in another way is a clear error naming it, never a guess.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import Problem, SpecError

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*$", re.MULTILINE)
_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_EXPR = re.compile(r"\$\(\s*expr\s+(\d+)\s*([-+*/])\s*(\d+)\s*\)")
_ENV_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
#: Words that end one command on a line (what follows is another command).
COMMAND_ENDS = ("&&", ";", "|", "||", "&")


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line number, text) of each command, with backslash continuations joined."""
    joined: list[tuple[int, str]] = []
    start, parts = 1, []
    for number, physical in enumerate(text.splitlines(), 1):
        if not parts:
            start = number
        if physical.endswith("\\"):
            parts.append(physical[:-1] + " ")
            continue
        joined.append((start, "".join(parts) + physical))
        parts = []
    if parts:
        joined.append((start, "".join(parts)))
    return joined


def find_command(text: str, pattern: str) -> tuple[int, str] | None:
    """The first logical line whose code (before a `#` comment) matches the regex `pattern`."""
    return next(((number, line) for number, line in logical_lines(text) if re.search(pattern, line.split("#")[0])),
                None)


def substitute(path: Path, line: str, script: str, tool: str) -> str:
    """Shell variables the script sets itself (`nproc_per_node=2`), put in, and integer `$(expr A / B)` (swift's
    examples compute accumulation so) worked out as the shell would; any other computed value is an error."""
    variables = {name: value.strip("'\"") for name, value in _ASSIGNMENT.findall(script)}

    def value(match: re.Match) -> str:
        if match.group(1) not in variables:
            raise SpecError(f"The {tool} command uses a shell variable it does not set", [Problem(
                str(path), f"${match.group(1)} is not set in the script", "replace it with its value")])
        return variables[match.group(1)]

    line = _REFERENCE.sub(lambda m: m.group(0) if m.group(0).startswith("$(") else value(m), line)
    line = _EXPR.sub(lambda m: str(_integer_expr(int(m.group(1)), m.group(2), int(m.group(3)), path, tool)), line)
    computed = re.search(r"\$\([^)]*\)|`[^`]*`", line)
    if computed:
        raise SpecError(f"The {tool} command computes a value in the shell", [Problem(
            str(path), f"{computed.group(0)!r} is a command substitution uft cannot evaluate",
            "replace it with its value and import again")])
    return line


def _integer_expr(left: int, op: str, right: int, path: Path, tool: str) -> int:
    """`expr`'s integer arithmetic (division truncates)."""
    if op == "/" and right == 0:
        raise SpecError(f"The {tool} command divides by zero", [Problem(str(path), "$(expr ... / 0)",
                                                                      "replace it with its value")])
    return {"+": left + right, "-": left - right, "*": left * right, "/": left // right if right else 0}[op]


def split_words(path: Path, number: int, line: str, script: str, tool: str) -> list[str]:
    """The words of one logical line as the shell splits them (after `substitute`); `until_end` cuts a command
    out of them."""
    try:
        words = shlex.split(substitute(path, line, script, tool), comments=True)
    except ValueError as exc:  # shlex: "No closing quotation", "No escaped character"
        raise SpecError(f"The {tool} command cannot be parsed", [Problem(
            f"{path}:{number}", f"the shell quoting of the command starting here is broken ({exc})",
            "close the quote (or escape a literal quote with \\)")]) from None
    return words


def until_end(words: list[str]) -> list[str]:
    """The words up to the end of the command they start (`&&`, `;`, `|`: another command follows)."""
    end = next((i for i, w in enumerate(words) if w in COMMAND_ENDS), len(words))
    return words[:end]


def env_prefix(words: list[str], start: int) -> dict[str, str]:
    """The `NAME=value` words just before words[start] (the environment the command runs with)."""
    env = {}
    for word in reversed(words[:start]):
        if not _ENV_WORD.fullmatch(word):
            break
        key, _, value = word.partition("=")
        env[key] = value
    return env


def option_words(words: list[str], takes_value: Callable[[str], bool] | None = None
                 ) -> tuple[dict[str, list[str]], list[str]]:
    """`--key value...`, `--key=value` and bare `--flag` words as {key: [words]} (dashes in keys as `_`), and the
    words before the first option (positional arguments). With `takes_value`, a key it says takes no value (a
    store_true flag) never swallows the next word."""
    args: dict[str, list[str]] = {}
    positional: list[str] = []
    key = None
    for word in words:
        if word.startswith("--") and len(word) > 2:
            key, eq, inline = word[2:].partition("=")
            key = key.replace("-", "_")
            args[key] = [inline] if eq else []
            if eq or (takes_value is not None and not takes_value(key)):
                key = None
        elif key is not None:
            args[key].append(word)
        else:
            positional.append(word)
    return args, positional


def scalar(word: str) -> Any:
    """A command-line word as the value it spells: true/false, an int, a float, a JSON object or list, else text."""
    if word.lower() in ("true", "false"):
        return word.lower() == "true"
    for kind in (int, float):
        try:
            return kind(word)
        except ValueError:
            pass
    if word.startswith(("{", "[")):
        try:
            return json.loads(word)
        except json.JSONDecodeError:
            pass
    return word
