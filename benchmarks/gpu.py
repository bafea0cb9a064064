"""Throughput, memory and MFU per backend on a model of a real shape, on a GPU machine with no model hub.

The model has Qwen2.5-0.5B's shape (the values of its config.json are written below), randomly initialised;
its tokenizer is a byte-level BPE trained on the fly; the data is generated. So nothing is downloaded, and
the figures are those of the real architecture (the loss is not meaningful: the weights are random). The
job is a LoRA SFT in bf16, evaluation off, run by `uft bakeoff` across the backends; tokens/s, peak GPU
memory and MFU are read from its bakeoff.json (`unified_ft.comparison.BakeoffResult`).

    python benchmarks/gpu.py [--backends trl,llamafactory,swift,unsloth,colossalai] [--adapter lora|qlora]
                             [--steps 60] [--repeats 1] [-o DIR]
    python benchmarks/gpu.py --dry-run      # write the spec and data, print the command; no GPU needed

Without CUDA it refuses (exit 2) unless --dry-run.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, table, uft_command, write_spec  # noqa: E402

#: Qwen2.5-0.5B(-Instruct)'s config.json, the values that set its shape and numerics (token ids come from the
#: tokenizer trained here). 494M parameters, 24 layers, GQA with 2 KV heads, tied embeddings.
QWEN2_5_0_5B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "max_window_layers": 21,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "use_sliding_window": False,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
    "hidden_act": "silu",
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
}
TOKENIZER_VOCAB = 8192
WORDS = ("model data train token layer batch step loss answer question summary report weight memory speed graph "  # noqa: SIM905
         "city river mountain north south east west red green blue small large quick slow bright dark").split()


def build_model(folder: Path) -> Path:
    """A tokenizer trained on generated text and a random model of Qwen2.5-0.5B's shape, saved to `folder`."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures import _make_readable_by_older_transformers, train_tokenizer

    fast = train_tokenizer((text for row in rows(4000, seed=1) for text in row.values()), TOKENIZER_VOCAB, folder)
    torch.manual_seed(0)
    config = Qwen2Config(**QWEN2_5_0_5B, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         bos_token_id=None, torch_dtype="bfloat16")
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    _make_readable_by_older_transformers(folder)
    return folder


def rows(count: int, seed: int = 0, words: int = 180) -> list[dict[str, str]]:
    """Alpaca rows of a few hundred tokens each: long enough that the GPU, not the loop around it, is timed."""
    rng = random.Random(seed)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    return [{"instruction": f"Summarise report {i}: {text(words // 2)}", "input": "", "output": text(words // 2)}
            for i in range(count)]


#: The adapters compared: LoRA on the bf16 base, or QLoRA (4-bit NF4 base, bitsandbytes) where a backend has it.
ADAPTERS = {"lora": {"type": "lora", "r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
            "qlora": {"type": "qlora", "bits": 4, "r": 16, "alpha": 32, "dropout": 0.0,
                      "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}}
ALL_BACKENDS = "trl,llamafactory,swift,unsloth,colossalai"


def prepare(work: Path, steps: int, build: bool, adapter: str = "lora") -> Path:
    """The data, the model (unless a dry run) and the spec; returns the spec's path."""
    work.mkdir(parents=True, exist_ok=True)
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows(steps * 8 + 64)), encoding="utf-8")
    model = build_model(work / "model") if build else work / "model"
    return write_spec(work, model, "gpu-bench", data, steps=steps,
                      adapter=ADAPTERS[adapter],
                      data={"train": [{"path": str(data), "format": "alpaca"}], "max_length": 1024},
                      training={"max_steps": steps, "learning_rate": 1.0e-4, "per_device_batch_size": 8,
                                "gradient_accumulation_steps": 1, "precision": "bf16", "logging_steps": 5,
                                "seed": 42})


def has_cuda() -> tuple[bool, str]:
    """Whether torch sees a CUDA device here, and its name or why not."""
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} sees no CUDA device"
    return True, torch.cuda.get_device_name(0)


def summary(result: dict[str, Any]) -> list[list[object]]:
    """One row per backend from bakeoff.json: tokens/s, peak memory, MFU (means over the repeats)."""
    def mean(stat: dict[str, Any] | None, scale: float = 1.0, fmt: str = "{:,.0f}") -> str:
        value = (stat or {}).get("mean")
        return "-" if value is None else fmt.format(value * scale)

    out = []
    for r in result["results"]:
        m = r.get("measurements") or {}
        out.append([r["backend"], r["status"], mean(m.get("tokens_per_s")), mean(m.get("supervised_tokens_per_s")),
                    mean(m.get("peak_memory_mb")), mean(m.get("peak_reserved_mb")),
                    mean(m.get("mfu"), 100, "{:.1f}%"), mean(m.get("train_s"), 1, "{:.1f}")])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=ALL_BACKENDS)
    parser.add_argument("--adapter", choices=sorted(ADAPTERS), default="lora",
                        help="qlora: a 4-bit base (uft bakeoff refuses a backend that has no QLoRA, naming it)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("-o", "--out", type=Path, default=Path("gpu-bench"),
                        help="work folder: model, data, spec; the bake-off goes to OUT/bakeoff (must not exist)")
    parser.add_argument("--dry-run", action="store_true", help="write the spec and data, print the command, exit")
    args = parser.parse_args(argv)
    command = ["bakeoff", str(args.out / "gpu-bench.yaml"), "--backends", args.backends,
               "--repeats", str(args.repeats), "-o", str(args.out / "bakeoff")]
    if args.dry_run:
        spec = prepare(args.out, args.steps, build=False, adapter=args.adapter)
        print(f"spec: {spec}\nmodel: built at {args.out / 'model'} on the real run (Qwen2.5-0.5B shape, "
              f"{QWEN2_5_0_5B['num_hidden_layers']} layers)\nwould run: uft {' '.join(command)}")
        return 0
    cuda, device = has_cuda()
    if not cuda:
        print(f"benchmarks/gpu.py needs a CUDA GPU: {device}. Run it on a GPU machine, or use --dry-run to "
              "see what it would do.", file=sys.stderr)
        return 2
    if (args.out / "bakeoff").exists():
        print(f"{args.out / 'bakeoff'} exists; choose another -o (a bake-off is never overwritten)", file=sys.stderr)
        return 2
    prepare(args.out, args.steps, build=True, adapter=args.adapter)
    print(f"on {device}: uft {' '.join(command)}", flush=True)
    done = subprocess.run(uft_command(*command))
    report = args.out / "bakeoff" / "bakeoff.json"
    if not report.is_file():
        print(f"uft bakeoff wrote no {report} (exit {done.returncode})", file=sys.stderr)
        return 1
    result = json.loads(report.read_text(encoding="utf-8"))
    print(f"\nQwen2.5-0.5B shape, {args.adapter} r16 bf16, {args.steps} steps, batch 8 x 1024 max tokens, on {device}")
    print(table(["backend", "status", "tokens/s", "supervised tok/s", "peak alloc MB", "peak reserved MB", "MFU",
                 "train s"], summary(result)))
    return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
