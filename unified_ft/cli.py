"""The `uft` command: a thin shell over `unified_ft.api`. Only here do errors become exit codes.

`main(argv) -> int` runs in-process (tests call it). Heavy modules are imported inside commands, so
`uft --help` and `uft validate` never import torch or a framework.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .errors import RunFailed, RunInterrupted, UftError

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
RunsDirOpt = Annotated[Optional[Path], typer.Option("--runs-dir", help="Where run directories go (default: the "
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
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write to a file.")] = None,
    eval_report: Annotated[bool, typer.Option("--eval", help="The schema of eval.json instead.")] = False,
) -> None:
    """Print the JSON Schema of the spec (or, with --eval, of eval.json)."""
    from .schema import eval_schema_text, schema_text

    text = eval_schema_text() if eval_report else schema_text()
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@app.command()
def plan(spec: SpecArg, backend: BackendOpt = "trl") -> None:
    """Show the resolved spec (every default filled in) and what the backend will be told."""
    import tempfile

    from rich.syntax import Syntax

    from .launch import translate_to
    from .specfile import dump_spec, load_spec

    with tempfile.TemporaryDirectory(prefix="uft-plan-") as tmp:
        the_plan, job = translate_to(load_spec(spec), backend, Path(tmp) / "native")
        console.rule("resolved spec")
        console.print(Syntax(dump_spec(the_plan.spec), "yaml"))
        console.rule(f"backend {backend}")
        env = the_plan.environment
        console.print(f"environment: {'ready' if env.ready else 'NOT READY'} - {env.detail}")
        for key, value in the_plan.derived.items():
            console.print(f"derived: {key} = {value}")
        for note in the_plan.notes:
            console.print(f"[yellow]note[/yellow]: {note}")
        for path in job.files:
            if path.suffix in (".yaml", ".yml", ".json", ".sh"):
                console.rule(f"native/{path.name}")
                console.print(Syntax(path.read_text(encoding="utf-8"), "yaml"))
        console.rule("command")
        console.print(job.command, soft_wrap=True)


@app.command()
def translate(
    spec: SpecArg,
    backend: BackendOpt = "trl",
    output: Annotated[Path, typer.Option("-o", "--output", help="Empty folder for the native files.")] = Path(
        "native"),
    check: Annotated[bool, typer.Option("--check", help="Also run the framework's own argument parsing on the "
                                        "result, inside its environment, without training.")] = False,
) -> None:
    """Write the backend's native config and data into a folder (eject), and print the native command."""
    from .launch import translate_to
    from .specfile import load_spec

    the_plan, job = translate_to(load_spec(spec), backend, output)
    for path in job.files:
        console.print(f"wrote {path}")
    if check:
        with err_console.status(f"checking with {backend}'s own parser"):
            the_plan.backend.check(job)
        console.print(f"[green]{backend} accepts the translated config[/green]")
    console.print(f"\nrun it without uft:\n  cd {output} && {job.command}", soft_wrap=True)


@app.command()
def run(spec: SpecArg, backend: BackendOpt = "trl", runs_dir: RunsDirOpt = None) -> None:
    """Run one job on a backend: plan, prepare data, translate, train, collect."""
    from .specfile import load_spec

    _run_and_report(load_spec(spec), backend, runs_dir)


@app.command(name="import")
def import_command(
    backend: Annotated[str, typer.Argument(help="The framework the config is for (llamafactory, swift).",
                                           show_default=False)],
    config: Annotated[Path, typer.Argument(help="The native config: LLaMA-Factory's YAML; for swift a shell "
                                           "script with the swift command, swift's args.json or its config file.",
                                           show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Spec file to write (must not exist).")] = Path(
        "spec.yaml"),
    dataset_info: Annotated[Optional[Path], typer.Option(help="LLaMA-Factory's dataset_info.json (default: "
                                                         "<dataset_dir>/dataset_info.json beside the config).")] = None,
) -> None:
    """Migrate a native config into a uft spec: mapped keys, and native keys kept verbatim."""
    import yaml

    from .errors import RunDirError
    from .specfile import validate_spec_dict

    if backend not in ("llamafactory", "swift"):
        raise UftError(f"uft can import llamafactory and swift configs, not {backend!r}")
    if output.exists():
        raise RunDirError(f"{output} already exists; choose a new file (nothing was written)")
    notes: list[str] = []
    if backend == "swift":
        from .backends.swift.importer import import_swift

        imported = import_swift(config)
        spec, mapped, kept, notes = imported.spec, imported.mapped, imported.kept, imported.notes
    else:
        from .backends.llamafactory.importer import import_config

        spec, mapped, kept = import_config(config, dataset_info)
    validate_spec_dict(spec, str(config))
    console.print(f"{config} -> {output}")
    for native_key, spec_key in mapped:
        console.print(f"  {native_key:<34} {spec_key}")
    for native_key in kept:
        console.print(f"  {native_key:<34} backend_options.{backend}.{native_key} (kept verbatim)")
    for note in notes:
        console.print(f"  [yellow]note[/yellow]: {note}")
    output.write_text(f"# Imported by uft from {config}\n" + yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    console.print(f"[green]wrote[/green] {output}")


@app.command()
def backends() -> None:
    """List backends, whether each is ready here, and their capabilities."""
    from rich.table import Table

    from .plugin import available_backends, load_backend

    for name in available_backends():
        backend = load_backend(name)
        env = backend.environment()
        state = "[green]ready[/green]" if env.ready else f"[red]not ready[/red] ({env.install_hint})"
        console.print(f"[bold]{name}[/bold]: {state} - {env.detail}")
        table = Table("feature", "support", "note", box=None, pad_edge=False)
        for feature, cap in sorted(backend.capabilities.items()):
            colour = {"native": "green", "emulated": "yellow", "unsupported": "red"}[cap.level]
            level = f"[{colour}]{cap.level}[/{colour}]" + (" (GPU)" if cap.needs_gpu else "")
            table.add_row(feature, level, cap.note)
        console.print(table)


env_app = typer.Typer(help="Isolated backend environments: uv venvs made from the locks kept in the repo, cached "
                      "and reused.", no_args_is_help=True)
app.add_typer(env_app, name="env")
BackendArg = Annotated[str, typer.Argument(help="A backend name (see `uft backends`).", show_default=False)]


def _recipe(backend: str):
    """The backend's isolated-environment recipe, or None for a backend that runs in this environment."""
    from .plugin import load_backend

    plugin = load_backend(backend)
    recipe = getattr(plugin, "env_recipe", lambda: None)()
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

    spec_path = write_quickstart(folder, steps or DEFAULT_STEPS)
    console.print(f"quickstart spec and data: {folder}/ (edit {spec_path} and `uft run` it again)")
    _run_and_report(load_spec(spec_path), "trl", runs_dir or Path("runs"))


def _run_and_report(job, backend: str, runs_dir: Optional[Path]) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from .launch import run_job

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=False) as progress:
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

        result = run_job(job, backend, runs_dir, on_progress, on_eval)
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
        console.print(f"  [yellow]note[/yellow]: {note}")
    if result.adapter_dir:
        console.print(f"  adapter: {result.adapter_dir}")
    console.print(f"  metrics: {result.run_dir / 'metrics.jsonl'}")
    console.print(f"  manifest: {result.run_dir / 'manifest.json'}")
    if result.evaluation is not None:
        _print_eval(result.evaluation)
    for folder in result.exports:
        console.print(f"  export: {folder}")


def _print_eval(report) -> None:
    from .evaluate import format_table

    console.print(format_table(report))
    console.print(f"  evaluation: {report.run_dir}/eval.json, answers side by side in {report.run_dir}/eval/samples.jsonl "
                  f"({report.duration_s}s)")


@app.command(name="eval")
def eval_command(run_dir: Annotated[Path, typer.Argument(help="A run directory: runs/<name>/<backend>.",
                                                         show_default=False)]) -> None:
    """Judge a finished run with the shared evaluation (base vs tuned), writing eval.json."""
    from .evaluate import evaluate_run

    with err_console.status("evaluating") as status:
        report = evaluate_run(run_dir, lambda message: status.update(f"evaluating: {message}"))
    _print_eval(report)


@app.command(name="export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory: runs/<name>/<backend>.", show_default=False)],
    to: Annotated[str, typer.Option("--to", help="adapter, merged or gguf.")] = "merged",
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Folder to write (default: "
                                                   "RUN_DIR/export/<to>); must not exist or be empty.")] = None,
    gguf_type: Annotated[str, typer.Option(help="GGUF tensor type: f32, f16, bf16 or q8_0.")] = "f16",
) -> None:
    """Export a finished run: the peft adapter, the merged model (safetensors), or a GGUF file."""
    from .export import export_run

    with err_console.status(f"exporting {to}") as status:
        folder = export_run(run_dir, to, output, gguf_type=gguf_type,
                            on_progress=lambda message: status.update(f"exporting {to}: {message}"))
    console.print(f"[green]exported[/green] {to}: {folder}")
    for path in sorted(folder.iterdir()):
        console.print(f"  {path.name}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes print one message and return 2, a failed framework returns 1."""
    import click
    from rich.markup import escape

    try:  # newer typer raises its own copy of click's exceptions; catch both
        from typer._click.exceptions import ClickException as TyperClickException
    except ImportError:
        TyperClickException = click.ClickException
    try:
        code = app(args=argv, prog_name="uft", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except (typer.Exit, click.exceptions.Exit) as exc:
        return exc.exit_code
    except (click.ClickException, TyperClickException) as exc:
        exc.show()
        return exc.exit_code
    except (typer.Abort, click.exceptions.Abort):
        err_console.print("aborted")
        return 130
    except (UftError, RunFailed) as exc:
        if _state["debug"]:
            raise
        label = "[yellow]interrupted[/yellow]" if isinstance(exc, RunInterrupted) else "[red]error[/red]"
        err_console.print(f"{label}: {escape(str(exc))}", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()

