"""unified_ft: one portable fine-tuning job spec, run natively on trl, unsloth, LLaMA-Factory, ms-swift
or ColossalAI, judged by one shared evaluation.

    from unified_ft import JobSpec, load_spec, run
    result = run("spec.yaml", backend="trl")

Importing this package is cheap: names are loaded on first use, and no framework is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "JobSpec": "unified_ft.spec",
    "load_spec": "unified_ft.specfile",
    "parse_spec": "unified_ft.specfile",
    "run": "unified_ft.api",
    "plan": "unified_ft.api",
    "translate": "unified_ft.api",
    "validate": "unified_ft.api",
    "bakeoff": "unified_ft.api",
    "RunResult": "unified_ft.launch",
    "UftError": "unified_ft.errors",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from .api import bakeoff, plan, run, translate, validate  # noqa: F401
    from .errors import UftError  # noqa: F401
    from .launch import RunResult  # noqa: F401
    from .spec import JobSpec  # noqa: F401
    from .specfile import load_spec, parse_spec  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'unified_ft' has no attribute {name!r}")
