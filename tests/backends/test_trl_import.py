import pytest

from backends.trl.importer import ARGUMENTS, import_trl
from unified_ft.errors import SpecError


def test_arguments_json_has_trl_defaults():
    sft = ARGUMENTS["trainers"]["sft"]
    assert sft["learning_rate"] == 2e-5 and sft["max_length"] == 1024
    assert ARGUMENTS["model"]["lora_r"] == 16 and ARGUMENTS["trl_version"]


def test_import_sft_yaml_writes_trl_defaults(tmp_path):
    cfg = tmp_path / "sft.yaml"
    cfg.write_text("model_name_or_path: Qwen/Qwen2-0.5B\ndataset_name: trl-lib/Capybara\nuse_peft: true\n"
                   "output_dir: out\nlearning_rate: 1.0e-4\n")
    result = import_trl(cfg)
    spec = result.spec
    assert spec["model"]["path"] == "Qwen/Qwen2-0.5B"
    assert spec["adapter"]["r"] == 16 and spec["adapter"]["alpha"] == 32
    assert spec["training"]["learning_rate"] == 1e-4 and spec["training"]["per_device_batch_size"] == 8
    assert spec["data"]["train"][0]["hub"] == "trl-lib/Capybara" and spec["data"]["max_length"] == 1024
    assert result.counts()


def test_unknown_key_is_marked_not_dropped(tmp_path):
    cfg = tmp_path / "sft.yaml"
    cfg.write_text("model_name_or_path: m\ndataset_name: d/x\nlearnig_rate: 1.0\n")
    result = import_trl(cfg)
    assert "learnig_rate" in str(result.rows())


def test_no_dataset_is_a_clear_error(tmp_path):
    cfg = tmp_path / "sft.yaml"
    cfg.write_text("model_name_or_path: m\n")
    with pytest.raises(SpecError, match="no dataset"):
        import_trl(cfg)


EXAMPLES = __import__("pathlib").Path(__file__).parent / "trl_examples"


@pytest.mark.parametrize("name", sorted(__import__("yaml").safe_load((EXAMPLES / "MANIFEST.yaml").read_text())))
def test_upstream_example(name):
    expect = __import__("yaml").safe_load((EXAMPLES / "MANIFEST.yaml").read_text())[name]["expect"]
    if expect == "ok":
        result = import_trl(EXAMPLES / name)
        assert result.spec["model"]["path"] and result.counts()
        print(name, result.counts())
    else:
        with pytest.raises(SpecError, match=expect):
            import_trl(EXAMPLES / name)


def test_imported_spec_validates(tmp_path):
    from unified_ft.specfile import validate_spec_dict

    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model_name_or_path: Qwen/Qwen2-0.5B\ndataset_name: {data.name}\nuse_peft: true\n")
    spec = validate_spec_dict(import_trl(cfg).spec)
    assert spec.adapter.r == 16 and spec.training.learning_rate == 2e-5
    assert spec.data.train[0].path == str(data.resolve())
