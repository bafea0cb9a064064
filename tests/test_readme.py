"""README's promises are checked: its two commands are what CI runs, and the commands it names exist."""

from __future__ import annotations

import re
from pathlib import Path

from unified_ft.cli import main
from unified_ft.quickstart import write_quickstart

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _bash_blocks() -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", README, flags=re.S)]


def test_readme_starts_with_quickstart_then_test_command():
    first, second = _bash_blocks()[:2]
    assert first == "bash scripts/setup.sh && .venv/bin/uft quickstart"
    assert second == "bash scripts/setup.sh && .venv/bin/python -m pytest"


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert _bash_blocks()[1] in ci_lines


def test_every_command_in_the_readme_table_exists(capsys):
    for command in sorted(set(re.findall(r"^\| `uft (\w+)", README, flags=re.M))):
        assert main([command, "--help"]) == 0, command
    capsys.readouterr()


def test_checked_in_quickstart_example_matches_the_generator(tmp_path):
    write_quickstart(tmp_path)
    for name in ("spec.yaml", "train.jsonl", "eval.jsonl"):
        assert (ROOT / "examples" / "quickstart" / name).read_text() == (tmp_path / name).read_text(), (
            f"examples/quickstart/{name} is stale: regenerate with unified_ft.quickstart.write_quickstart")
