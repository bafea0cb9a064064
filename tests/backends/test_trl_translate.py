"""Golden files for the trl translator: spec in, native files out, reviewed like code.

Regenerate after an intended change with `UFT_UPDATE_GOLDEN=1 pytest tests/backends` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fixtures import check_golden

from unified_ft.backends.trl import TrlBackend, native_config
from unified_ft.errors import SpecError
from unified_ft.launch import prepare_data
from unified_ft.specfile import load_spec, validate_spec_dict

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "trl"
EXAMPLES = ROOT / "examples" / "data"

EXTRA_CASES = {
    "kto-lora": {"method": "kto", "data": {"train": [{"path": str(EXAMPLES / "preference_sample.jsonl"),
                                                       "format": "preference"}]}},
    "rm-lora": {"method": "rm", "data": {"train": [{"path": str(EXAMPLES / "preference_sample.jsonl"),
                                                     "format": "preference"}]}},
    "prompt-tuning": {"adapter": {"type": "prompt", "num_virtual_tokens": 8}},
    "freeze-passthrough": {"adapter": {"type": "freeze", "trainable_layers": 1}, "template": "llama3",
                           "backend_options": {"trl": {"neftune_noise_alpha": 5}}},
}


def _base(name: str) -> dict:
    return {"name": name, "model": {"path": "org/model"},
            "data": {"train": [{"path": str(EXAMPLES / "alpaca_sample.jsonl"), "format": "alpaca"}],
                     "eval_split": 0.2, "max_length": 128},
            "training": {"max_steps": 3, "seed": 1}}


def _cases() -> dict:
    cases = {p.stem: ("file", p) for p in sorted((ROOT / "specs").glob("*.yaml"))}
    cases.update({k: ("dict", v) for k, v in EXTRA_CASES.items()})
    return cases


def _spec(kind: str, value):
    if kind == "file":
        return load_spec(value)
    return validate_spec_dict({**_base("case"), **value})


def _translate(spec, tmp_path: Path):
    if spec.training.precision == "auto":
        spec.training.precision = "fp32"  # what the plan resolves on a machine without a GPU
    data = prepare_data(spec, tmp_path / "data")
    return TrlBackend().translate(spec, data, tmp_path / "native")




@pytest.mark.parametrize("case", sorted(_cases()))
def test_translation_matches_golden(case, tmp_path):
    kind, value = _cases()[case]
    job = _translate(_spec(kind, value), tmp_path)
    config = (job.native_dir / "config.yaml").read_text(encoding="utf-8")
    check_golden(GOLDEN / case / "config.yaml", config)
    check_golden(GOLDEN / case / "train.jsonl", (job.native_dir / "train.jsonl").read_text(encoding="utf-8"))
    assert job.argv[1:] == ["train.py", "config.yaml"]
    assert (job.native_dir / "train.py").read_text() == (ROOT / "backends" / "trl" / "runner.py").read_text()
    for helper in ("chat_tokens.py", "modeling.py"):
        assert (job.native_dir / helper).read_text() == (ROOT / "unified_ft" / helper).read_text()


def test_every_lora_setting_is_explicit(tmp_path):
    spec = load_spec(ROOT / "specs" / "sft-lora.yaml")
    spec.training.precision = "fp32"
    cfg = native_config(spec, has_eval=True)
    assert cfg["peft"] == {"type": "lora", "task_type": "CAUSAL_LM", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                           "target_modules": "all-linear", "use_rslora": False, "use_dora": False, "bias": "none",
                           "init_lora_weights": "pissa_niter_16"}
    assert cfg["loraplus"] == {"lr_ratio": 16, "lr_embedding": 1e-6}
    trainer = cfg["trainer"]
    for key in ("gradient_accumulation_steps", "gradient_checkpointing", "num_train_epochs", "max_steps",
                "learning_rate", "lr_scheduler_type", "warmup_steps", "seed", "max_length", "packing", "bf16", "fp16"):
        assert key in trainer, key
    assert trainer["gradient_accumulation_steps"] == 4 and trainer["gradient_checkpointing"] is True


def test_passthrough_is_visible_and_cannot_shadow_a_spec_setting(tmp_path):
    spec = validate_spec_dict({**_base("p"), "backend_options": {"trl": {"neftune_noise_alpha": 5}}})
    spec.training.precision = "fp32"
    cfg = native_config(spec, has_eval=False)
    assert cfg["passthrough"] == ["neftune_noise_alpha"] and cfg["trainer"]["neftune_noise_alpha"] == 5
    spec.backend_options = {"trl": {"learning_rate": 1.0}}
    with pytest.raises(SpecError, match="backend_options.trl.learning_rate"):
        native_config(spec, has_eval=False)


def test_kto_data_becomes_unpaired_rows(tmp_path):
    job = _translate(_spec("dict", EXTRA_CASES["kto-lora"]), tmp_path)
    rows = [yaml.safe_load(line) for line in (job.native_dir / "train.jsonl").read_text().splitlines()]
    assert {r["label"] for r in rows} == {True, False}
    assert len(rows) == 2 * 8  # 8 pairs (this case has no eval split), each pair -> one chosen, one rejected row


def test_qlora_is_translated_on_cpu_even_though_it_only_runs_on_gpu(tmp_path):
    job = _translate(load_spec(ROOT / "specs" / "qlora-sft.yaml"), tmp_path)
    cfg = yaml.safe_load((job.native_dir / "config.yaml").read_text())
    assert cfg["quantization"] == {"bits": 4} and cfg["trainer"]["optim"] == "paged_adamw_8bit"
