"""Write arguments.json: every `swift sft|pt|rlhf` argument name with its declared default.

uft's importer uses it to tell a typo from a real swift argument and a default from a choice, without
swift installed. Refresh after a lock change, inside the swift environment:
    $(uft env path swift)/bin/python backends/swift/dump_arguments.py > backends/swift/arguments.json
"""

import dataclasses
import json
import sys


def main() -> None:
    from swift.arguments import RLHFArguments

    found = {}
    for field in dataclasses.fields(RLHFArguments):
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
    json.dump({"swift_version": __import__("swift").__version__, "arguments": dict(sorted(found.items()))},
              sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
