"""Export a run's result the same way whatever framework trained it: adapter, merged model, or GGUF.

Runs in uft's own environment from the run directory's standard outputs. Every export is written into
a temporary folder beside its destination and renamed into place when complete; an existing export is
never overwritten.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .errors import RunDirError, UftError
from .runs import load_finished_run, read_json
from .spec import JobSpec

KINDS = ("adapter", "merged", "gguf")

Say = Callable[[str], None]


def export_run(run_dir: str | Path, to: str, out: str | Path | None = None, *, gguf_type: str = "f16",
               max_shard_size: str = "2GB", on_progress: Say | None = None) -> Path:
    """Export a finished run; returns the folder written (default: <run_dir>/export/<to>/)."""
    from .evaluate import require_stack

    if to not in KINDS:
        raise UftError(f"unknown export {to!r}; use one of {', '.join(KINDS)}")
    run_dir = Path(run_dir).resolve()
    spec, manifest, trained = load_finished_run(run_dir)
    target = Path(out) if out else run_dir / "export" / to
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RunDirError(f"{target} already exists; exports are never overwritten\n"
                          "    fix: remove it, or give another folder with -o")
    if to == "adapter" and trained.name != "adapter":
        raise UftError(f"{run_dir} trained every weight (adapter.type {spec.adapter.type}); there is no adapter\n"
                       "    fix: export merged (the full model)")
    require_stack()
    say = on_progress or (lambda message: None)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        staging = Path(tmp) / "out"
        staging.mkdir()
        if to == "adapter":
            _export_adapter(spec, trained, staging)
        elif to == "merged":
            _export_merged(spec, trained, staging, max_shard_size, say)
        else:
            _export_gguf(spec, trained, staging, Path(tmp), gguf_type, say)
        (staging / "README.md").write_text(model_card(spec, manifest, run_dir, to), encoding="utf-8")
        if target.exists():
            target.rmdir()  # an empty folder the user named
        staging.rename(target)
    return target


def _export_adapter(spec: JobSpec, adapter: Path, out: Path) -> None:
    """A clean peft folder (config + weights) plus the tokenizer and chat template it was trained with."""
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        if (adapter / name).exists():
            shutil.copy2(adapter / name, out / name)
    _tokenizer(spec).save_pretrained(out)


def _export_merged(spec: JobSpec, trained: Path, out: Path, max_shard_size: str, say: Say) -> None:
    """Adapter merged into the base weights, saved as safetensors shards that transformers and vLLM load."""
    _refuse_quantized_base(spec)
    say("loading the base model")
    model = merged_model(spec, trained)
    say("saving merged safetensors")
    model.save_pretrained(out, safe_serialization=True, max_shard_size=max_shard_size)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)
    _tokenizer(spec).save_pretrained(out)


def merged_model(spec: JobSpec, trained: Path):
    """The tuned model as one plain transformers model (GGUF bases are dequantized and rebuilt)."""
    from transformers import AutoModelForCausalLM

    from .modeling import load_model, model_config

    if trained.name == "model":
        return AutoModelForCausalLM.from_pretrained(trained)
    from peft import PeftModel

    _, base = load_model(model_config(spec))
    return PeftModel.from_pretrained(base, trained).merge_and_unload()


def _export_gguf(spec: JobSpec, trained: Path, out: Path, tmp: Path, gguf_type: str, say: Say) -> None:
    from .gguf import convert

    merged = tmp / "merged"
    merged.mkdir()
    _export_merged(spec, trained, merged, "50GB", say)  # one file: the converter reads it once
    convert(merged, out / f"{spec.name}-{gguf_type}.gguf", gguf_type, spec.name, say)


def _refuse_quantized_base(spec: JobSpec) -> None:
    """Merging into weights that are stored quantized (GPTQ, AWQ, bitsandbytes checkpoints) would round the
    adapter away; GGUF bases are fine because uft dequantizes them on load."""
    if spec.model.gguf_file:
        return
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(spec.model.path, revision=spec.model.revision,
                                        trust_remote_code=spec.model.trust_remote_code)
    quant = getattr(config, "quantization_config", None)
    if quant:
        method = quant.get("quant_method") if isinstance(quant, dict) else getattr(quant, "quant_method", "?")
        raise UftError(f"the base model {spec.model.path} is stored quantized ({method}); merging an adapter into "
                       "quantized weights loses it\n    fix: export the adapter (`--to adapter`), or train on a "
                       "full-precision (dequantized) copy of the base and merge into that")


def _tokenizer(spec: JobSpec):
    from .modeling import load_tokenizer, model_config
    from .templates import chat_template_text

    return load_tokenizer(model_config(spec), chat_template_text(spec))


def model_card(spec: JobSpec, manifest: dict[str, Any], run_dir: Path, kind: str) -> str:
    """README.md of an export: what was trained, on what, how, how it scored, with which versions."""
    a, t, beta = spec.adapter, spec.training, getattr(spec.method, "beta", None)
    eval_path = run_dir / "eval.json"
    report = read_json(eval_path) if eval_path.exists() else None
    lines = [
        "---",
        f"base_model: {spec.model.path if not spec.model.path.startswith('/') else Path(spec.model.path).name}",
        f"library_name: {'peft' if kind == 'adapter' else 'transformers'}",
        "tags: [unified_ft, " + spec.method.name + ", " + a.type + "]",
        "---",
        "",
        f"# {spec.name} ({kind})",
        "",
        f"Fine-tuned with unified_ft {__version__} on the **{manifest.get('backend')}** backend.",
        "",
        "| setting | value |",
        "|---|---|",
        f"| base model | `{spec.model.path}`" + (f" (`{spec.model.gguf_file}`)" if spec.model.gguf_file else "") + " |",
        f"| method | {spec.method.name}" + (f" (beta {beta})" if beta else "") + " |",
        f"| adapter | {a.type}" + (f", r {a.r}, alpha {a.alpha}, dropout {a.dropout}, targets {a.target_modules}"
                                    f"{', rsLoRA' if a.rslora else ''}{', DoRA' if a.use_dora else ''}"
                                    if a.type in ("lora", "qlora", "dora") else "") + " |",
        f"| chat template | {spec.template.name} |",
        f"| schedule | {'max_steps ' + str(t.max_steps) if t.max_steps else str(t.epochs) + ' epoch(s)'}, lr "
        f"{t.learning_rate} ({t.lr_scheduler}), batch {t.per_device_batch_size} x {t.gradient_accumulation_steps}, "
        f"seed {t.seed} |",
        f"| data | {manifest.get('train_rows')} train rows, {manifest.get('eval_rows')} eval rows, sha256 "
        f"`{manifest.get('data_sha256', '')[:16]}…` |",
        f"| spec sha256 | `{manifest.get('spec_sha256', '')[:16]}…` |",
        "",
    ]
    if report:
        lines += ["## Evaluation (uft's shared evaluation)", "", "| metric | base | tuned |", "|---|---|---|"]
        base, tuned = report.get("base") or {}, report["tuned"]
        for name in ("loss", "perplexity"):
            lines.append(f"| {name} | {_num(base.get(name))} | {_num(tuned[name])} |")
        for group in ("metrics", "checks"):
            for name, value in tuned[group].items():
                lines.append(f"| {name} | {_num((base.get(group) or {}).get(name))} | {_num(value)} |")
        lines.append("")
    versions = manifest.get("versions") or {}
    if versions:
        lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in sorted(versions.items())), ""]
    if kind == "merged" and spec.adapter.type == "qlora":
        lines += ["Note: the adapter was trained against a 4/8-bit quantized base and merged into the "
                  "full-precision base weights.", ""]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"

