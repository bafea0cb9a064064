"""Migration bookkeeping every importer shares: the key ledger, its table, and telling which tool a config is for.

An importer reads a native config through a `KeyLedger`: each native key is *mapped* to a spec key, *kept*
verbatim in `backend_options.<tool>`, or *ignored* with the reason it does not matter under uft. Keys the
importer never touched are kept by construction (so nothing is dropped), and a kept key the tool itself does
not know is *unknown*, with a did-you-mean. `finish()` checks that every key is accounted for exactly once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import Problem, SpecError

#: The reasons importers give most often for ignoring a key, written once.
BOOKKEEPING = "run bookkeeping uft manages itself (run directory, logs, caches)"
WORKERS = "data loading workers and caches: speed only, the rows and their order are the same"
RESUME = "resuming is `uft run --resume` in uft; the imported spec starts a fresh run"
LAUNCH = "how the job is launched (GPUs, processes, timeouts); uft's launcher decides it on the machine that runs it"


@dataclass
class LedgerRow:
    """One native key and what became of it."""

    key: str
    status: str  # mapped | default | kept | ignored | unknown
    detail: str  # the spec key, the backend_options path, or the reason


@dataclass
class ImportResult:
    """What every importer returns: the spec (a dict, validated by the caller) and its key ledger."""

    spec: dict[str, Any] = field(default_factory=dict)
    mapped: list[tuple[str, str]] = field(default_factory=list)  # (native key, spec key), keys the config has
    defaults: list[tuple[str, str]] = field(default_factory=list)  # (native key, spec key): tool defaults written out
    kept: dict[str, Any] = field(default_factory=dict)  # native keys kept verbatim in backend_options.<tool>
    ignored: dict[str, str] = field(default_factory=dict)  # native key: why it does not matter under uft
    unknown: dict[str, str | None] = field(default_factory=dict)  # kept keys the tool does not know: did-you-mean
    notes: list[str] = field(default_factory=list)  # what the user should know about the import
    tool: str = ""

    def rows(self) -> list[LedgerRow]:
        """The ledger as table rows: mapped, defaults made explicit, kept, unknown, ignored."""
        where = f"backend_options.{self.tool}." if self.tool else "backend_options."
        rows = [LedgerRow(k, "mapped", t) for k, t in self.mapped]
        rows += [LedgerRow(k, "default", t) for k, t in self.defaults]
        rows += [LedgerRow(k, "kept", where + k) for k in self.kept if k not in self.unknown]
        rows += [LedgerRow(k, "unknown", where + k + (f" (did you mean {s}?)" if s else ""))
                 for k, s in self.unknown.items()]
        rows += [LedgerRow(k, "ignored", why) for k, why in self.ignored.items()]
        return rows

    def counts(self) -> dict[str, int]:
        """How many native keys the config had per status (defaults are not keys of the config)."""
        counts = {"mapped": 0, "kept": 0, "ignored": 0, "unknown": 0}
        for row in self.rows():
            if row.status in counts:
                counts[row.status] += 1
        return counts


_MISSING = object()


class KeyLedger:
    """The keys of one native config, each accounted for once (see the module docstring).

    `known` is the tool's own key list (for unknown keys and did-you-mean); `defaults` its default values,
    used (and recorded as defaults made explicit) when the config leaves a key out. Nested sections are
    read with `section(key)`, whose keys appear as `key.sub`."""

    def __init__(self, native: dict[str, Any], tool: str, *, known: Iterable[str] = (),
                 defaults: dict[str, Any] | None = None, result: ImportResult | None = None, prefix: str = ""):
        self.native = native
        self.tool = tool
        self.known = set(known)
        self.defaults = defaults or {}
        self.result = result if result is not None else ImportResult(tool=tool)
        self.prefix = prefix
        self._done: set[str] = set()
        self._sections: list[KeyLedger] = []

    def has(self, key: str) -> bool:
        """Whether the config sets the key (None counts as unset, as the tools' parsers read it)."""
        return self.native.get(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        """The config's value, else the tool's default, else `default`; records nothing."""
        value = self.native.get(key)
        if value is not None:
            return value
        value = self.defaults.get(key)
        return default if value is None else value

    def take(self, key: str, target: str, default: Any = None) -> Any:
        """The value, recorded as mapped to `target` (or as a tool default made explicit when the config lacks it)."""
        name = self.prefix + key
        if key not in self._done:
            self._done.add(key)
            if self.has(key):
                self.result.mapped.append((name, target))
            elif key in self.native:  # written as null: the tool's parser reads it as unset
                self.result.ignored[name] = "empty (null): the tool's default applies"
            if not self.has(key) and (key in self.defaults or default is not None):
                self.result.defaults.append((name, target))
        elif self.has(key) and (name, target) not in self.result.mapped:
            self.result.mapped.append((name, target))
        return self.get(key, default)

    def ignore(self, keys: str | Iterable[str], reason: str) -> None:
        """Keys that do not matter under uft, each with why; keys the config lacks are not listed."""
        for key in [keys] if isinstance(keys, str) else keys:
            if key in self.native and key not in self._done:
                self._done.add(key)
                self.result.ignored[self.prefix + key] = reason

    def keep(self, key: str, value: Any = _MISSING, note: str | None = None) -> None:
        """A key kept verbatim in backend_options.<tool> (optionally with a note for the user)."""
        if key not in self.native and value is _MISSING:
            return
        self._done.add(key)
        self.result.kept[self.prefix + key] = self.native[key] if value is _MISSING else value
        if note:
            self.result.notes.append(note)

    def done(self, key: str) -> bool:
        return key in self._done

    def section(self, key: str, *, known: Iterable[str] = (), defaults: dict[str, Any] | None = None) -> KeyLedger:
        """A nested mapping of the config (`key.sub` in the ledger); the key itself counts as read."""
        value = self.native.get(key)
        if value is not None and not isinstance(value, dict):
            raise SpecError(f"This {self.tool} config cannot be imported", [Problem(
                self.prefix + key, f"expected a mapping, found {type(value).__name__}",
                f"write {key} as a mapping of keys")])
        self._done.add(key)
        child = KeyLedger(value or {}, self.tool, known=known, defaults=defaults, result=self.result,
                          prefix=f"{self.prefix}{key}.")
        self._sections.append(child)
        return child

    def item(self, key: str, index: int, value: dict[str, Any], *, known: Iterable[str] = ()) -> KeyLedger:
        """One mapping in a list of mappings (`key[0].sub` in the ledger)."""
        self._done.add(key)
        child = KeyLedger(value, self.tool, known=known, result=self.result, prefix=f"{self.prefix}{key}[{index}].")
        self._sections.append(child)
        return child

    def leftovers(self) -> list[str]:
        return [k for k in self.native if k not in self._done]

    def finish(self, spec: dict[str, Any] | None = None) -> ImportResult:
        """Keep every key not yet accounted for, mark those the tool does not know, put the kept keys into
        spec.backend_options.<tool>, and check that no key was left out or counted twice."""
        self._keep_leftovers()
        result = self.result
        if spec is not None:
            result.spec = spec
            if result.kept:
                options = spec.setdefault("backend_options", {})
                options[self.tool] = {**options.get(self.tool, {}), **_nest(result.kept)}
        counted = [k for k, _ in result.mapped] + list(result.kept) + list(result.ignored)
        names = {k for k, _ in result.mapped}
        twice = sorted({k for k in list(result.kept) + list(result.ignored) if k in names} |
                       (set(result.kept) & set(result.ignored)))
        missing = sorted(set(self.all_keys()) - set(counted))
        if twice or missing:  # an importer bug, not the user's: say which keys
            raise AssertionError(f"{self.tool} import ledger: counted twice {twice}, unaccounted {missing}")
        return result

    def all_keys(self) -> list[str]:
        keys = []
        for key in self.native:
            child = next((s for s in self._sections if s.prefix.startswith(f"{self.prefix}{key}.") or
                          s.prefix.startswith(f"{self.prefix}{key}[")), None)
            if child is None:
                keys.append(self.prefix + key)
        for child in self._sections:
            keys += child.all_keys()
        return keys

    def _keep_leftovers(self) -> None:
        for child in self._sections:
            child._keep_leftovers()
        for key in self.leftovers():
            self.keep(key)
            if self.known and key not in self.known:
                close = difflib.get_close_matches(key, sorted(self.known), n=1)
                self.result.unknown[self.prefix + key] = close[0] if close else None


def _nest(kept: dict[str, Any]) -> dict[str, Any]:
    """Kept keys as backend_options: `a.b` of a nested section becomes {a: {b: ...}}; list items stay flat."""
    out: dict[str, Any] = {}
    for key, value in kept.items():
        if "[" in key or "." not in key:
            out[key] = value
            continue
        head, _, tail = key.partition(".")
        node = out.setdefault(head, {})
        if isinstance(node, dict):
            node.update(_nest({tail: value}))
    return out


#: Keys that only one tool's configs have, to tell the user which importer a config is for.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "llamafactory": ("stage", "finetuning_type", "cutoff_len", "lora_target", "dataset_dir", "template"),
    "llamafactory-v1": ("peft_config", "dist_config", "train_dataset", "kernel_config"),
    "swift": ("tuner_type", "train_type", "rlhf_type", "lora_rank", "loss_scale", "split_dataset_ratio"),
    "axolotl": ("base_model", "micro_batch_size", "sequence_len", "sample_packing", "adapter", "lora_r", "datasets"),
    "trl": ("model_name_or_path", "dataset_name", "use_peft", "lora_r", "lora_target_modules", "max_length"),
}


def detect_tool(native: dict[str, Any]) -> str | None:
    """The tool whose key signature the config matches best (two or more of its keys), or None."""
    scores = {tool: sum(key in native for key in keys) for tool, keys in SIGNATURES.items()}
    if scores["llamafactory-v1"]:
        return "llamafactory"  # v1 configs are imported by the llamafactory importer too
    tool, score = max(scores.items(), key=lambda item: item[1])
    tied = [t for t, s in scores.items() if s == score]
    return tool if score >= 2 and len(tied) == 1 else None


def check_tool(native: dict[str, Any], tool: str, source: str) -> None:
    """An error naming the right importer when a config is plainly another tool's."""
    found = detect_tool(native)
    own = sum(key in native for key in SIGNATURES.get(tool, ()) + SIGNATURES.get(f"{tool}-v1", ()))
    if found and found != tool and own < 2:
        raise SpecError(f"{source} looks like a config for {found}, not for {tool}", [Problem(
            source, f"it has {found}'s keys (" + ", ".join(k for k in SIGNATURES[found] if k in native) + ")",
            f"import it with `uft import {found} {source}`")])


def unknown_notes(result: ImportResult) -> list[str]:
    """One line per unknown key, for the CLI and the notes."""
    return [f"{key} is not a {result.tool} key" + (f" (did you mean {s}?)" if s else "") +
            f"; kept in backend_options.{result.tool}, where {result.tool} will reject it until it is fixed"
            for key, s in result.unknown.items()]
