"""Write arguments.json: every trl CLI argument name (ScriptArguments, ModelConfig and each trainer config)
with its declared default, per method; the kind of value each takes (a bare flag, several words, ...), in the
same layout; and the
options `accelerate launch` takes (which `trl sft ...` also passes on to it).

uft's importer uses it to tell a typo from a real trl argument, a default from a choice, and a launcher option
from a training one, without importing trl. Refresh after a lock change, inside an environment with trl:
    python backends/trl/dump_arguments.py > backends/trl/arguments.json
"""

import importlib
import importlib.util
import json
import sys
from pathlib import Path

#: method -> (module, config class): trl's stable trainers, and ORPO/CPO from trl.experimental.
CONFIGS = {"sft": ("trl", "SFTConfig"), "dpo": ("trl", "DPOConfig"), "kto": ("trl", "KTOConfig"),
           "rm": ("trl", "RewardConfig"), "grpo": ("trl", "GRPOConfig"),
           "orpo": ("trl.experimental.orpo", "ORPOConfig"), "cpo": ("trl.experimental.cpo", "CPOConfig")}


def _shared():
    """backends/dataclass_fields.py, loaded by path (uft itself is not installed where this runs)."""
    path = Path(__file__).resolve().parent.parent / "dataclass_fields.py"
    spec = importlib.util.spec_from_file_location("dataclass_fields", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _accelerate_options() -> dict:
    """`accelerate launch`'s options: {name: whether it takes a value} (a store_true flag takes none)."""
    from accelerate.commands.launch import launch_command_parser

    found = {}
    for action in launch_command_parser()._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                found[option[2:].replace("-", "_")] = action.nargs != 0
    return dict(sorted(found.items()))


def main() -> None:
    import accelerate
    import trl
    from trl.scripts.utils import DatasetConfig, DatasetMixtureConfig

    fields = _shared()
    trainers, kinds = {}, {}
    for method, (module, name) in CONFIGS.items():
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        trainers[method], kinds[method] = fields.defaults(cls), fields.kinds(cls)
    kinds = {"script": fields.kinds(trl.ScriptArguments), "model": fields.kinds(trl.ModelConfig),
             "dataset_mixture": fields.kinds(DatasetMixtureConfig), "trainers": kinds}
    json.dump({"trl_version": trl.__version__, "accelerate_version": accelerate.__version__,
               "script": fields.defaults(trl.ScriptArguments), "model": fields.defaults(trl.ModelConfig),
               "dataset_mixture": fields.defaults(DatasetMixtureConfig), "dataset": fields.defaults(DatasetConfig),
               "trainers": trainers, "kinds": kinds, "accelerate": _accelerate_options()},
              sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
