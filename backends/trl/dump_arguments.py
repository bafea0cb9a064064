"""Write arguments.json: every trl CLI argument name (ScriptArguments, ModelConfig and each trainer config)
with its declared default, per method.

uft's importer uses it to tell a typo from a real trl argument and a default from a choice, without
importing trl. Refresh after a lock change, inside an environment with trl installed:
    python backends/trl/dump_arguments.py > backends/trl/arguments.json
"""

import dataclasses
import json
import sys


def _defaults(cls) -> dict:
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


def main() -> None:
    import trl

    configs = {"sft": "SFTConfig", "dpo": "DPOConfig", "kto": "KTOConfig", "rm": "RewardConfig",
               "orpo": "ORPOConfig", "cpo": "CPOConfig", "grpo": "GRPOConfig"}
    trainers = {}
    for method, name in configs.items():
        cls = getattr(trl, name, None)
        if cls is None:
            try:
                cls = getattr(__import__("trl.experimental", fromlist=[name]), name)
            except (ImportError, AttributeError):
                continue
        trainers[method] = _defaults(cls)
    json.dump({"trl_version": trl.__version__, "script": _defaults(trl.ScriptArguments),
               "model": _defaults(trl.ModelConfig), "trainers": trainers}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
