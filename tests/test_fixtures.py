"""The tiny fixture model must load in the older transformers that other backends pin (checked by hand with
4.51.3: identical logits); these are the fields that make that work."""

from __future__ import annotations

import json


def test_fixture_writes_fields_older_transformers_need(tiny_model):
    tok_cfg = json.loads((tiny_model / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert "<|im_start|>" in tok_cfg["chat_template"]
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert cfg["rope_theta"] > 0 and cfg["torch_dtype"] == "float32" and cfg["num_hidden_layers"] == 2
