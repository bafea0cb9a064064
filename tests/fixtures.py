"""Tiny models built locally (no hub): a BPE tokenizer trained on the fly and a random 2-layer Qwen2.

The saved folder is readable by older transformers too (the backends pin 4.51 .. 5.x): transformers 5
writes `tokenizer_class: TokenizersBackend`, `rope_parameters` and the chat template only as a .jinja
file, which older releases can't read, so those are written in both the old and the new way.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def corpus() -> list[str]:
    words = ("the quick brown fox jumps over a lazy dog answer question user assistant system json name age "  # noqa: SIM905
             "city hello world good bad yes no one two three four five six seven eight nine ten").split()
    lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    return lines + ["{\"name\": \"Ana\", \"age\": 31, \"city\": \"Lyon\"}", "0123456789 .,:;!?'\"()[]{}"]


def train_tokenizer(texts, vocab_size: int, folder: Path):
    """A byte-level BPE tokenizer trained on `texts`, with ChatML's special tokens and template, saved to `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    return fast


def build_tiny_model(folder: Path, vocab_size: int = 400) -> Path:
    """Write a tokenizer + randomly initialised 2-layer Qwen2 (about 60k parameters) to `folder`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    fast = train_tokenizer(corpus(), vocab_size, folder)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         bos_token_id=None)
    Qwen2ForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    _make_readable_by_older_transformers(folder)
    return folder


def _make_readable_by_older_transformers(folder: Path) -> None:
    tok_cfg_path = folder / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text())
    tok_cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok_cfg["chat_template"] = CHATML
    tok_cfg_path.write_text(json.dumps(tok_cfg, indent=2))
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    rope = cfg.get("rope_parameters") or {}
    cfg.setdefault("rope_theta", rope.get("rope_theta", 10000.0))
    cfg.setdefault("rope_scaling", None)
    cfg.setdefault("torch_dtype", cfg.get("dtype", "float32"))
    cfg.setdefault("use_sliding_window", False)
    cfg.setdefault("sliding_window", None)
    cfg.setdefault("max_window_layers", cfg["num_hidden_layers"])
    cfg_path.write_text(json.dumps(cfg, indent=2))


def sft_rows(count: int = 24) -> list[dict]:
    rows = []
    for i in range(count):
        rows.append({"instruction": f"say number {i % 10}", "input": "", "output": f"number {i % 10} yes"})
    return rows


def preference_rows(count: int = 16) -> list[dict]:
    return [{"instruction": f"is {i % 5} good", "chosen": "yes good", "rejected": "no bad"} for i in range(count)]


def kto_rows(count: int = 16) -> list[dict]:
    """Unpaired answers with a thumbs-up or thumbs-down (KTO), varied so no framework merges them."""
    return [{"prompt": f"is {i} good", "completion": f"yes {i} good" if i % 2 else f"no {i} bad", "label": i % 2 == 1}
            for i in range(count)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def parquet_rows(path: Path) -> list[dict]:
    """A translator's Parquet data file as plain rows (null fields left out), to review it like JSON."""
    import pyarrow.parquet as pq

    def drop_nulls(value):
        if isinstance(value, dict):
            return {k: drop_nulls(v) for k, v in value.items() if v is not None}
        return [drop_nulls(v) for v in value] if isinstance(value, list) else value

    return [drop_nulls(row) for row in pq.read_table(path).to_pylist()]


def check_golden(path: Path, text: str) -> None:
    """Compare with a reviewed golden file; `UFT_UPDATE_GOLDEN=1` rewrites it (then review the diff)."""
    import os

    if os.environ.get("UFT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with UFT_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{path} differs; if intended, regenerate and review"


#: Every backend of the project's scope: the integration bake-off runs one spec on all of them.
BAKEOFF_BACKENDS = ("trl", "llamafactory", "swift", "unsloth", "colossalai")
SAME_ROWS = 14  # distinct rows, so which row a sample came from is unambiguous


def same_rows(count: int = SAME_ROWS, start: int = 0) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"hello {i} one two"},
                          {"role": "assistant", "content": f"answer {i} yes " + "good " * (i % 4)}]}
            for i in range(start, start + count)]


def same_spec(folder: Path, tiny_model: Path, **changes) -> Path:
    """3 optimizer steps of 2 x 2 samples, warmup, cosine, seed 7; evaluated on 4 held-out chats."""
    write_jsonl(folder / "chats.jsonl", same_rows())
    write_jsonl(folder / "held_out.jsonl", same_rows(4, start=100))
    spec = {"name": "same", "model": {"path": str(tiny_model)}, "template": "chatml",
            "adapter": {"type": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
            "data": {"train": [{"path": "chats.jsonl", "format": "messages"}], "max_length": 64,
                     "eval": {"path": "held_out.jsonl", "format": "messages"}},
            "training": {"max_steps": 3, "per_device_batch_size": 2, "gradient_accumulation_steps": 2,
                         "learning_rate": 1.0e-3, "warmup_ratio": 0.34, "seed": 7, "weight_decay": 0.01},
            "evaluation": {"max_new_tokens": 8, "compare_base": False}, **changes}
    path = folder / "same.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
