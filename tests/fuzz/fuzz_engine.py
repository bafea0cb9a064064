"""Running one fuzz case and judging it: exit code, traceback, message, leftovers; and the totals table.

A case runs in-process through `unified_ft.cli.main(argv)` (fast), or, when it may hang or blow up
(a FIFO, an alias bomb, deep nesting), in a subprocess with a time, memory and open-file limit. Its
folder is snapshotted before and after: any new, changed or removed path is a leftover. HOME and the
temporary directory point into the case's own folders, so `~` and temporary files are checked too.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fuzz_cases import CASES, Case, Dir, Fifo, Link

#: Verdicts, worst first; a case has the first that applies (leftovers are also counted on their own).
VERDICTS = ("hang", "traceback", "accepted", "wrong-exit", "vague", "leftovers", "clean")
ISOLATED_TIMEOUT_S = 8.0
ISOLATED_MEMORY = 3 << 30
RESULTS: list[Outcome] = []  # filled by test_fuzz.py, printed by conftest.py at the end of the session


@dataclass
class Outcome:
    case: Case
    verdict: str
    exit_code: int | None
    output: str
    faults: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # expectations the message did not meet
    leftovers: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def explain(self) -> str:
        lines = [f"{self.case.id}: {self.verdict} (exit {self.exit_code}, {self.seconds:.2f}s)",
                 f"  argv: {' '.join(map(repr, self.case.argv))}"]
        if self.missing:
            lines.append(f"  message does not name: {', '.join(self.missing)}")
        if self.leftovers:
            lines.append(f"  left behind: {', '.join(self.leftovers[:8])}")
        tail = self.output.strip()[-1500:]
        lines.append("  output: " + tail.replace("\n", "\n          "))
        return "\n".join(lines)


def make_model_folder(folder: Path) -> Path:
    """A minimal local model folder: enough for plan and translate, which never load weights."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64, "vocab_size": 400}),
        encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}), encoding="utf-8")
    return folder


def _fill(text: str, model: Path, work: Path) -> str:
    return text.replace("@MODEL@", str(model)).replace("@CASE@", str(work))


def write_files(case: Case, work: Path, model: Path) -> None:
    for rel, content in case.files.items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            continue
        if isinstance(content, str):
            path.write_bytes(_fill(content, model, work).encode("utf-8", "surrogatepass"))
        elif isinstance(content, bytes):
            path.write_bytes(content.replace(b"@MODEL@", str(model).encode()))
        elif isinstance(content, Fifo):
            os.mkfifo(path)
        elif isinstance(content, Link):
            path.symlink_to(content.target)
        elif isinstance(content, Dir):
            path.mkdir(exist_ok=True)
            for inner, text in content.files:
                (path / inner).parent.mkdir(parents=True, exist_ok=True)
                (path / inner).write_text(_fill(text, model, work), encoding="utf-8")


def snapshot(*roots: Path) -> dict[str, str]:
    """Every path under the roots with its type and content hash (links and FIFOs are not followed)."""
    found: dict[str, str] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                mode = path.lstat().st_mode
                if stat.S_ISLNK(mode):
                    found[str(path)] = "link:" + os.readlink(path)
                elif stat.S_ISDIR(mode):
                    found[str(path)] = "dir"
                elif stat.S_ISREG(mode):
                    found[str(path)] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
                else:
                    found[str(path)] = f"special:{stat.S_IFMT(mode)}"
    return found


def _diff(before: dict[str, str], after: dict[str, str], base: Path, allowed: tuple[str, ...]) -> list[str]:
    changed = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) == after.get(path):
            continue
        rel = os.path.relpath(path, base)
        if allowed and path not in before and rel.split(os.sep)[0] in allowed:
            continue
        kind = "new" if path not in before else "removed" if path not in after else "changed"
        changed.append(f"{rel} ({kind})")
    return changed


def _normal(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def missing_expectations(case: Case, output: str) -> list[str]:
    """Expectations the message does not meet (whitespace- and case-insensitive; `row 3` is not `row 30`)."""
    flat = _normal(output)
    missing = []
    for expect in case.expect:
        options = expect if isinstance(expect, tuple) else (expect,)
        if not any(re.search(re.escape(_normal(o)) + (r"(?!\d)" if o[-1:].isdigit() else ""), flat)
                   for o in options):
            missing.append(" or ".join(repr(o) for o in options))
    return missing


_COMMANDS: dict[int, object] = {}


def _cache_typer_commands() -> None:
    """Build the click command of uft's Typer app once, not on every main() call (saves ~35 ms a case)."""
    import typer.main

    if getattr(typer.main.get_command, "_fuzz_cached", False):
        return
    original = typer.main.get_command

    def cached(app):
        if id(app) not in _COMMANDS:
            _COMMANDS[id(app)] = (app, original(app))
        return _COMMANDS[id(app)][1]

    cached._fuzz_cached = True  # type: ignore[attr-defined]
    typer.main.get_command = cached


def _in_process(argv: list[str], work: Path, home: Path, tmp: Path) -> tuple[int | None, str, str | None]:
    """main(argv) with cwd, HOME and the temp dir inside the case; (exit code, output, escaped exception)."""
    from unified_ft import cli

    _cache_typer_commands()

    saved_cwd, saved_env, saved_tmp = os.getcwd(), dict(os.environ), tempfile.tempdir
    saved_width = (cli.console._width, cli.err_console._width)
    buffer = io.StringIO()
    escaped = None
    code: int | None = None
    try:
        os.chdir(work)
        os.environ.update(HOME=str(home), TMPDIR=str(tmp), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                          COLUMNS="200")
        tempfile.tempdir = str(tmp)
        cli.console.width = cli.err_console.width = 200
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                code = cli.main(argv)
            except BaseException as exc:  # noqa: BLE001 - anything escaping main() is a traceback for the user
                import traceback

                escaped = "".join(traceback.format_exception(exc))
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        tempfile.tempdir = saved_tmp
        cli.console._width, cli.err_console._width = saved_width
    return code, buffer.getvalue(), escaped


def _isolated(case: Case, argv: list[str], work: Path, home: Path, tmp: Path,
              out_file: Path) -> tuple[int | None, str, bool]:
    """The case in a forked child with a time, memory and open-file limit; (exit code, output, timed out).

    Forked rather than spawned: the child already has uft (and torch) imported, so it costs milliseconds.
    """
    import resource
    import signal

    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 97
        try:
            fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            resource.setrlimit(resource.RLIMIT_AS, (_address_space() + ISOLATED_MEMORY,) * 2)
            if case.nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (case.nofile, case.nofile))
            code, output, escaped = _in_process(argv, work, home, tmp)
            os.write(fd, (output + (escaped or "")).encode("utf-8", "replace"))
            status = 1 if escaped else (code if code is not None else 96)
        except BaseException:  # noqa: BLE001
            import traceback

            os.write(2, traceback.format_exc().encode())
        finally:
            os._exit(status & 0xFF)
    deadline = time.monotonic() + ISOLATED_TIMEOUT_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None, out_file.read_text("utf-8", "replace"), True
    output = out_file.read_text("utf-8", "replace")
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status), output, False
    return os.WEXITSTATUS(status), output, False


def _address_space() -> int:
    """This process's virtual memory size in bytes (the child's limit is this plus ISOLATED_MEMORY)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def run_case(case: Case, root: Path, model: Path) -> Outcome:
    """Write the case's files under root/<id>/, run it, and judge what happened."""
    base = root / re.sub(r"[^A-Za-z0-9._-]", "_", case.id)[:150]
    work, home, tmp = base / "work", base / "home", base / "tmp"
    for folder in (work, home, tmp):
        folder.mkdir(parents=True)
    write_files(case, work, model)
    before = snapshot(base, model)
    argv = [a.replace("@MODEL@", str(model)).replace("@CASE@", str(work)) for a in case.argv]
    started = time.monotonic()
    if case.isolate:
        code, output, timed_out = _isolated(case, argv, work, home, tmp, base.parent / f"{base.name}.out")
        escaped = None
    else:
        code, output, escaped = _in_process(argv, work, home, tmp)
        timed_out = False
    seconds = time.monotonic() - started
    leftovers = _diff(before, snapshot(base, model), work, case.allowed_new)
    faults = []
    if timed_out:
        faults.append("hang")
    elif escaped or "Traceback (most recent call last)" in output or (code is not None and code < 0):
        faults.append("traceback")
        output = output + (escaped or "") + (f"\n[killed by signal {-code}]" if code is not None and code < 0 else "")
    elif code == 0 and 0 not in case.exit_codes:
        faults.append("accepted")
    elif code not in case.exit_codes:
        faults.append("wrong-exit")
    missing = missing_expectations(case, output) if not faults and code != 0 else []
    if missing:
        faults.append("vague")
    if leftovers:
        faults.append("leftovers")
    verdict = next((v for v in VERDICTS if v in faults), "clean")
    return Outcome(case, verdict, code, output, faults, missing, leftovers, seconds)


def totals_table(outcomes: list[Outcome], title: str = "uft fuzz suite") -> str:
    """The totals: cases, clean, and each kind of failure (a case counts once, under its worst verdict)."""
    verdicts = Counter(o.verdict for o in outcomes)
    any_leftovers = sum(1 for o in outcomes if "leftovers" in o.faults)
    groups = sorted({o.case.group for o in outcomes})
    header = f"{'group':<14}{'cases':>7}{'clean':>7}{'trace':>7}{'accept':>8}{'exit':>6}{'vague':>7}{'left':>6}" \
             f"{'hang':>6}"
    lines = [f"== {title}: {len(outcomes)} cases, {verdicts['clean']} clean ==", header]

    def row(label: str, items: list[Outcome]) -> str:
        c = Counter(o.verdict for o in items)
        left = sum(1 for o in items if "leftovers" in o.faults)
        return (f"{label:<14}{len(items):>7}{c['clean']:>7}{c['traceback']:>7}{c['accepted']:>8}"
                f"{c['wrong-exit']:>6}{c['vague']:>7}{left:>6}{c['hang']:>6}")

    for group in groups:
        lines.append(row(group, [o for o in outcomes if o.case.group == group]))
    lines.append(row("TOTAL", outcomes))
    lines.append(f"totals: cases={len(outcomes)} clean={verdicts['clean']} tracebacks={verdicts['traceback']} "
                 f"accepted={verdicts['accepted']} wrong_exit_code={verdicts['wrong-exit']} "
                 f"vague_message={verdicts['vague']} leftovers={any_leftovers} (only leftovers: "
                 f"{verdicts['leftovers']}) hangs={verdicts['hang']}")
    lines.append(f"time: {sum(o.seconds for o in outcomes):.1f}s in the cases")
    return "\n".join(lines)


def failures_report(outcomes: list[Outcome]) -> str:
    """Every failing case, grouped by verdict then group, with its output tail."""
    parts = []
    for verdict in VERDICTS[:-1]:
        bad = [o for o in outcomes if o.verdict == verdict]
        if not bad:
            continue
        parts.append(f"\n#### {verdict}: {len(bad)} case(s)")
        for o in bad:
            parts.append(o.explain())
    return "\n".join(parts)


def run_all(root: Path, cases: list[Case] | None = None, on_outcome=None) -> list[Outcome]:
    model = make_model_folder(root / "_model")
    outcomes = []
    for case in cases if cases is not None else CASES:
        outcome = run_case(case, root, model)
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return outcomes
