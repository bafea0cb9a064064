"""uft's small registry of chat templates, as Jinja text for backends that take a template string.

Backends with their own template names (LLaMA-Factory, ms-swift) map the registry name to theirs; the
Jinja text here is what backends that take a string (trl) are given, so the same name renders the same
tokens everywhere. `model` means "use the tokenizer's own template" and has no text here.
"""

from __future__ import annotations

import re

from .spec import JobSpec

_CHATML_BODY = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

JINJA_TEMPLATES: dict[str, str] = {
    "chatml": _CHATML_BODY,
    "qwen": (
        "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
        "{% endif %}" + _CHATML_BODY
    ),
    "qwen2_5": (
        "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
        "You are a helpful assistant.<|im_end|>\\n' }}{% endif %}" + _CHATML_BODY
    ),
    "llama3": (
        "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
        "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    ),
    "mistral": (
        "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
        "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
        "{{ message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
        "{% endif %}{% endfor %}"
    ),
    "gemma": (
        "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' "
        "else message['role'] %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + "
        "'<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
    ),
    "phi3": (
        "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    ),
    "alpaca": (
        "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
        "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
        "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
    ),
}


def chat_template_text(spec: JobSpec) -> str | None:
    """The Jinja text a string-taking backend must install, or None to keep the tokenizer's own."""
    if spec.template.name == "model":
        return None
    if spec.template.name == "jinja":
        return spec.template.jinja
    return JINJA_TEMPLATES[spec.template.name]


#: Well-known hub model families -> the uft template that renders the chat format ms-swift and LLaMA-Factory
#: register for them, or None where uft's registry has no template that does (checked in order, first match).
#: (pattern, family, template): families with None are named so an importer can say which family it met.
_MODEL_FAMILIES: tuple[tuple[re.Pattern[str], str, str | None], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), family, template) for pattern, family, template in (
        (r"(^|/)qwen2(\.5)?-(math|vl|audio)|(^|/)qwen2\.5-omni", "Qwen2/2.5 Math, VL, Audio and Omni", None),
        (r"(^|/)qwen2\.5-", "Qwen2.5", "qwen2_5"),  # its default system prompt, "You are Qwen, created by ..."
        (r"(^|/)qwen(1\.5|2)?-", "Qwen, Qwen1.5, Qwen2", "qwen"),  # "You are a helpful assistant."
        (r"(^|/)qwen3-[^/]*instruct-2507", "Qwen3 Instruct-2507", "chatml"),  # no thinking tags, no default system
        (r"(^|/)qwen3", "Qwen3 (thinking tags in its chat template)", None),
        (r"(^|/)qwq", "QwQ (thinking tags)", None),
        (r"(^|/)(meta-)?llama-3-", "Llama-3", "llama3"),
        (r"(^|/)(meta-)?llama-3\.\d", "Llama-3.1/3.2/3.3 (a dated 'Cutting Knowledge Date' system turn)", None),
        (r"(^|/)(meta-)?llama-2", "Llama-2 ([INST] <<SYS>>)", None),
        (r"(^|/)(mistral|mixtral|ministral|codestral)", "Mistral (its format differs by release)", None),
        (r"(^|/)gemma-(1\.1-)?\d+b|(^|/)gemma-2-", "Gemma, Gemma-2", "gemma"),
        (r"(^|/)gemma-3", "Gemma-3 (the system prompt joins the first user turn)", None),
        (r"(^|/)phi-3(\.5)?-[^/]*vision", "Phi-3 vision", None),
        (r"(^|/)phi-3(\.5)?-|(^|/)phi-4-mini-instruct", "Phi-3, Phi-3.5, Phi-4-mini", "phi3"),
        (r"(^|/)phi-4", "Phi-4 (<|im_sep|>)", None),
        (r"(^|/)yi-(1\.5-)?\d+b", "Yi, Yi-1.5", "chatml"),
        (r"(^|/)yi-", "Yi (Coder, VL)", None),
        (r"(^|/)deepseek", "DeepSeek", None),
        (r"(^|/)(chat)?glm", "GLM / ChatGLM", None),
        (r"(^|/)internlm", "InternLM", None),
        (r"(^|/)baichuan", "Baichuan", None),
    ))


def model_family(model_path: str) -> tuple[str, str | None] | None:
    """(family, uft template or None) for a well-known hub model id, or None for a model uft does not recognise."""
    name = model_path.rstrip("/")
    return next(((family, template) for pattern, family, template in _MODEL_FAMILIES if pattern.search(name)), None)


def template_for_model(model_path: str) -> str | None:
    """The uft template for a well-known model id (e.g. Qwen/Qwen2.5-7B-Instruct -> qwen2_5); None if unknown or
    if uft has no template for the model's family."""
    found = model_family(model_path)
    return found[1] if found else None
