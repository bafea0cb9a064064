"""Parse a uft-written swift config with ms-swift's own argument classes, without training.

Usage (inside the swift environment, in the native folder): python swift_check.py sft|pt|rlhf config.yaml
Runs swift's config-file expansion and argument dataclasses (their __post_init__ validates model type,
template, dataset paths and training arguments) but creates no output folder and loads no weights.
"""

import sys
from dataclasses import dataclass


def check(command: str, config: str) -> None:
    from swift.arguments import PretrainArguments, RLHFArguments, SftArguments
    from swift.cli.main import parse_yaml_args
    from swift.utils import parse_args

    argv = [config]
    parse_yaml_args(argv)
    base = {"sft": SftArguments, "pt": PretrainArguments, "rlhf": RLHFArguments}[command]

    @dataclass
    class NoOutputDir(base):
        def _add_version(self):  # swift would create output_dir here
            pass

    _, rest = parse_args(NoOutputDir, argv)
    if rest:
        raise SystemExit(f"swift does not know these arguments: {' '.join(rest)}")


if __name__ == "__main__":
    check(sys.argv[1], sys.argv[2])
