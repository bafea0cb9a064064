"""The JSON Schema of the spec, generated from the pydantic models (checked in as specs/unified_ft.schema.json)."""

from __future__ import annotations

import json

from .spec import JobSpec

SCHEMA_ID = "https://unified-ft.dev/schema/unified_ft.schema.json"


def schema_dict() -> dict:
    schema = JobSpec.model_json_schema(mode="validation")
    props = schema["properties"]
    for key, what in (("method", "a method name"), ("template", "a template name")):
        # `method: sft` and `template: qwen` are accepted as shorthand for {name: ...}
        ref = {k: v for k, v in props[key].items() if k != "description"}
        props[key] = {"anyOf": [{"type": "string", "description": f"Shorthand: {what}."}, ref],
                      "description": props[key].get("description", "")}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(schema_dict(), indent=2, sort_keys=False) + "\n"


def eval_schema_text() -> str:
    """The JSON Schema of eval.json (checked in as specs/eval.schema.json)."""
    from .evaluate import EvalReport

    schema = EvalReport.model_json_schema(mode="serialization")
    return json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}, indent=2) + "\n"


def effective_schema_text() -> str:
    """The JSON Schema of effective.json (checked in as specs/effective.schema.json)."""
    from .effective import Effective

    schema = Effective.model_json_schema(mode="serialization")
    return json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}, indent=2) + "\n"


def bakeoff_schema_text() -> str:
    """The JSON Schema of bakeoff.json (checked in as specs/bakeoff.schema.json)."""
    from .comparison import BakeoffResult

    schema = BakeoffResult.model_json_schema(mode="serialization")
    return json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}, indent=2) + "\n"
