"""A trl training command read out of a shell script: `trl sft|dpo|kto|reward ...`, `accelerate launch [options]
trl/scripts/sft.py ...`, `python examples/scripts/cpo.py ...` or `python -m trl.scripts.dpo ...`.

Gives the method, the training arguments as words (`--key value`, read later with trl's field kinds) and the
launcher's own options, which say how the job is started, not what it trains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from unified_ft.errors import Problem, SpecError
from unified_ft.shell_args import env_prefix, find_command, option_words, split_words, until_end

#: trl's CLI subcommands and script names -> uft's method; trl/scripts/reward.py and examples'
#: reward_modeling.py train a reward model (rm).
METHODS = {"sft": "sft", "dpo": "dpo", "kto": "kto", "reward": "rm", "reward_modeling": "rm", "orpo": "orpo",
           "cpo": "cpo"}
#: trl trainers uft has no method for (or whose inputs the spec does not model), with why.
NO_METHOD = {
    "grpo": "GRPO needs reward functions (--reward_funcs), which uft's spec does not model yet",
    "rloo": "RLOO samples completions and scores them with reward functions or a reward model; uft has no such method",
    "ppo": "trl 1.x keeps PPO outside its stable trainers, and uft's trl backend does not run it",
    "online_dpo": "online DPO generates answers during training and judges them with a reward model; uft's dpo "
                  "trains on a fixed preference dataset",
    "gkd": "GKD distils from a teacher model; uft has no distillation method",
    "distillation": "distillation from a teacher model is not a uft method",
    "bco": "BCO (binary classifier optimisation) is not a uft method",
    "nash_md": "Nash-MD generates answers and judges them with a reward model; uft has no such method",
    "xpo": "XPO generates answers and judges them with a reward model; uft has no such method",
    "prm": "process reward models (step-wise labels) are not a uft method; uft's rm trains on preference pairs",
}
NO_METHOD["dpo_online"] = NO_METHOD["online_dpo"]
FIX = "uft imports trl's sft, dpo, kto, reward, orpo and cpo; write the job as a uft spec by hand for the rest"
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
_COMMANDS = "|".join(sorted({*METHODS, *NO_METHOD}, key=len, reverse=True))
LAUNCH_PATTERN = (rf"(^|[\s/])(trl\s+({_COMMANDS})|accelerate\s+launch|python(3(\.\d+)?)?\s+(-m\s+trl\.scripts\.\w+|"
                  r"\S+\.py))(\s|$)")


@dataclass
class LaunchLine:
    """One training command: the method, its trl words ({key: [words]}), the launcher's options, the env."""

    method: str
    words: dict[str, list[str]]
    launcher: str  # "trl", "accelerate" or "python"
    launcher_options: dict[str, list[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    where: str = ""


def read_launch_line(path: Path, text: str, accelerate_takes_value: dict[str, bool]) -> LaunchLine:
    """The first trl training command of a script (see the module docstring)."""
    found = find_command(text, LAUNCH_PATTERN)
    if found is None:
        raise SpecError("No trl training command found", [Problem(
            str(path), "no `trl sft|dpo|kto|reward`, `accelerate launch <script>.py` or `python <script>.py` line",
            "give the script (or the command line, saved as a .sh file) that trains, or trl's config YAML")])
    number, line = found
    words = split_words(path, number, line, text, "trl")
    where = f"{path}:{number}"
    start = next(i for i, w in enumerate(words) if _launches(Path(w).name, words[i + 1:]))
    env = env_prefix(words, start)
    program, rest = Path(words[start]).name, until_end(words[start + 1:])
    if program == "trl":
        command = rest[0] if rest else ""
        return LaunchLine(_method(command, f"trl {command}", where), option_words(rest[1:])[0], "trl", env=env,
                          where=where)
    if program == "accelerate":
        rest = rest[1:]  # launch
        split = script_index(rest, accelerate_takes_value)
        if split is None:
            raise SpecError("This accelerate command launches no trl script", [Problem(
                where, "no <script>.py after `accelerate launch`", "give the command that launches trl's script")])
        options, _ = option_words(rest[:split], lambda key: accelerate_takes_value.get(key, True))
        script, shown, after = _script_of(rest, split)
        return LaunchLine(_method(script, shown, where), option_words(after)[0], "accelerate", options, env, where)
    module = _module_index(rest)
    split = module if module is not None else next(i for i, w in enumerate(rest) if w.endswith(".py"))
    script, shown, after = _script_of(rest, split)
    return LaunchLine(_method(script, shown, where), option_words(after)[0], "python", env=env, where=where)


def _launches(program: str, rest: list[str]) -> bool:
    """Whether `program rest...` is the trl training command (not `pip install trl ...` or a `cd` before it)."""
    return (program in ("trl", "accelerate") or bool(_PYTHON.match(program))) and \
        re.match(LAUNCH_PATTERN, " ".join(["", program, *rest])) is not None


def script_index(words: list[str], takes_value: dict[str, bool]) -> int | None:
    """Where the script starts after `accelerate launch`'s own options (each read with its value, if it takes one)."""
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("-m", "--module"):
            return index
        if not word.startswith("-"):
            return index
        key = word.lstrip("-").partition("=")[0].replace("-", "_")
        index += 1 if "=" in word or not takes_value.get(key, True) else 2
    return None


def _module_index(words: list[str]) -> int | None:
    """The index of `-m` in `python -m trl.scripts.sft` (or `accelerate launch -m ...`), else None."""
    return next((i for i, w in enumerate(words) if w in ("-m", "--module")), None)


def _script_of(words: list[str], index: int) -> tuple[str, str, list[str]]:
    """(script name, as the command writes it, the words after it) for `x/y/sft.py ...` at index, or
    `-m trl.scripts.sft ...`."""
    if words[index] in ("-m", "--module"):
        module = words[index + 1] if index + 1 < len(words) else ""
        return module.rpartition(".")[2], f"-m {module}", words[index + 2:]
    return Path(words[index]).stem, words[index], words[index + 1:]


def _method(name: str, shown: str, where: str) -> str:
    """uft's method for a trl subcommand or script name; a clear refusal for the trainers uft lacks."""
    if name in METHODS:
        return METHODS[name]
    why = f"{shown}: {NO_METHOD[name]}" if name in NO_METHOD else \
        f"`{shown}` is not one of trl's training commands or scripts that uft reads"
    raise SpecError("This trl command cannot be imported", [Problem(where, why, FIX)])
