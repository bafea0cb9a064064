"""Write arguments.json: every `swift sft|pt|rlhf` argument name with its declared default.

uft's importer uses it to tell a typo from a real swift argument and a default from a choice, without
swift installed. Refresh after a lock change, inside the swift environment:
    $(uft env path swift)/bin/python backends/swift/dump_arguments.py > backends/swift/arguments.json
"""

import importlib.util
import json
import sys
from pathlib import Path


def _shared():
    """backends/dataclass_fields.py, loaded by path (uft itself is not installed where this runs)."""
    path = Path(__file__).resolve().parent.parent / "dataclass_fields.py"
    spec = importlib.util.spec_from_file_location("dataclass_fields", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    from swift.arguments import RLHFArguments

    json.dump({"swift_version": __import__("swift").__version__,
               "arguments": _shared().defaults(RLHFArguments)}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
