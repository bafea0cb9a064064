"""Every axolotl golden config through axolotl's own config validation (`validate_config`, what `axolotl train`
runs first), where axolotl is importable: uft never installs it, so elsewhere this is skipped. (Checked with
axolotl 0.18.0's source tree on PYTHONPATH: PYTHONPATH=<axolotl>/src pytest tests/backends/test_axolotl_schema.py)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "axolotl"
CONFIGS = sorted(GOLDEN.glob("*/config.yaml"))
#: A one-GPU Hopper machine, as axolotl's CLI would detect it (validate_config takes both or neither).
GPU = {"bf16": True, "fp8": False, "n_gpu": 1, "n_node": 1, "compute_capability": "sm_90"}
ENV = {"torch_version": "2.12.0"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.parent.name for p in CONFIGS])
def test_axolotl_accepts_the_translated_config(path):
    config = pytest.importorskip("axolotl.utils.config", reason="axolotl is not installed (uft never needs it)")
    from axolotl.utils.dict import DictDefault

    written = yaml.safe_load(path.read_text(encoding="utf-8"))
    validated = config.validate_config(DictDefault(written), capabilities=GPU, env_capabilities=ENV)
    for key in ("sequence_len", "micro_batch_size", "gradient_accumulation_steps", "learning_rate", "seed",
                "excess_length_strategy", "train_on_inputs", "optimizer", "bf16", "fp16", "tf32"):
        assert validated[key] == written[key], key  # axolotl kept uft's value, not its own default
    assert validated["datasets"][0]["type"] == written["datasets"][0]["type"]
