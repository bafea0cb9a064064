"""Each field of a framework's argument dataclass with its declared default and the kind of value it takes.

The backends' dump_arguments.py scripts run inside a framework's environment, where uft is not installed, so
this file imports only the standard library and they load it by its path (their `_shared()`), which is the
same beside a checkout's backends/ and an installed unified_ft/backends/.
"""

import dataclasses
import json
import types
import typing


def defaults(cls) -> dict:
    """{field name: declared default} (a factory's value; None without a default; repr() of what JSON cannot
    hold), sorted by name."""
    found = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            value = None
        try:
            json.dumps(value)
        except TypeError:
            value = repr(value)
        found[field.name] = value
    return dict(sorted(found.items()))


def kinds(cls) -> dict:
    """{field name: bool | int | float | str | list | dict | other}: how a command line spells the value (a bool
    is a bare flag, a list takes several words), read from the field's annotation."""
    hints = typing.get_type_hints(cls)
    return {field.name: _kind(hints.get(field.name)) for field in sorted(dataclasses.fields(cls), key=lambda f: f.name)}


def _kind(hint) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        found = {_kind(a) for a in args}
        return "list" if "list" in found else found.pop() if len(found) == 1 else "other"
    origin = typing.get_origin(hint) or hint
    if origin is typing.Literal:
        return _kind(type(args[0])) if args else "other"
    for kind in (bool, int, float, str, list, dict):
        if origin is kind or (isinstance(origin, type) and issubclass(origin, kind) and kind is not int):
            return kind.__name__
    return "other"

