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


#: well-known hub model names -> the uft template that renders their chat format (checked in that order).
#: Only families whose template uft's registry reproduces; Qwen3 (thinking tags), Mistral (differs by version),
#: Gemma and Phi (differ by generation) are left out on purpose: those need an explicit template.
_MODEL_TEMPLATES = (
    (re.compile(r"(^|/)qwen2\.5", re.IGNORECASE), "qwen2_5"),
    (re.compile(r"(^|/)qwen(1\.5|2)(-|$)", re.IGNORECASE), "qwen"),
    (re.compile(r"(^|/)(meta-)?llama-3", re.IGNORECASE), "llama3"),
)


def template_for_model(model_path: str) -> str | None:
    """The uft template for a well-known model id (e.g. Qwen/Qwen2.5-7B-Instruct -> qwen2_5); None if unknown."""
    return next((name for pattern, name in _MODEL_TEMPLATES if pattern.search(model_path)), None)
