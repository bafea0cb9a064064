"""The `uft` command: a thin shell over `unified_ft.api`. Only here do errors become exit codes.

`main(argv) -> int` runs in-process (tests call it). Heavy modules are imported inside commands, so
`uft --help` and `uft validate` never import torch or a framework.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

from .errors import RunFailed, RunInterrupted, UftError

if TYPE_CHECKING:
    from .migrate import ImportResult
    from .plugin import Backend, Capability

app = typer.Typer(
    name="uft",
    help="One portable fine-tuning job spec, run natively on any supported framework.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False, soft_wrap=True)  # paths stay whole for copy and paste
err_console = Console(stderr=True, highlight=False)
_state = {"debug": False}

SpecArg = Annotated[Path, typer.Argument(help="Path to the job spec (YAML).", show_default=False)]
BackendOpt = Annotated[str, typer.Option("--backend", "-b", help="Backend to use (see `uft backends`).")]
RunsDirOpt = Annotated[Path | None, typer.Option("--runs-dir", help="Where run directories go (default: the "
                                                    "spec's runs_dir, ./runs).")]


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False) -> None:
    _state["debug"] = debug


@app.command()
def validate(spec: SpecArg) -> None:
    """Check a spec file and report every problem with its line."""
    from rich.markup import escape

    from .specfile import load_spec

    job = load_spec(spec)
    console.print(f"[green]ok[/green] {escape(str(spec))}: {job.name} ({job.method.name}, {job.adapter.type}, "
                  f"{len(job.data.train)} train dataset(s))")


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to a file.")] = None,
    eval_report: Annotated[bool, typer.Option("--eval", help="The schema of eval.json instead.")] = False,
    effective: Annotated[bool, typer.Option("--effective", help="The schema of effective.json instead.")] = False,
    bakeoff_report: Annotated[bool, typer.Option("--bakeoff", help="The schema of bakeoff.json instead.")] = False,
) -> None:
    """Print the JSON Schema of the spec (or, with --eval, of eval.json; --effective, effective.json; --bakeoff,
    bakeoff.json)."""
    from .schema import bakeoff_schema_text, effective_schema_text, eval_schema_text, schema_text
    from .userfile import write_text_file

    chosen = [text for flag, text in ((eval_report, eval_schema_text), (effective, effective_schema_text),
                                      (bakeoff_report, bakeoff_schema_text)) if flag]
    if len(chosen) > 1:
        raise UftError("--eval, --effective and --bakeoff each choose one schema; give one of them")
    text = chosen[0]() if chosen else schema_text()
    if output:
        write_text_file(output, text, may_exist=True, what="schema file")
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@app.command()
def plan(spec: SpecArg, backend: BackendOpt = "trl") -> None:
    """Show the resolved spec (every default filled in) and what the backend will be told."""
    import tempfile

    from rich.markup import escape

    from .launch import translate_to
    from .redact import env_secrets, redact_text
    from .specfile import dump_spec, load_spec

    known = env_secrets()

    def shown(text: object) -> str:
        """Printed output is often pasted into issues: no secret in it, whatever slipped through."""
        return redact_text(str(text), known)

    with tempfile.TemporaryDirectory(prefix="uft-plan-") as tmp:
        the_plan, job = translate_to(load_spec(spec), backend, Path(tmp) / "native")
        console.rule("resolved spec")
        _print_file(shown(dump_spec(the_plan.spec)))
        console.rule(f"backend {backend}")
        env = the_plan.environment
        state = "eject-only" if getattr(the_plan.backend, "eject_only", None) else "ready" if env.ready else "NOT READY"
        console.print(f"environment: {state} - {escape(shown(env.detail))}")
        for key, value in the_plan.derived.items():
            console.print(f"derived: {escape(key)} = {escape(shown(value))}")
        for note in the_plan.notes:
            _note(shown(note))
        for path in job.files:
            if path.suffix in (".yaml", ".yml", ".json", ".sh"):
                console.rule(f"native/{path.name}")
                _print_file(shown(path.read_text(encoding="utf-8")), "bash" if path.suffix == ".sh" else "yaml")
        console.rule("command")
        console.print(shown(job.command), soft_wrap=True)


def _note(text: str, indent: str = "") -> None:
    """A note is plain text: [brackets] in it (a path, a list) are printed, not read as markup."""
    from rich.markup import escape

    console.print(f"{indent}[yellow]note[/yellow]: {escape(text)}")


def _print_file(text: str, lexer: str = "yaml") -> None:
    """File contents are machine-readable: highlighted on a terminal but never cut or wrapped into new
    lines (rich crops at 80 columns when output goes to a file or a pager), plain text otherwise."""
    if console.is_terminal:
        from rich.syntax import Syntax

        console.print(Syntax(text, lexer, word_wrap=True), soft_wrap=True)
    else:
        console.file.write(text if text.endswith("\n") else text + "\n")


class Launcher(str, Enum):
    """Where `uft translate` prepares the job to start: nowhere else (the native files alone), or a cluster."""

    none = "none"
    slurm = "slurm"
    skypilot = "skypilot"


@app.command()
def translate(
    spec: SpecArg,
    backend: BackendOpt = "trl",
    output: Annotated[Path, typer.Option("-o", "--output", help="Empty folder for the native files.")] = Path(
        "native"),
    check: Annotated[bool, typer.Option("--check", help="Also run the framework's own argument parsing on the "
                                        "result, inside its environment, without training.")] = False,
    launcher: Annotated[Launcher, typer.Option("--launcher", help="Also write a cluster job that builds the "
                                               "backend's environment and starts every node: slurm (job.sbatch) "
                                               "or skypilot (sky.yaml).")] = Launcher.none,
) -> None:
    """Write the backend's native config and data into a folder (eject), and print the native command
    (axolotl is eject-only: translated here, trained with `axolotl train config.yaml`, never run by uft)."""
    from .launch import translate_to
    from .redact import env_secrets, redact_text
    from .specfile import load_spec

    the_plan, job = translate_to(load_spec(spec), backend, output, launcher.value)
    for path in job.files:
        console.print(f"wrote {path}", markup=False)
    for note in the_plan.notes:
        _note(redact_text(note, env_secrets()))
    if check:
        with err_console.status(f"checking with {backend}'s own parser"):
            the_plan.backend.check(job)
        console.print(f"[green]{backend} accepts the translated config[/green]")
    console.print(f"\nrun it without uft:\n  cd {output} && {redact_text(job.command, env_secrets())}", soft_wrap=True)
    submit = {"slurm": "sbatch job.sbatch", "skypilot": "sky launch sky.yaml (edit its GPU type first)"}
    if launcher.value in submit:
        console.print(f"on a cluster:\n  cd {output} && {submit[launcher.value]}", soft_wrap=True)


ExecutorName = Literal["local", "ray"]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Fail (exit 1) if the framework did anything other than "
                                          "what the spec says (see `uft inspect`).")]


@app.command()
def run(spec: SpecArg, backend: BackendOpt = "trl", runs_dir: RunsDirOpt = None, strict: StrictOpt = False) -> None:
    """Run one job on a backend: plan, prepare data, translate, train, collect, read back what it did."""
    from .specfile import load_spec

    _check_path_option("--runs-dir", runs_dir)
    _run_and_report(load_spec(spec), backend, runs_dir, strict)


@app.command(name="bakeoff")
def bakeoff_command(
    spec: Annotated[Path | None, typer.Argument(help="Path to the job spec (YAML); not with --resume.",
                                                show_default=False)] = None,
    backends: Annotated[str, typer.Option("--backends", help="Comma-separated backends, e.g. "
                                          "trl,llamafactory,swift (see `uft backends --matrix`).")] = "",
    repeats: Annotated[int, typer.Option("--repeats", help="Runs per backend: means, spreads, and a difference "
                                         "within the spread called noise.")] = 1,
    strict: Annotated[bool, typer.Option("--strict", help="Stop (exit 1) when a parity check fails: before "
                                         "training if the pre-flight finds it.")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="The bake-off folder (must not exist; "
                                                "default <runs_dir>/<name>-bakeoff).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="A bake-off folder to go on with: runs only "
                                                "what is missing.")] = None,
    warmup_steps: Annotated[int | None, typer.Option("--warmup-steps", help="Steps left out of the throughput "
                                                     "(default: 10% of the steps, 1 to 5).")] = None,
    executor: Annotated[ExecutorName, typer.Option("--executor", help="local: the runs one at a time on this "
                                                   "machine; ray: one Ray task per backend and repeat, a node each "
                                                   "(needs uft's ray extra).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="The Ray cluster (host:port of its head); "
                                                "default: RAY_ADDRESS, else a local Ray.")] = None,
) -> None:
    """Run one spec on several backends, prove it like-for-like, measure each, and write report.html."""
    from rich.markdown import Markdown

    from .bakeoff_run import Executor, bakeoff, resume_bakeoff
    from .report import markdown_summary
    from .specfile import load_spec

    if resume is not None:
        if spec is not None or backends or output is not None:
            raise UftError("--resume goes on with the bake-off in that folder (its spec, backends and repeats); "
                           "give no SPEC, --backends or -o with it")
        _check_path_option("--resume", resume)
    elif spec is None or not backends:
        raise UftError("give a spec and --backends, e.g. `uft bakeoff spec.yaml --backends trl,llamafactory`, "
                       "or --resume DIR")
    else:
        _check_path_option("-o", output)
    if address is not None and executor != "ray":
        raise UftError("--address names a Ray cluster; give it with --executor ray")
    where = Executor(executor, address)
    with _terminal_may_vanish(), _bakeoff_progress() as (say, on_progress):
        if resume is not None:
            result = resume_bakeoff(resume, warmup_steps=warmup_steps, say=say, on_progress=on_progress,
                                    executor=where)
        else:
            result = bakeoff(load_spec(spec), backends.split(","), repeats=repeats, strict=strict, out_dir=output,
                             warmup_steps=warmup_steps, say=say, on_progress=on_progress, executor=where)
    console.print(Markdown(markdown_summary(result)))


@contextmanager
def _bakeoff_progress() -> Iterator[tuple]:
    """A line per bake-off stage, and a progress bar per run (backend, repeat) with its loss."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[loss]}"), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=False) as progress:
        tasks: dict[tuple, object] = {}

        def say(message: str) -> None:
            progress.console.print(f"[dim]bakeoff[/dim] {escape(message)}", highlight=False)

        def on_progress(row: dict) -> None:
            key = (row.get("backend"), row.get("repeat"))
            if key not in tasks:
                tasks[key] = progress.add_task(f"{key[0]} (repeat {key[1]})", total=None, loss="")
            if row.get("max_steps"):
                progress.update(tasks[key], total=row["max_steps"])
            if row.get("loss") is not None:
                progress.update(tasks[key], completed=row["step"], loss=f"loss {row['loss']:.4f}")

        yield say, on_progress


@app.command()
def inspect(run_dir: Annotated[Path, typer.Argument(help="A run directory: runs/<name>/<backend>.",
                                                    show_default=False)]) -> None:
    """Show what the framework really did in a finished run (effective.json) against its spec."""
    from .effective import inspect_run

    spec, effective, checks = inspect_run(run_dir)
    _print_checks(checks, effective.backend, everything=True)
    for note in effective.notes:
        _note(note, "  ")
    console.print(f"  from {run_dir / 'effective.json'}")


def _print_checks(checks, backend: str, everything: bool = False) -> None:
    """The table "spec vs what <backend> did": every difference flagged; with `everything`, unjudged rows too."""
    from rich.markup import escape
    from rich.table import Table

    from .effective import differences, shown_value

    rows = [c for c in checks if everything or c.same is not None]
    table = Table(title=f"spec vs what {backend} did", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("setting", "spec", backend, ""):
        table.add_column(column, overflow="fold")
    for check in rows:
        mark = {True: "[green]same[/green]", False: "[red]DIFFERS[/red]", None: ""}[check.same]
        table.add_row(check.setting, escape(shown_value(check.spec)), escape(shown_value(check.did)), mark)
    console.print(table)
    differing = [c.setting for c in differences(checks)]
    judged = sum(1 for c in checks if c.same is not None)
    if differing:
        console.print(f"  [red]{len(differing)} of {judged} settings differ from the spec[/red]: "
                      f"{', '.join(differing)}")
    else:
        console.print(f"  all {judged} settings the spec fixes are what {backend} did")


def _check_path_option(option: str, path: Path | None) -> None:
    """A folder option that cannot be one (NUL, blank, too long, a file, under a file) is refused before any
    work; one that simply does not exist yet is fine."""
    import errno
    import os
    import stat

    from .userfile import os_error_text, path_problem, shown

    if path is None:
        return
    problem = path_problem(path)
    if not problem:
        try:
            if not stat.S_ISDIR(os.stat(os.path.expanduser(path)).st_mode):
                problem = "it is a file, not a folder"
        except OSError as exc:
            problem = None if exc.errno == errno.ENOENT else os_error_text(exc)
    if problem:
        raise UftError(f"{option} {shown(path)}: {problem}\n    fix: give a usable folder path")


@app.command(name="import")
def import_command(
    backend: Annotated[str, typer.Argument(help="The framework the config is for: a backend with an importer "
                                           "(`uft backends` says which).", show_default=False)],
    config: Annotated[Path, typer.Argument(help="The native config: LLaMA-Factory's YAML; for swift a shell "
                                           "script with the swift command, swift's args.json or its config file; "
                                           "for trl its config YAML, a script or command line that runs trl "
                                           "(`trl sft ...`, `accelerate launch trl/scripts/dpo.py ...`), or the "
                                           "config.yaml of a trl job uft translated.",
                                           show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Spec file to write (must not exist).")] = Path(
        "spec.yaml"),
    dataset_info: Annotated[Path | None, typer.Option(help="LLaMA-Factory's dataset_info.json (default: "
                                                         "<dataset_dir>/dataset_info.json in the working directory, "
                                                         "else beside the config).")] = None,
    method: Annotated[str | None, typer.Option(help="trl: the trainer a config YAML is for (sft, dpo, kto, reward, "
                                               "orpo, cpo; default sft, as `trl sft --config` reads it). A trl "
                                               "command line or script says it itself.")] = None,
) -> None:
    """Migrate a native config into a uft spec: mapped keys, and native keys kept verbatim."""
    from .errors import RunDirError
    from .plugin import importing_backends, load_backend
    from .specfile import validate_spec_dict
    from .userfile import dump_yaml, output_file_problem, shown, write_text_file

    plugin = load_backend(backend)
    if plugin.import_native is None:
        raise UftError(f"backend {backend} has no importer; uft imports the configs of "
                       f"{', '.join(importing_backends()) or 'no installed backend'}")
    problem = output_file_problem(output, may_exist=False)
    if problem:
        raise RunDirError(f"cannot write the spec {shown(output)}: {problem}\n"
                          "    fix: choose a new file in an existing folder (nothing was written)")
    options = {key: value for key, value in {"dataset_info": dataset_info, "method": method}.items()
               if value is not None}
    imported = plugin.import_native(config, **options)
    imported.tool = imported.tool or backend
    validate_spec_dict(imported.spec, str(config))
    console.print(f"{config} -> {output}")
    _print_ledger(imported)
    for note in imported.notes:
        _note(note, "  ")
    write_text_file(output, f"# Imported by uft from {config}\n" + dump_yaml(imported.spec), may_exist=False,
                    what="spec")
    console.print(f"[green]wrote[/green] {output}")


#: How each ledger status looks in `uft import`'s table.
_LEDGER_COLOURS = {"mapped": "green", "default": "cyan", "kept": "yellow", "unknown": "red", "ignored": "dim"}


def _print_ledger(imported: ImportResult) -> None:
    """The key ledger: every native key (mapped, kept, unknown, ignored) and the tool defaults written out."""
    from rich.markup import escape
    from rich.table import Table

    table = Table("native key", "", "in the spec / why", box=None, pad_edge=False)
    for row in imported.rows():
        colour = _LEDGER_COLOURS[row.status]
        table.add_row(escape(row.key), f"[{colour}]{row.status}[/{colour}]", escape(row.detail))
    console.print(table)
    counts = imported.counts()
    console.print("  " + ", ".join(f"{n} {status}" for status, n in counts.items()) +
                  f"; {len(imported.defaults)} {imported.tool} defaults written out")
    if imported.unknown:
        console.print(f"  [red]{len(imported.unknown)} key(s) {imported.tool} does not know[/red]: "
                      "fix or remove them in backend_options before running")


@app.command()
def backends(
    matrix: Annotated[bool, typer.Option("--matrix", help="One table of features x backends (native, emulated, "
                                         "unsupported; GPU: needs a GPU), to choose backends for a bake-off.")] = False,
) -> None:
    """List backends, whether each is ready here (or eject-only, as axolotl is), and their capabilities."""
    from rich.markup import escape

    from .plugin import available_backends, load_backend, registration_warnings

    for warning in registration_warnings():
        console.print(f"[yellow]warning[/yellow]: {escape(warning)}")
    broken, loaded = [], []
    for name in available_backends():
        try:
            backend = load_backend(name)
        except UftError as exc:  # one broken plugin does not hide the others
            broken.append(name)
            console.print(f"[bold]{name}[/bold]: [red]broken[/red] - {escape(str(exc))}")
            continue
        if matrix:
            loaded.append(backend)
        else:
            _print_backend(backend)
    if loaded:
        _print_matrix(loaded)
    if broken:
        raise UftError(f"backend plugin(s) {', '.join(broken)} cannot be used (see above)")


def _print_backend(backend: Backend) -> None:
    """One backend: its environment, whether it imports native configs, and its capability table."""
    from rich.table import Table

    env = backend.environment()
    state = "[green]ready[/green]" if env.ready else f"[red]not ready[/red] ({env.install_hint})"
    if getattr(backend, "eject_only", None):  # uft only translates for it: `uft run` refuses it by design
        state = f"[cyan]eject-only[/cyan] ({env.install_hint})"
    console.print(f"[bold]{backend.name}[/bold]: {state} - {env.detail}")
    if backend.import_native is not None:
        console.print(f"  imports native configs: uft import {backend.name} CONFIG")
    table = Table("feature", "support", "note", box=None, pad_edge=False)
    for feature, cap in sorted(backend.capabilities.items()):
        colour = _LEVEL_COLOURS[cap.level]
        level = f"[{colour}]{cap.level}[/{colour}]" + (" (GPU)" if cap.needs_gpu else "")
        table.add_row(feature, level, cap.note)
    console.print(table)


#: How a capability level looks in `uft backends` and `uft backends --matrix`.
_LEVEL_COLOURS = {"native": "green", "emulated": "yellow", "unsupported": "red"}


def _matrix_cell(cap: Capability | None) -> str:
    """One matrix cell: the level, coloured, and GPU when it needs one; undeclared is unsupported (as plan says)."""
    if cap is None:
        return "[red]unsupported[/red] [dim](undeclared)[/dim]"
    colour = _LEVEL_COLOURS[cap.level]
    return f"[{colour}]{cap.level}[/{colour}]" + (" [magenta]GPU[/magenta]" if cap.needs_gpu else "")


def _print_matrix(loaded: list[Backend]) -> None:
    """Features x backends in one table: the view for choosing backends that can run the same job."""
    from rich.console import Console
    from rich.table import Table

    from .plugin import all_features

    table = Table("feature", *(b.name for b in loaded), title="features x backends (GPU: needs a GPU)",
                  title_justify="left", pad_edge=False, show_edge=False)
    features = list(dict.fromkeys(all_features()))  # a feature the spec can produce two ways is one row
    for feature in features:
        table.add_row(feature, *(_matrix_cell(b.capabilities.get(feature)) for b in loaded))
    # One line per feature, never a truncated name: as wide as the table needs, even on a narrow terminal.
    needed = max(map(len, features)) + sum(max(len(b.name), len("unsupported GPU")) + 1 for b in loaded) + 2
    Console(width=max(console.width, needed), highlight=False).print(table)


env_app = typer.Typer(help="Isolated backend environments: uv venvs made from the locks kept in the repo, cached "
                      "and reused.", no_args_is_help=True)
app.add_typer(env_app, name="env")
BackendArg = Annotated[str, typer.Argument(help="A backend name (see `uft backends`).", show_default=False)]


def _recipe(backend: str):
    """The backend's isolated-environment recipe, or None for a backend that runs in this environment."""
    from .plugin import load_backend

    plugin = load_backend(backend)
    recipe = plugin.env_recipe()
    if recipe is None:
        env = plugin.environment()
        console.print(f"{backend} runs in the current environment ({env.detail}); nothing to build")
        for name, version in env.versions.items():
            console.print(f"  {name} {version}")
        if not env.ready:
            raise UftError(f"backend {backend} is not ready: {env.detail}\n    fix: {env.install_hint}")
    return recipe


@env_app.command("create")
def env_create(backend: BackendArg) -> None:
    """Build the backend's environment from its lock (reused when it exists)."""
    from . import envs

    recipe = _recipe(backend)
    if recipe:
        with err_console.status(f"creating the {backend} environment") as status:
            path = envs.create_env(recipe, lambda message: status.update(message))
        console.print(f"[green]ready[/green]: {path}")


@env_app.command("check")
def env_check(backend: BackendArg) -> None:
    """Import the framework inside its environment and print the versions."""
    from . import envs

    recipe = _recipe(backend)
    if recipe:
        for name, version in envs.check_env(recipe).items():
            console.print(f"  {name} {version}")


@env_app.command("path")
def env_path(backend: BackendArg) -> None:
    """Print where the backend's environment is (or would be)."""
    from . import envs

    recipe = _recipe(backend)
    if recipe:
        console.print(str(envs.env_dir(recipe)))


@env_app.command("remove")
def env_remove(backend: BackendArg) -> None:
    """Delete the backend's environment."""
    from . import envs

    recipe = _recipe(backend)
    if recipe:
        removed = envs.remove_env(recipe)
        console.print(f"removed {removed}" if removed else "no environment to remove")


@env_app.command("list")
def env_list() -> None:
    """Every cached backend environment."""
    from . import envs

    found = envs.list_envs()
    if not found:
        console.print(f"no backend environments under {envs.cache_root()}")
    for entry in found:
        state = "ready" if entry["complete"] == "true" else "incomplete"
        console.print(f"{entry['backend']}: {state} {entry['path']}")


@app.command()
def quickstart(
    steps: Annotated[int, typer.Option(help="Training steps (fewer for a smoke test).")] = 0,
    folder: Annotated[Path, typer.Option(help="Where the spec and data are written.")] = Path("uft-quickstart"),
    runs_dir: RunsDirOpt = None,
) -> None:
    """LoRA-tune SmolLM2-135M-Instruct on a small generated task, on CPU, with the trl backend."""
    from .quickstart import DEFAULT_STEPS, write_quickstart
    from .specfile import load_spec

    if steps < 0:
        raise UftError(f"--steps {steps} is negative; give a number of training steps, or 0 for the default "
                       f"({DEFAULT_STEPS}) (nothing was written)")
    _check_path_option("--runs-dir", runs_dir)
    spec_path = write_quickstart(folder, steps or DEFAULT_STEPS)
    console.print(f"quickstart spec and data: {folder}/ (edit {spec_path} and `uft run` it again)")
    _run_and_report(load_spec(spec_path), "trl", runs_dir or Path("runs"))


def _run_and_report(job, backend: str, runs_dir: Path | None, strict: bool = False) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .launch import run_job

    _check_path_option("--runs-dir" if runs_dir else "runs_dir (in the spec)", runs_dir or Path(job.runs_dir))
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with _terminal_may_vanish(), Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(f"{job.name} on {backend}: loading", total=None, loss="")

        def on_progress(row: dict) -> None:
            if row.get("event") == "start" or row.get("max_steps"):
                progress.update(task, total=row.get("max_steps"), description=f"{job.name} on {backend}: training")
            if row.get("loss") is not None:
                progress.update(task, completed=row["step"], loss=f"loss {row['loss']:.4f}")
            elif row.get("eval_loss") is not None:
                progress.update(task, loss=f"eval_loss {row['eval_loss']:.4f}")

        def on_eval(message: str) -> None:
            progress.update(task, description=f"{job.name}: evaluating ({message})")

        try:
            result = run_job(job, backend, runs_dir, on_progress, on_eval)
        except BaseException:
            if progress.tasks[0].total is None:  # stopped before training: the message alone, no empty bar
                progress.update(task, visible=False)
            raise
    metrics = result.metrics
    console.print(f"[green]succeeded[/green]: {result.run_dir}")
    if metrics.get("first_loss") is not None:
        console.print(f"  loss: {metrics['first_loss']:.4f} (first logged) -> {metrics['final_loss']:.4f} "
                      f"(last) over {metrics['steps']} steps")
    if metrics.get("eval_loss") is not None:
        console.print(f"  eval loss (trl's own): {metrics['eval_loss']:.4f}")
    if metrics.get("dropped_rows"):
        console.print(f"  [yellow]warning[/yellow]: {backend} dropped {metrics['dropped_rows']} train rows in its "
                      "own preprocessing (see logs/stdout.log)")
    for note in result.notes:
        _note(note, "  ")
    if result.adapter_dir:
        console.print(f"  adapter: {result.adapter_dir}")
    console.print(f"  metrics: {result.run_dir / 'metrics.jsonl'}")
    console.print(f"  manifest: {result.run_dir / 'manifest.json'}")
    if result.evaluation is not None:
        _print_eval(result.evaluation)
    for folder in result.exports:
        console.print(f"  export: {folder}")
    _report_checks(result, backend, strict)


def _report_checks(result, backend: str, strict: bool) -> None:
    """The read-back table; with --strict a difference fails the command (the run stays recorded)."""
    from .effective import differences
    from .errors import NotLikeTheSpec

    if result.checks is None:
        _note(f"what {backend} did could not be read back (see manifest.json)", "  ")
        if strict:
            raise NotLikeTheSpec(f"--strict: what {backend} did could not be read back; run kept in {result.run_dir}")
        return
    _print_checks(result.checks, backend)
    differing = [c.setting for c in differences(result.checks)]
    if strict and differing:
        raise NotLikeTheSpec(f"--strict: {backend} did not do what the spec says ({', '.join(differing)}); the run "
                             f"is kept in {result.run_dir} (`uft inspect` it)")


def _print_eval(report) -> None:
    from .evaluate import format_table

    console.print(format_table(report))
    where = [f"answers side by side in {report.run_dir}/eval/samples.jsonl"] if report.generated_rows else []
    if report.preference:
        where.append(f"each pair's {'scores' if report.preference.kind == 'reward_model' else 'rewards'} in "
                     f"{report.run_dir}/eval/preference.jsonl")
    console.print(f"  evaluation: {', '.join([f'{report.run_dir}/eval.json', *where])} ({report.duration_s}s)")


@app.command(name="eval")
def eval_command(run_dir: Annotated[Path, typer.Argument(help="A run directory: runs/<name>/<backend>.",
                                                         show_default=False)]) -> None:
    """Judge a finished run with the shared evaluation (base vs tuned), writing eval.json."""
    from .evaluate import evaluate_run

    _check_path_option("RUN_DIR", run_dir)
    with err_console.status("evaluating") as status:
        report = evaluate_run(run_dir, lambda message: status.update(f"evaluating: {message}"))
    _print_eval(report)


@app.command(name="export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory: runs/<name>/<backend>.", show_default=False)],
    to: Annotated[str, typer.Option("--to", help="adapter, merged or gguf.")] = "merged",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Folder to write (default: "
                                                   "RUN_DIR/export/<to>); must not exist or be empty.")] = None,
    gguf_type: Annotated[str, typer.Option(help="GGUF tensor type: f32, f16, bf16 or q8_0.")] = "f16",
) -> None:
    """Export a finished run: the peft adapter, the merged model (safetensors), or a GGUF file."""
    from .export import export_run

    _check_path_option("RUN_DIR", run_dir)
    _check_path_option("--output", output)
    with err_console.status(f"exporting {to}") as status:
        folder = export_run(run_dir, to, output, gguf_type=gguf_type,
                            on_progress=lambda message: status.update(f"exporting {to}: {message}"))
    console.print(f"[green]exported[/green] {to}: {folder}")
    for path in sorted(folder.iterdir()):
        console.print(f"  {path.name}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes print one message and return 2, a failed framework returns 1."""
    from rich.markup import escape

    from .redact import env_secrets, redact_value

    exits, usage_errors, aborts = _click_exceptions()
    try:
        code = app(args=argv, prog_name="uft", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except (typer.Exit, *exits) as exc:
        return exc.exit_code
    except usage_errors as exc:
        exc.show()
        return exc.exit_code
    except (typer.Abort, *aborts):
        err_console.print("aborted")
        return 130
    except (UftError, RunFailed) as exc:
        if _state["debug"]:
            raise
        label = "[yellow]interrupted[/yellow]" if isinstance(exc, RunInterrupted) else "[red]error[/red]"
        # known secret values and token shapes only: uft's own messages name keys and paths (/etc/passwd),
        # never values, and log tails in them are already redacted
        _tell(f"{label}: {escape(redact_value(str(exc), env_secrets()))}")
        return exc.exit_code
    except OSError as exc:
        if _state["debug"] or exc.errno not in _DISK_FIXES:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        _tell(f"[red]error[/red]: {escape(where + (exc.strerror or str(exc)))}\n    fix: {_DISK_FIXES[exc.errno]}")
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or a StopSignal (SIGTERM, SIGHUP, SIGQUIT) outside a run
        from .interrupts import signal_name, stop_signum

        _tell(f"[yellow]interrupted[/yellow] by {signal_name(stop_signum(exc))}")
        return 128 + stop_signum(exc)


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """Exit, usage-error and abort classes of click: typer >= 0.26 ships its own copy (typer._click) and
    no longer needs click itself, older typer uses click; catch whichever are installed."""
    import importlib

    exits, errors, aborts = [], [], []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for found, name_in_module in ((exits, "Exit"), (errors, "ClickException"), (aborts, "Abort")):
            if hasattr(module, name_in_module):  # typer's copy keeps Exit and Abort in typer itself
                found.append(getattr(module, name_in_module))
    return tuple(exits), tuple(errors), tuple(aborts)


# OSErrors that are the machine's state, not a bug in uft: one message naming the path, exit code 2.
_DISK_FIXES = {
    errno.ENOSPC: "free some space on that disk, or write somewhere else",
    errno.EDQUOT: "free some of your disk quota, or write somewhere else",
    errno.EROFS: "that file system is read-only; write somewhere else",
    errno.EACCES: "you may not use that path; choose another one, or fix its permissions",
    errno.EPERM: "you may not use that path; choose another one, or fix its permissions",
}


@contextmanager
def _terminal_may_vanish() -> Iterator[None]:
    """After SIGHUP (a closed terminal) the progress display's last write fails with EIO while the run's
    own outcome is on its way out: that outcome (already recorded in the manifest) is what counts."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.EIO, errno.EPIPE) and isinstance(exc.__context__, (UftError, RunFailed)):
            raise exc.__context__ from None
        raise


def _tell(markup: str) -> None:
    """The last message; a terminal that is gone (SIGHUP after it closed) must not turn it into a traceback."""
    with suppress(OSError):
        err_console.print(markup, soft_wrap=True)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()

