"""The axolotl backend, eject-only: `uft translate SPEC --backend axolotl -o DIR` writes an axolotl config.

uft does not run axolotl (no environment, no runner, no collection): it writes what an axolotl user would
write, `config.yaml` in axolotl's own config language (followed from axolotl 0.18.0's pydantic
schemas, src/axolotl/utils/schemas/), the prepared data it points at and a `train.sh`, so that
`cd DIR && axolotl train config.yaml` trains the spec's job with axolotl alone. `uft run` and `uft bakeoff`
refuse it with one message (see `EJECT_ONLY`).

Every setting is explicit, because axolotl's defaults differ from the other frameworks': bf16 and tf32
`auto`, the fused AdamW, rows longer than sequence_len dropped (not truncated), a checkpoint every epoch,
datasets shuffled after loading and a random sampler. The data is uft's prepared canonical records as
Parquet (as for LLaMA-Factory and ms-swift: axolotl loads JSON through `datasets`, whose pyarrow reader
turns an all-date column into timestamps), in the dataset `type` axolotl's own prompt strategies take:
`chat_template` (messages) for sft, `completion` (text) for pt, `chat_template.default` (prompt messages,
chosen, rejected) for dpo and simpo, `chat_template.argilla` (system, chosen and rejected conversations) for
orpo, `chatml.prompt_pairs` (prompt, completion, label) for kto. The chat
template is uft's own Jinja text (`chat_template: jinja`), so the same template name renders the same
tokens as on every other backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from unified_ft.errors import CapabilityError, Problem, SpecError, UftError
from unified_ft.hf_trainer import record_shapes, resolved_precision
from unified_ft.parquet import write_present_columns
from unified_ft.plugin import (
    AUTO_PRECISION,
    NATIVE,
    BackendBase,
    Capability,
    EnvStatus,
    ImportResult,
    NativeJob,
    RunOutputs,
    distributed_capabilities,
    importer_options,
    loss_type_capabilities,
    merge_passthrough,
    override_notes,
)
from unified_ft.redact import redact_data
from unified_ft.runs import read_jsonl
from unified_ft.spec import LORAPLUS_LR_EMBEDDING, LOSS_TYPES, TEMPLATE_NAMES, JobSpec, LoraFamilyAdapter
from unified_ft.templates import chat_template_text

#: The axolotl release whose config language this translator follows (its schemas at tag v0.18.0).
AXOLOTL_VERSION = "0.18.0"
#: trl as axolotl 0.18.0 pins it: the DPO and KTO losses come from its configs.
AXOLOTL_TRL = "trl 1.8"
DATA_FILE = "data/train.parquet"
OUTPUT_DIR = "./output"
#: What to do instead of `uft run` / `uft bakeoff` on axolotl (the refusal says it is eject-only).
EJECT_ONLY = ("translate it with `uft translate SPEC --backend axolotl -o DIR` and train it with `axolotl train "
              f"config.yaml` in DIR (axolotl {AXOLOTL_VERSION} installed, outside uft), or pick a backend uft runs "
              "(`uft backends`)")
#: uft's DPO-style methods -> axolotl's `rl` value.
RL_TYPES = {"dpo": "dpo", "simpo": "simpo", "orpo": "orpo", "kto": "kto"}
#: The one KTO prompt format of axolotl that takes canonical single-turn rows and renders uft's chatml.
KTO_TYPE = "chatml.prompt_pairs"
KTO_TEMPLATES = ("chatml",)
#: axolotl's ORPO type that renders uft's template: chosen and rejected as whole user/assistant conversations.
ORPO_TYPE = "chat_template.argilla"
#: Keys uft writes that backend_options.axolotl may override (with a note in the plan), each with why.
OVERRIDABLE = {"attn_implementation": "uft packs with sdpa, which isolates packed samples on any machine; "
                                      "flash_attention_2 does too, on a GPU with flash-attn",
              "tf32": "uft trains without TF32 matmuls on every backend; axolotl's tf32 trades matmul precision "
                      "for speed on GPUs that have it"}
_GPU = Capability("native", "bitsandbytes needs CUDA", needs_gpu=True)
_NOT_YET = "not translated by uft yet"
_MESSAGES = [{"role": "string", "content": "string"}]
#: Column types of the data file per dataset type: messages as lists of role/content, KTO's as text.
COLUMN_TYPES = {"messages": _MESSAGES, "tools": "string", "text": "string", "prompt": _MESSAGES,
                "chosen": _MESSAGES, "rejected": _MESSAGES}
KTO_COLUMN_TYPES = {"prompt": "string", "completion": "string", "label": "bool", "system": "string"}
ORPO_COLUMN_TYPES = {"system": "string", "chosen": _MESSAGES, "rejected": _MESSAGES}

CAPABILITIES: dict[str, Capability] = {
    "method.sft": Capability("native", "dataset type chat_template"),
    "method.pt": Capability("emulated", "dataset type completion, which splits a text longer than data.max_length "
                            "into several samples of sequence_len tokens instead of cutting it off"),
    "method.dpo": Capability("native", "rl: dpo, dataset type chat_template.default"),
    "method.simpo": Capability("native", "rl: simpo (trl's CPO trainer with loss simpo)"),
    "method.kto": Capability("native", f"rl: kto, dataset type {KTO_TYPE}: template chatml, one user turn per "
                             "prompt; preference pairs become unpaired rows with label true/false"),
    "method.orpo": Capability("native", f"rl: orpo, dataset type {ORPO_TYPE}: prompts alternate user and "
                              "assistant turns (after an optional system prompt)"),
    "method.cpo": Capability("unsupported", "axolotl has no rl: cpo (its CPO trainer runs only simpo)"),
    "method.rm": Capability("unsupported", f"{_NOT_YET} (axolotl's reward_model with bradley_terry datasets)"),
    "method.ppo": Capability("unsupported", "axolotl has no PPO trainer"),
    "method.grpo": Capability("unsupported", "needs reward functions, which the spec does not model yet"),
    "adapter.lora": NATIVE, "adapter.full": NATIVE,
    "adapter.dora": Capability("native", "peft_use_dora"),
    "adapter.qlora": Capability("native", "load_in_4bit (adapter qlora) or load_in_8bit (adapter lora); "
                                "bitsandbytes needs CUDA", needs_gpu=True),
    "adapter.rslora": Capability("native", "peft_use_rslora"),
    "adapter.loraplus": Capability("native", "loraplus_lr_ratio"),
    "adapter.pissa": Capability("unsupported", "axolotl saves a PiSSA adapter unconverted, so it fits only the "
                                "decomposed base weights, not the original model"),
    "adapter.freeze": Capability("unsupported", f"{_NOT_YET}: axolotl freezes layers through unfrozen_parameters "
                                 "regexes over the model's parameter names"),
    **{f"adapter.{a}": Capability("unsupported", "axolotl has no prompt-learning adapters")
       for a in ("prefix", "prompt", "p_tuning")},
    **{f"optimizer.{o}": NATIVE for o in ("adamw_torch", "sgd", "adafactor")},
    "optimizer.adamw_8bit": _GPU, "optimizer.paged_adamw_8bit": _GPU,
    "precision.fp32": NATIVE, "precision.bf16": NATIVE, "precision.auto": AUTO_PRECISION,
    "precision.fp16": Capability("native", "mixed precision fp16 needs CUDA", needs_gpu=True),
    **{f"scheduler.{s}": NATIVE for s in ("linear", "cosine", "constant", "constant_with_warmup")},
    **{f"template.{t}": Capability("native", "chat_template: jinja with uft's template text")
       for t in TEMPLATE_NAMES if t != "model"},
    "template.model": Capability("native", "chat_template: tokenizer_default"),
    "template.jinja": Capability("native", "chat_template: jinja"),
    "data.packing": Capability("native", "sample_packing, sequentially in uft's row order, with sdpa's "
                               "block-diagonal mask"),
    "data.train_on_prompt": Capability("emulated", "train_on_inputs: axolotl supervises every turn's text and end "
                                       "token, not the chat template's role headers"),
    "data.mixing": Capability("native", "mixed by uft's data step before axolotl sees it"),
    "training.gradient_checkpointing": NATIVE,
    "report_to.tensorboard": Capability("native", "use_tensorboard"),
    "report_to.wandb": Capability("native", "use_wandb"),
    "model.trust_remote_code": NATIVE,
    "model.gguf": Capability("unsupported", "axolotl cannot read GGUF; give the safetensors model it came from"),
    **loss_type_capabilities({"dpo": tuple(x for x in LOSS_TYPES["dpo"] if x != "kto_pair"), "kto": ("kto",)},
                             f"axolotl {AXOLOTL_VERSION} ({AXOLOTL_TRL})"),
    # axolotl launches several processes itself (`axolotl train --launcher torchrun|accelerate`, fsdp_config,
    # deepspeed); the ejected config is one process's until uft writes those keys.
    **distributed_capabilities("axolotl", {}, ("ddp", "fsdp2", "deepspeed", "multi_node", "elastic")),
}
CAPABILITIES["loss_type.kto.apo_zero_unpaired"] = Capability(
    "unsupported", f"axolotl {AXOLOTL_VERSION} has no setting for KTO's loss type (it always trains loss kto)")

#: Notes every plan on this backend shows: what axolotl does that the spec cannot stop.
PREFERENCE_ORDER_NOTE = ("axolotl's preference trainers (trl's DPO, ORPO, CPO and KTO trainers) draw the rows in a "
                         "random order seeded by training.seed; uft's row order (data.shuffle) is kept for sft and "
                         "pt only")


class AxolotlBackend(BackendBase):
    """axolotl 0.18.0, eject-only: `translate` writes its config; uft never runs it."""

    name = "axolotl"
    capabilities = CAPABILITIES
    #: `uft run` and `uft bakeoff` refuse an eject-only backend with this message (see launch.refuse_eject_only).
    eject_only = EJECT_ONLY

    def import_native(self, path: Path, **options: Any) -> ImportResult:
        """An axolotl YAML (`axolotl train config.yml`) as a spec: the way back from axolotl."""
        from .importer import import_axolotl

        importer_options(self.name, options)
        return import_axolotl(path)

    def environment(self) -> EnvStatus:
        """Never ready: uft has no axolotl environment, by design; translate needs none."""
        return EnvStatus(False, f"uft writes axolotl {AXOLOTL_VERSION} configs (no environment needed) and never "
                         "runs axolotl",
                         install_hint="uft translate SPEC --backend axolotl -o DIR, then `axolotl train config.yaml` "
                         "in DIR")

    def notes(self, spec: JobSpec) -> list[str]:
        """Refuses (CapabilityError) what no single capability says (a combination, a value axolotl's schema
        cannot hold); else the plan's notes: axolotl's preference trainers reorder rows, declared overrides."""
        problems = spec_problems(spec)
        if problems:
            raise CapabilityError(f"The spec asks for what backend {self.name} cannot do", problems)
        notes = [PREFERENCE_ORDER_NOTE] if spec.method.name in RL_TYPES else []
        uft_values = {"tf32": False, **({"attn_implementation": "sdpa"} if spec.data.packing else {})}
        return notes + override_notes(spec, self.name, uft_values, OVERRIDABLE)

    def translate(self, spec: JobSpec, data: Any, out_dir: Path) -> NativeJob:
        """Write config.yaml, data/train.parquet, train.sh and README.md into `out_dir`."""
        problems = spec_problems(spec)
        if problems:
            raise CapabilityError(f"The spec asks for what backend {self.name} cannot do", problems)
        config = native_config(spec)
        (out_dir / "data").mkdir(parents=True, exist_ok=True)
        train_file = out_dir / DATA_FILE
        types = {"kto": KTO_COLUMN_TYPES, "orpo": ORPO_COLUMN_TYPES}.get(spec.method.name, COLUMN_TYPES)
        write_present_columns(train_file, lambda: axolotl_rows(spec, Path(data.train_path)), types)
        config_path = out_dir / "config.yaml"
        header = (f"# axolotl {AXOLOTL_VERSION} config written by uft for spec {spec.name!r}.\n"
                  "# Run it with axolotl alone, in this folder: axolotl train config.yaml\n")
        config_path.write_text(header + yaml.safe_dump(redact_data(config), sort_keys=False, allow_unicode=True,
                                                       width=1 << 16), encoding="utf-8")
        script = out_dir / "train.sh"
        script.write_text("#!/usr/bin/env bash\n# axolotl job written by uft: run it in this folder.\nset -euo "
                          "pipefail\ncd \"$(dirname \"$0\")\"\naxolotl train config.yaml\n", encoding="utf-8")
        script.chmod(0o755)
        readme = out_dir / "README.md"
        readme.write_text(_readme(spec), encoding="utf-8")
        return NativeJob(native_dir=out_dir, files=[train_file, config_path, script, readme],
                         argv=["axolotl", "train", "config.yaml"], cwd=out_dir)

    def check(self, job: NativeJob) -> None:
        """uft has no axolotl environment to check with: axolotl's own check is `axolotl preprocess`."""
        raise UftError("backend axolotl is eject-only in uft: there is no axolotl environment to check with\n"
                       f"    fix: check it with axolotl itself: cd {job.native_dir} && axolotl preprocess config.yaml "
                       "(it validates the config and tokenizes the data without training)")

    def progress(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """uft never runs axolotl, so there is no progress to read."""
        return None

    def collect(self, run_dir: Path, job: NativeJob) -> RunOutputs:
        """uft never runs axolotl, so there is nothing to collect."""
        raise UftError(f"backend axolotl is eject-only in uft: uft never runs it\n    fix: {EJECT_ONLY}")


def spec_problems(spec: JobSpec) -> list[Problem]:
    """What axolotl cannot take that the capability table cannot say: a combination or a value."""
    problems = []
    a, method = spec.adapter, spec.method.name
    if method == "kto" and spec.template.name not in KTO_TEMPLATES:
        problems.append(Problem(f"template: {spec.template.name}", f"backend axolotl takes method kto only with "
                                f"template chatml (its {KTO_TYPE} type renders ChatML prompts, with no default "
                                "system prompt)", "use template chatml (with template.system for a fixed system "
                                "prompt, e.g. qwen's 'You are a helpful assistant.'), or the trl backend"))
    if isinstance(a, LoraFamilyAdapter) and a.alpha != int(a.alpha):
        problems.append(Problem("adapter.alpha", f"axolotl {AXOLOTL_VERSION} takes a whole-number lora_alpha, "
                                f"not {a.alpha}", f"use a whole number (e.g. {round(a.alpha)})"))
    return problems


def native_config(spec: JobSpec) -> dict[str, Any]:
    """axolotl's config.yaml for a spec: every setting explicit, in axolotl's own key names."""
    config: dict[str, Any] = {**_model(spec), **_adapter(spec), **_method(spec), **_data(spec), **_training(spec)}
    merge_passthrough(spec, "axolotl", config, OVERRIDABLE)
    return config


def _model(spec: JobSpec) -> dict[str, Any]:
    m = spec.model
    config: dict[str, Any] = {"base_model": m.path, "tokenizer_config": m.path,
                              "trust_remote_code": m.trust_remote_code}
    if m.revision:
        config["revision_of_model"] = m.revision
    return config


def _adapter(spec: JobSpec) -> dict[str, Any]:
    """lora/dora/qlora as axolotl's adapter keys; full fine-tuning is no adapter at all."""
    a = spec.adapter
    if not isinstance(a, LoraFamilyAdapter):
        return {"load_in_8bit": False, "load_in_4bit": False}
    bits = a.bits if a.type == "qlora" else None
    config: dict[str, Any] = {
        "adapter": "qlora" if bits == 4 else "lora",
        "load_in_8bit": bits == 8,
        "load_in_4bit": bits == 4,
        "lora_r": a.r,
        "lora_alpha": int(a.alpha),
        "lora_dropout": a.dropout,
    }
    if a.target_modules == "all-linear":
        config["lora_target_linear"] = True
    else:
        config.update({"lora_target_linear": False, "lora_target_modules": list(a.target_modules)})
    config.update({"peft_use_dora": a.use_dora, "peft_use_rslora": a.rslora})
    if a.loraplus_lr_ratio is not None:
        config.update({"loraplus_lr_ratio": a.loraplus_lr_ratio, "loraplus_lr_embedding": LORAPLUS_LR_EMBEDDING})
    return config


def _method(spec: JobSpec) -> dict[str, Any]:
    """The preference methods as axolotl's `rl` keys (sft and pt need none)."""
    method = spec.method
    if method.name not in RL_TYPES:
        return {}
    # trl's preference trainers read the prompt/chosen/rejected (or label) columns; axolotl requires it for kto
    config: dict[str, Any] = {"rl": RL_TYPES[method.name], "rl_beta": method.beta, "remove_unused_columns": False}
    if method.name == "dpo":
        config["dpo_loss_type"] = [method.loss_type or "sigmoid"]
    if method.name == "simpo":
        config.update({"simpo_gamma": method.gamma, "cpo_alpha": method.nll_weight})
    return config


def _data(spec: JobSpec) -> dict[str, Any]:
    """The dataset entry, the chat template and how rows become samples: uft's order, truncated at max_length."""
    d, method = spec.data, spec.method.name
    config: dict[str, Any] = {"datasets": [_dataset(spec)]}
    if method != "pt":
        text = chat_template_text(spec)
        config.update({"chat_template": "jinja", "chat_template_jinja": text} if text is not None
                      else {"chat_template": "tokenizer_default"})
    config.update({
        "sequence_len": d.max_length,
        "excess_length_strategy": "truncate",  # axolotl drops longer rows by default; uft truncates them
        "train_on_inputs": d.train_on_prompt,
        "sample_packing": d.packing,
        "val_set_size": 0.0,  # uft evaluates after training, the same way for every backend
        "shuffle_merged_datasets": False,  # the rows' order is uft's (data.shuffle), read as written
        "shuffle_before_merging_datasets": False,
        "curriculum_sampling": True,  # a sequential sampler (sft and pt; trl's preference trainers keep theirs)
    })
    if d.packing:
        config.update({"sample_packing_sequentially": True, "attn_implementation": "sdpa"})
    return config


def _dataset(spec: JobSpec) -> dict[str, Any]:
    """The one dataset entry, in the `type` whose axolotl prompt strategy reads uft's canonical columns."""
    entry: dict[str, Any] = {"path": DATA_FILE, "split": "train"}  # axolotl reads .parquet as Parquet
    method = spec.method.name
    if method == "pt":
        return {**entry, "ds_type": "parquet", "type": "completion", "field": "text"}
    if method == "kto":
        return {**entry, "type": KTO_TYPE}
    if method == "orpo":
        return {**entry, "type": ORPO_TYPE}
    if method in RL_TYPES:
        return {**entry, "type": "chat_template.default", "field_messages": "prompt", "field_chosen": "chosen",
                "field_rejected": "rejected"}
    return {**entry, "ds_type": "parquet", "type": "chat_template", "field_messages": "messages",
            "field_tools": "tools", "message_property_mappings": {"role": "role", "content": "content"},
            "roles_to_train": ["assistant"], "train_on_eos": "turn"}


def _training(spec: JobSpec) -> dict[str, Any]:
    """The schedule, optimizer and precision, each explicit (axolotl's own defaults differ)."""
    t, precision = spec.training, resolved_precision(spec)
    config: dict[str, Any] = {"micro_batch_size": t.per_device_batch_size,
                              "gradient_accumulation_steps": t.gradient_accumulation_steps}
    config.update({"max_steps": t.max_steps} if t.max_steps is not None else {"num_epochs": t.epochs})
    config.update({
        "learning_rate": t.learning_rate,
        "lr_scheduler": t.lr_scheduler,
        "warmup_ratio": t.warmup_ratio,
        "optimizer": t.optimizer,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "gradient_checkpointing": t.gradient_checkpointing,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "tf32": False,
        "seed": t.seed,
        "logging_steps": t.logging_steps,
    })
    config.update({"save_steps": t.save_steps} if t.save_steps else {"save_strategy": "no"})  # the end only
    config["output_dir"] = OUTPUT_DIR
    if "tensorboard" in t.report_to:
        config["use_tensorboard"] = True
    if "wandb" in t.report_to:
        config["use_wandb"] = True
    return config


def axolotl_rows(spec: JobSpec, source: Path) -> Iterator[dict[str, Any]]:
    """Canonical records in the columns of the dataset type (see `_dataset`)."""
    for index, (shape, row) in enumerate(record_shapes(spec, read_jsonl(source), "axolotl", source)):
        if shape == "text":
            yield {"text": row["text"]}
        elif shape == "chat":
            yield {"messages": row["messages"], **({"tools": row["tools"]} if row.get("tools") else {})}
        else:
            _no_tools(row, source, index)
            if shape == "unpaired":
                yield _kto_row(row, source, index)
            elif spec.method.name == "orpo":
                yield _orpo_row(row, source, index)
            else:
                yield {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}


def _no_tools(row: dict[str, Any], source: Path, index: int) -> None:
    """axolotl's preference types read messages only: tool definitions would be dropped without a word."""
    if row.get("tools"):
        raise SpecError("axolotl's preference dataset types have no tools column", [Problem(
            f"{source}, row {index + 1}", "a preference row carries tool definitions",
            "use the trl backend for preference rows with tools")])


def _kto_row(row: dict[str, Any], source: Path, index: int) -> dict[str, Any]:
    """One KTO answer as chatml.prompt_pairs takes it: a single user prompt (after an optional system turn) and
    one assistant answer, as text; axolotl renders the ChatML around them."""
    completion = row["completion"]
    system, turns = _split_system(row["prompt"])
    if len(turns) != 1 or turns[0]["role"] != "user" or len(completion) != 1:
        raise SpecError(f"axolotl's {KTO_TYPE} takes one user turn and one answer per KTO row", [Problem(
            f"{source}, row {index + 1}", f"a KTO prompt has {len(turns)} turns after its system prompt "
            f"({', '.join(t['role'] for t in turns)}) and {len(completion)} answer message(s)",
            "use single-turn KTO data with axolotl, or the trl backend for multi-turn prompts")])
    return {"prompt": turns[0]["content"], "completion": completion[0]["content"], "label": row["label"],
            **({"system": system} if system is not None else {})}


def _split_system(prompt: list[dict[str, str]]) -> tuple[str | None, list[dict[str, str]]]:
    """(the system prompt or None, the turns after it)."""
    if prompt and prompt[0]["role"] == "system":
        return prompt[0]["content"], prompt[1:]
    return None, prompt


def _orpo_row(row: dict[str, Any], source: Path, index: int) -> dict[str, Any]:
    """A pair as chat_template.argilla takes it: the system prompt, and chosen and rejected as the whole
    conversation (axolotl reads the prompt back from their user/assistant turns by position)."""
    system, turns = _split_system(row["prompt"])
    roles = [t["role"] for t in turns]
    if roles != ["user", "assistant"] * (len(roles) // 2) + ["user"]:
        raise SpecError(f"axolotl's {ORPO_TYPE} takes prompts of alternating user and assistant turns", [Problem(
            f"{source}, row {index + 1}", f"an ORPO prompt's turns after its system prompt are {', '.join(roles)}",
            "use prompts that alternate user/assistant and end with a user turn, or the trl backend")])
    return {**({"system": system} if system is not None else {}), "chosen": [*turns, *row["chosen"]],
            "rejected": [*turns, *row["rejected"]]}


def _readme(spec: JobSpec) -> str:
    """What the folder is and how to run it, with what axolotl does differently (the plan's notes)."""
    lines = [f"# axolotl job for spec `{spec.name}`", "",
             f"Written by `uft translate --backend axolotl` in axolotl {AXOLOTL_VERSION}'s config language. It "
             "runs with axolotl alone, in this folder:", "",
             "```", "axolotl train config.yaml      # or: bash train.sh", "```", "",
             "- `config.yaml`: every setting explicit (axolotl's defaults differ from uft's).",
             f"- `{DATA_FILE}`: uft's prepared training rows (mixed, sampled, system prompt applied, in uft's "
             "order), as Parquet so that text stays text.",
             f"- `{OUTPUT_DIR}/`: where axolotl saves the trained adapter (or model).", "",
             "uft evaluates after training on its own side, so no eval set is written here (`val_set_size: 0`)."]
    used = {f"method.{spec.method.name}"} | ({"data.train_on_prompt"} if spec.data.train_on_prompt else set())
    caps = [f"- {c.note}" for f, c in sorted(CAPABILITIES.items()) if c.level == "emulated" and f in used]
    if spec.method.name in RL_TYPES:
        caps.append(f"- {PREFERENCE_ORDER_NOTE}.")
    if caps:
        lines += ["", "What axolotl does differently from the spec:", *caps]
    return "\n".join(lines) + "\n"

