"""Loading a base model the same way everywhere: training runners, the shared evaluation and export.

This file imports nothing from uft (torch and transformers only, lazily): backend translators copy it
beside their runner program, which runs inside the framework's own environment.
"""

from __future__ import annotations

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def model_config(spec, head: str = "causal_lm") -> dict:
    """The plain-dict description of a spec's base model (what `load_model` and native configs take)."""
    return {
        "name_or_path": spec.model.path,
        "gguf_file": spec.model.gguf_file,
        "revision": spec.model.revision,
        "trust_remote_code": spec.model.trust_remote_code,
        "dtype": weights_dtype(spec),
        "head": head,
    }


def weights_dtype(spec) -> str:
    """The base weights' dtype: the precision's, except float32 for fp16 when the model's own weights train
    (fp16 mixed precision cannot unscale float16 gradients; LLaMA-Factory and ms-swift keep them float32 too)."""
    if spec.training.precision == "fp16" and spec.adapter.type in ("full", "freeze"):
        return "float32"
    return _DTYPES.get(spec.training.precision, "float32")


def dtype_keyword(version: str | None = None) -> str:
    """from_pretrained's name for the weights' dtype: `dtype` from transformers 4.56 on, `torch_dtype` before (the
    backends pin releases from 4.51 on: ColossalAI's 4.51 knows only `torch_dtype`)."""
    if version is None:
        import transformers

        version = transformers.__version__
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit()) if part else ""
        parts.append(int(digits or 0))
    return "dtype" if tuple(parts) >= (4, 56) else "torch_dtype"


def _common_kwargs(model_cfg: dict) -> dict:
    common = {"trust_remote_code": bool(model_cfg.get("trust_remote_code", False))}
    if model_cfg.get("revision"):
        common["revision"] = model_cfg["revision"]
    if model_cfg.get("gguf_file"):
        common["gguf_file"] = model_cfg["gguf_file"]
    return common


def load_tokenizer(model_cfg: dict, chat_template: str | None = None):
    """The base model's tokenizer, with `chat_template` installed when given and a pad token set."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_cfg["name_or_path"], **_common_kwargs(model_cfg))
    if chat_template:
        tokenizer.chat_template = chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_cfg: dict, quant: dict | None = None, chat_template: str | None = None):
    """Tokenizer and model as described by `model_cfg` (see `model_config`); GGUF checkpoints come back as
    plain trainable, saveable models; `chat_template` replaces the tokenizer's own when given."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    common = _common_kwargs(model_cfg)
    tokenizer = load_tokenizer(model_cfg, chat_template)
    dtype = getattr(torch, model_cfg.get("dtype", "float32"))
    kwargs = dict(common, **{dtype_keyword(): dtype})
    if quant:
        from transformers import BitsAndBytesConfig

        if quant["bits"] == 4:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
                bnb_4bit_use_double_quant=True)
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    if model_cfg.get("head") == "sequence_classification":  # reward models score a sequence
        model = AutoModelForSequenceClassification.from_pretrained(model_cfg["name_or_path"], num_labels=1, **kwargs)
        pad = tokenizer.pad_token_id if tokenizer.pad_token is not None else tokenizer.eos_token_id
        model.config.pad_token_id = pad
    else:
        model = AutoModelForCausalLM.from_pretrained(model_cfg["name_or_path"], **kwargs)
    if model_cfg.get("gguf_file"):
        model = dequantized_copy(model)
    return tokenizer, model


def dequantized_copy(model):
    """A GGUF checkpoint is dequantized on load but stays marked as quantized, which the Trainer refuses to
    train and `save_pretrained` refuses to save; rebuild a plain model from its config and weights."""
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(model)(config).to(model.dtype)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"GGUF weights do not match the model: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    return plain
