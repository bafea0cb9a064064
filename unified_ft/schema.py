"""The JSON Schema of the spec, generated from the pydantic models (checked in as specs/unified_ft.schema.json)."""

from __future__ import annotations

import json

from .spec import JobSpec

SCHEMA_ID = "https://unified-ft.dev/schema/unified_ft.schema.json"


def schema_dict() -> dict:
    schema = JobSpec.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(schema_dict(), indent=2, sort_keys=False) + "\n"
