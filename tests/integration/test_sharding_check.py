"""The FSDP2 translations pass each framework's own argument checks (trl's config classes, ms-swift 4.6's argument
classes, which load fsdp2.json), without training: what can be checked on a machine without a GPU. DeepSpeed
needs the deepspeed package and CUDA, so its translations are checked by the golden files only."""

from __future__ import annotations

import pytest

from unified_ft.launch import translate_to
from unified_ft.plugin import load_backend
from unified_ft.specfile import validate_spec_dict

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("backend", "offload"), [("trl", "none"), ("swift", "params")])
def test_fsdp2_translation_passes_the_frameworks_own_checks(backend, offload, tiny_model, tmp_path):
    if not load_backend(backend).environment().ready:
        pytest.skip(f"uft's environment for {backend} is not built here")
    (tmp_path / "rows.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    spec = validate_spec_dict({
        "name": "fsdp", "model": {"path": str(tiny_model)}, "template": "chatml",
        "data": {"train": [{"path": str(tmp_path / "rows.jsonl"), "format": "alpaca"}], "max_length": 64},
        "training": {"max_steps": 1, "precision": "fp32", "gradient_checkpointing": True},
        "evaluation": {"enabled": False},
        "distributed": {"processes_per_node": 2, "strategy": "fsdp2", "offload": offload}})
    plan, job = translate_to(spec, backend, tmp_path / "native")
    plan.backend.check(job)  # raises, naming the framework's complaint, if it refuses the files
    assert (job.native_dir / ("fsdp2.json" if backend == "swift" else "accelerate_config.yaml")).is_file()
