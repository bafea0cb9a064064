"""Secrets: told by key name and by value shape, kept out of everything uft writes or prints.

Policy (README, "Secrets"):
1. A spec never holds a secret. Specs are copied into run directories (spec.yaml), native configs,
   `uft plan` output and the manifest, which people share; so a secret-looking key anywhere in the spec
   (`backend_options.trl.model_init_kwargs.token`, `passwd`, `client_secret`, ...), a token-shaped value
   (`hf_...`, `sk-...`, `ghp_...`, `AKIA...`, a JWT, `Bearer ...`) or a URL with a password is refused
   (`find_secrets`, used by `JobSpec`), with the fix: put it in the environment. Every framework uft
   runs reads the hub token from `HF_TOKEN` and trackers their keys from theirs (`WANDB_API_KEY`), and
   the child process inherits uft's environment: the real value lives only there.
2. Defence in depth: whatever uft writes or prints (resolved spec, native files, plan, manifest, log
   tails, the framework's logs once it exits) passes through `redact_data` / `redact_text`, which also
   remove the values of secret-named environment variables (`env_secrets`), so a framework that echoes
   its environment does not leak it into the run directory.

Pure and stdlib only: the spec model, the CLI and the runs layer all use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REDACTED = "<redacted>"

#: Fragments that make a key a secret wherever they occur in its joined, lower-cased words.
_SECRET_FRAGMENTS = ("password", "passwd", "passphrase", "secret", "credential", "apikey", "accesskey",
                     "privatekey", "secretkey", "signingkey", "encryptionkey", "clientkey", "sessionkey",
                     "authorization", "bearer", "cookie")
#: Whole words that make a key a secret.
_SECRET_WORDS = {"auth", "oauth", "jwt", "netrc"}  # not "pwd": $PWD is the working directory
#: `<word>_token` names a vocabulary token, not a credential (pad_token, eos_token, new_special_tokens).
_VOCAB_TOKEN_QUALIFIERS = {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "special", "new", "start", "end",
                           "image", "video", "audio", "placeholder", "think", "default", "stop", "decoder",
                           "label", "vocab", "extra", "prefix", "suffix", "sentinel", "control", "chat", "boi",
                           "eoi", "boa", "eoa", "fim", "middle", "system", "response", "query", "eot", "bot",
                           "pause", "split", "add", "max", "min", "num"}
#: `token_<word>` is a number about tokens (pad_token_id, token_type_ids), not a credential.
_TOKEN_NUMBER_WORDS = {"id", "ids", "type", "types", "count", "length", "len", "level", "limit", "budget",
                       "num", "index", "embedding", "embeddings", "weight", "weights", "size", "per"}

#: Token shapes that are secrets wherever they appear, with a name for messages.
VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("an API key (sk-...)", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Slack token", re.compile(r"\bxox[abprse]-[A-Za-z0-9-]{10,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)")),
    ("a bearer token", re.compile(r"\b[Bb]earer\s+(?=[A-Za-z0-9._~+/-]*\d)[A-Za-z0-9._~+/-]{12,}=*")),
)
#: user:password@ inside a URL; the password (group 3) is the secret.
_URL_CREDENTIALS = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/\s:@]+):([^/\s@]+)@", re.IGNORECASE)
#: A whole value that is an HTTP authorization header value ("Bearer x").
_AUTH_VALUE = re.compile(r"^\s*Bearer\s+\S+\s*$", re.IGNORECASE)
#: key: value / key=value / "key": "value" in free text (logs, YAML, JSON, reprs, query strings).
_ASSIGNMENT = re.compile(
    r"""(?P<key>["']?\b[A-Za-z_][\w.-]*["']?)(?P<sep>\s*[:=]\s*)(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s,;&'"}\])]+)""")
#: Authorization: Bearer|Basic <credentials> (the scheme word stays, so the line still reads).
_AUTH_HEADER = re.compile(
    r"""(?i)\b(authorization["']?\s*[:=]\s*["']?)(?:(bearer|basic|digest|token)\s+)?([^\s"',;]+)""")
#: --key value on a command line.
_FLAG = re.compile(r"(?P<key>--[A-Za-z][\w.-]*)(?P<sep>\s+)(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s-][^\s]*)")
_AUTH_SCHEMES = {"bearer", "basic", "digest", "token"}
_HARMLESS = {"", "none", "null", "~", "true", "false", "yes", "no", "***", REDACTED.lower()}
#: Shortest environment value treated as a secret to scrub (shorter ones would redact ordinary words).
MIN_ENV_SECRET = 8


def key_words(key: str) -> list[str]:
    """`hfToken`, `HF_TOKEN`, `x-api-key` -> lower-case words."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(key))
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def is_secret_key(key: str) -> bool:
    """Does this key name hold a credential (token, auth, password, private key, ...)?"""
    words = key_words(key)
    joined = "".join(words)
    if any(fragment in joined for fragment in _SECRET_FRAGMENTS) or _SECRET_WORDS & set(words):
        return True
    for i, word in enumerate(words):
        if word != "token":
            continue
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if before not in _VOCAB_TOKEN_QUALIFIERS and after not in _TOKEN_NUMBER_WORDS:
            return True
    return False


def is_harmless(value: Any) -> bool:
    """Values that cannot be a secret even under a secret-looking key (use_auth_token: true, hub_token: null)."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        text = value.strip().strip("'\"")
        return text.lower() in _HARMLESS or _is_env_reference(text)
    return False


def _is_env_reference(text: str) -> bool:
    """`$HF_TOKEN` / `${HF_TOKEN}` names where the secret is; it is not the secret."""
    return re.fullmatch(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}?", text) is not None


def _holds_value(value: Any) -> bool:
    """A value under a secret key that must not be written: not harmless; a mapping is looked into instead."""
    if isinstance(value, Mapping):
        return False
    if isinstance(value, (list, tuple)):
        return any(not is_harmless(item) for item in value)
    return not is_harmless(value)


def secret_in_value(value: str) -> str | None:
    """What kind of secret a string holds (a token shape, URL credentials), or None."""
    if _URL_CREDENTIALS.search(value):
        return "a URL with a password in it"
    if _AUTH_VALUE.match(value):
        return "an authorization header value"
    for kind, pattern in VALUE_PATTERNS:
        if pattern.search(value):
            return kind
    return None


def find_secrets(data: Any, path: str = "") -> list[tuple[str, str]]:
    """Every secret in nested data, as (dotted key path, why) - for refusing a spec that holds one."""
    found: list[tuple[str, str]] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if is_secret_key(str(key)) and _holds_value(value):
                found.append((where, "its key names a secret"))
            else:
                found += find_secrets(value, where)
    elif isinstance(data, (list, tuple)):
        for index, item in enumerate(data):
            found += find_secrets(item, f"{path}[{index}]")
    elif isinstance(data, str):
        kind = secret_in_value(data)
        if kind:
            found.append((path, f"its value looks like {kind}"))
    return found


def redact_value(value: str, known: Iterable[str] = ()) -> str:
    """One string value with what `secret_in_value` finds (and the `known` secrets) replaced; exactly what
    the spec check refuses, so a valid spec's values come back unchanged."""
    for secret in sorted({s for s in known if s and len(s) >= MIN_ENV_SECRET}, key=len, reverse=True):
        value = value.replace(secret, REDACTED)
    if _AUTH_VALUE.match(value):
        return f"{value.split()[0]} {REDACTED}"
    for _kind, pattern in VALUE_PATTERNS:
        value = pattern.sub(lambda m: _keep_scheme(m.group(0)), value)
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", value)


def redact_text(text: str, known: Iterable[str] = ()) -> str:
    """Free text (logs, printed output) with secrets replaced: what `redact_value` replaces, plus the values of
    secret-named assignments (`password: x`, `token=x`, `--hub_token x`, `Authorization: Basic x`)."""
    text = redact_value(text, known)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + (f"{m.group(2)} " if m.group(2) else "") + REDACTED, text)
    for pattern in (_ASSIGNMENT, _FLAG):
        text = pattern.sub(_redact_assignment, text)
    return text


#: A decimal number (`"mean_token_accuracy": 0.53`) is a measurement, not a secret.
_METRIC = re.compile(r"[-+]?\d*\.\d+(?:[eE][-+]?\d+)?|[-+]?\d+(?:\.\d*)?[eE][-+]?\d+")


def _keep_scheme(match: str) -> str:
    """`Bearer abc...` keeps the word Bearer so the line still reads."""
    head = match.split()[0] if match.lower().startswith("bearer") else ""
    return f"{head} {REDACTED}" if head else REDACTED


def _redact_assignment(match: re.Match[str]) -> str:
    key, value = match.group("key"), match.group("value")
    if not is_secret_key(key.strip("'\"-")) or is_harmless(value) or value.startswith("<") \
            or value.lower() in _AUTH_SCHEMES or _METRIC.fullmatch(value.rstrip(",}")):
        return match.group(0)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{key}{match.group('sep')}{quote}{REDACTED}{quote}"


def redact_data(data: Any, known: Iterable[str] = (), free_text: bool = False) -> Any:
    """A copy of nested data (a config, a manifest, an argv) with every secret value replaced by REDACTED;
    `free_text` treats its strings as messages (`redact_text`: manifest notes and error tails) rather than
    config values (`redact_value`)."""
    known = tuple(known)
    if isinstance(data, Mapping):
        return {key: REDACTED if is_secret_key(str(key)) and _holds_value(value)
                else redact_data(value, known, free_text) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        items = [redact_data(item, known, free_text) for item in data]
        for i in range(len(items) - 1):  # argv: --hub_token VALUE
            flag = data[i]
            if isinstance(flag, str) and flag.startswith("-") and is_secret_key(flag.lstrip("-")) \
                    and isinstance(data[i + 1], str) and not is_harmless(data[i + 1]):
                items[i + 1] = REDACTED
        return items if isinstance(data, list) else tuple(items)
    if isinstance(data, str):
        return redact_text(data, known) if free_text else redact_value(data, known)
    return data


def env_secrets(*environments: Mapping[str, str]) -> list[str]:
    """Values of secret-named environment variables (HF_TOKEN, WANDB_API_KEY, ...) and the saved hub token,
    which must not appear in anything uft writes even if a framework echoes them."""
    found = {value for env in (environments or (os.environ,)) for key, value in env.items()
             if is_secret_key(key) and len(value) >= MIN_ENV_SECRET and not is_harmless(value)
             and not os.path.isabs(value)}  # SSH_AUTH_SOCK names a socket, not a secret
    token_file = _hub_token_file(environments[0] if environments else os.environ)
    try:
        saved = token_file.read_text(encoding="utf-8").strip() if token_file.is_file() else ""
    except OSError:
        saved = ""
    if len(saved) >= MIN_ENV_SECRET:
        found.add(saved)
    return sorted(found)


def _hub_token_file(env: Mapping[str, str]) -> Path:
    if env.get("HF_TOKEN_PATH"):
        return Path(env["HF_TOKEN_PATH"]).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "token"


#: Files the scrub reads as text; weights and other binaries are left alone (nothing uft or a
#: framework writes there comes from the environment).
TEXT_SUFFIXES = (".log", ".txt", ".json", ".jsonl", ".yaml", ".yml", ".sh", ".md", ".csv", ".out", ".err", "")
MAX_SCRUB_BYTES = 64 * 2**20


def scrub_file(path: Path, known: Iterable[str] = ()) -> bool:
    """Rewrite one text file with its secrets redacted (atomically); True if it changed."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SCRUB_BYTES:
            return False
        raw = path.read_bytes()
    except OSError:
        return False
    text = raw.decode("utf-8", errors="surrogateescape")
    # Known values and token shapes only: a framework's own files (trainer logs, samples) are data whose
    # keys (`mean_token_accuracy`) must not be taken for secret names.
    clean = redact_value(text, known)
    if clean == text:
        return False
    tmp = path.with_name(f".{path.name}.redacting")
    tmp.write_bytes(clean.encode("utf-8", errors="surrogateescape"))
    os.replace(tmp, path)
    return True


def scrub_tree(root: Path, known: Iterable[str] = ()) -> list[Path]:
    """Scrub every text file under `root` (a run's logs/ and native/ after the framework exits)."""
    known = tuple(known)
    changed = []
    for path in sorted(Path(root).rglob("*")):
        if path.suffix.lower() in TEXT_SUFFIXES and scrub_file(path, known):
            changed.append(path)
    return changed
