"""The base weights' dtype every runner, the evaluation and export load a spec's model in."""

from __future__ import annotations

import pytest

from unified_ft.modeling import model_config
from unified_ft.spec import JobSpec

BASE = {"name": "d", "model": {"path": "org/m"}, "data": {"train": [{"path": "x.jsonl", "format": "alpaca"}]}}


@pytest.mark.parametrize(("adapter", "precision", "dtype"), [
    ("lora", "bf16", "bfloat16"), ("lora", "fp16", "float16"), ("lora", "fp32", "float32"),
    ("full", "bf16", "bfloat16"), ("full", "fp16", "float32"), ("freeze", "fp16", "float32"),
])
def test_weights_follow_the_precision_except_fp16_weights_that_train(adapter, precision, dtype):
    """fp16 mixed precision cannot unscale float16 gradients: weights that train stay float32 under fp16."""
    spec = JobSpec.model_validate({**BASE, "adapter": {"type": adapter}, "training": {"precision": precision}})
    assert model_config(spec)["dtype"] == dtype
