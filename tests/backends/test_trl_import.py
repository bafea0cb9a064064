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
    entry = __import__("yaml").safe_load((EXAMPLES / "MANIFEST.yaml").read_text())[name]
    expect, method = entry["expect"], entry.get("method")
    if expect == "ok":
        result = import_trl(EXAMPLES / name, method)
        assert result.spec["model"]["path"] and result.counts() and not result.unknown
        print(name, result.counts())
    else:
        with pytest.raises(SpecError, match=expect) as caught:
            import_trl(EXAMPLES / name, method)
        assert all(p.hint for p in caught.value.problems)


def test_imported_spec_validates(tmp_path):
    from unified_ft.specfile import validate_spec_dict

    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model_name_or_path: Qwen/Qwen2-0.5B\ndataset_name: {data.name}\nuse_peft: true\n")
    spec = validate_spec_dict(import_trl(cfg).spec)
    assert spec.adapter.r == 16 and spec.training.learning_rate == 2e-5
    assert spec.data.train[0].path == str(data.resolve())


def _script(tmp_path, text, name="train.sh"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_trl_defaults_that_differ_from_uft_are_written_out(tmp_path):
    spec = import_trl(_script(tmp_path, "trl sft --model_name_or_path m --dataset_name d/x\n")).spec
    training = spec["training"]
    assert training["precision"] == "bf16"  # trl: bf16 = not fp16
    assert training["gradient_checkpointing"] is True and training["epochs"] == 3.0
    assert training["optimizer"] == "adamw_torch" and training["lr_scheduler"] == "linear"
    assert spec["data"]["train_on_prompt"] is True  # trl's SFT: loss on every token unless assistant_only_loss


def test_flags_override_the_config_yaml(tmp_path):
    (tmp_path / "dpo.yaml").write_text("model_name_or_path: m\ndataset_name: d/x\nlearning_rate: 1e-4\nbeta: 0.3\n")
    script = _script(tmp_path, "#!/bin/bash\nLR=5e-6\n"
                     "trl dpo --config dpo.yaml \\\n  --learning_rate $LR --no_remove_unused_columns\n")
    result = import_trl(script)
    assert result.spec["method"] == {"name": "dpo", "beta": 0.3}
    assert result.spec["training"]["learning_rate"] == 5e-6
    assert result.spec["backend_options"] == {"trl": {"remove_unused_columns": False}}


def test_accelerate_options_are_launch_settings(tmp_path):
    script = _script(tmp_path, "accelerate launch --config_file zero3.yaml --num_processes 8 --multi_gpu \\\n"
                     "  trl/scripts/sft.py --model_name_or_path m --dataset_name d/x --num_train_epochs 2\n")
    result = import_trl(script)
    assert result.spec["method"]["name"] == "sft" and result.spec["training"]["epochs"] == 2.0
    assert {"accelerate --config_file", "accelerate --multi_gpu"} <= set(result.ignored)
    assert ("accelerate --num_processes", "distributed.processes_per_node") in result.mapped
    assert result.spec["distributed"] == {"nodes": 1, "processes_per_node": 8}
    assert any("zero3.yaml" in note for note in result.notes)
    assert any("effective batch of 64" in note for note in result.notes)  # 8 x 1 x 8 processes


def test_several_machines_need_the_main_process_address(tmp_path):
    line = "accelerate launch --num_machines 2 --num_processes 8 {} trl/scripts/sft.py --model_name_or_path m " \
           "--dataset_name d/x\n"
    result = import_trl(_script(tmp_path, line.format("--main_process_ip 10.0.0.1 --main_process_port 29501"), "a.sh"))
    assert result.spec["distributed"] == {"nodes": 2, "processes_per_node": 4,
                                          "rendezvous": {"endpoint": "10.0.0.1:29501"}}
    with pytest.raises(SpecError, match="main_process_ip"):
        import_trl(_script(tmp_path, line.format(""), "b.sh"))
    with pytest.raises(SpecError, match="do not split"):
        import_trl(_script(tmp_path, line.format("--main_process_ip h").replace("8", "7", 1), "c.sh"))


def test_accelerate_mixed_precision_applies_only_where_trl_leaves_it(tmp_path):
    line = "accelerate launch --mixed_precision fp16 examples/scripts/orpo.py --model_name_or_path m --dataset_name d/x"
    off = import_trl(_script(tmp_path, line + " --bf16 false\n", "off.sh"))
    assert off.spec["training"]["precision"] == "fp16"
    assert ("accelerate --mixed_precision", "training.precision") in off.mapped
    on = import_trl(_script(tmp_path, line + "\n", "on.sh"))
    assert on.spec["training"]["precision"] == "bf16" and "accelerate --mixed_precision" in on.ignored


def test_trl_passes_unknown_options_to_accelerate(tmp_path):
    result = import_trl(_script(tmp_path, "trl sft --model_name_or_path m --dataset_name d/x --num_processes 4 "
                                "--dynamo_backend no\n"))
    assert "dynamo_backend" in result.ignored and not result.unknown
    assert ("num_processes", "distributed.processes_per_node") in result.mapped
    assert result.spec["distributed"]["processes_per_node"] == 4


def test_python_module_form_and_reward_method(tmp_path):
    result = import_trl(_script(tmp_path, "python -m trl.scripts.reward --model_name_or_path m --dataset_name d/x "
                                "--use_peft --lora_task_type SEQ_CLS\n"))
    assert result.spec["method"] == {"name": "rm"} and result.spec["adapter"]["type"] == "lora"


def test_warmup_steps_become_a_ratio_only_when_exact(tmp_path):
    exact = import_trl(_script(tmp_path, "trl dpo --model_name_or_path m --dataset_name d/x --max_steps 200 "
                               "--warmup_steps 30\n", "a.sh"))
    assert exact.spec["training"]["warmup_ratio"] == 0.15
    with pytest.raises(SpecError, match="warmup_ratio"):
        import_trl(_script(tmp_path, "trl dpo --model_name_or_path m --dataset_name d/x --warmup_steps 30\n", "b.sh"))


def test_a_command_line_is_told_by_content_whatever_the_suffix(tmp_path):
    result = import_trl(_script(tmp_path, "trl kto --model_name_or_path m --dataset_name d/x\n", "cmd.txt"))
    assert result.spec["method"]["name"] == "kto"


def test_method_for_a_yaml_and_contradiction(tmp_path):
    cfg = _script(tmp_path, "model_name_or_path: m\ndataset_name: d/x\nbeta: 0.2\n", "kto.yaml")
    assert import_trl(cfg, "kto").spec["method"] == {"name": "kto", "beta": 0.2}
    sft = import_trl(cfg)
    assert sft.spec["method"]["name"] == "sft" and any("--method" in n for n in sft.notes)
    with pytest.raises(SpecError, match="contradicts"):
        import_trl(_script(tmp_path, "trl sft --model_name_or_path m --dataset_name d/x\n"), "dpo")


def test_unset_shell_variable_and_unknown_script_are_refused(tmp_path):
    with pytest.raises(SpecError, match=r"\$MODEL is not set"):
        import_trl(_script(tmp_path, "trl sft --model_name_or_path $MODEL --dataset_name d\n", "a.sh"))
    with pytest.raises(SpecError, match="not one of trl's training"):
        import_trl(_script(tmp_path, "python my_train.py --model_name_or_path m\n", "b.sh"))


def test_cli_import_takes_method_for_trl_only(tmp_path):
    from unified_ft.cli import main

    cfg = _script(tmp_path, "model_name_or_path: m\ndataset_name: d/x\n", "c.yaml")
    assert main(["import", "trl", str(cfg), "--method", "dpo", "-o", str(tmp_path / "spec.yaml")]) == 0
    assert "name: dpo" in (tmp_path / "spec.yaml").read_text()
    assert main(["import", "swift", str(cfg), "--method", "dpo", "-o", str(tmp_path / "s.yaml")]) == 2


def test_uft_trl_job_is_recognised(tmp_path):
    import shutil

    job = tmp_path / "job"
    shutil.copytree(__import__("pathlib").Path(__file__).parents[1] / "golden" / "trl" / "dpo-lora", job)
    result = import_trl(job / "config.yaml")
    assert result.spec["name"] == "dpo-lora" and result.spec["method"]["name"] == "dpo"
    assert result.spec["data"]["shuffle"] is False and not result.unknown


def test_dataclass_fields_helper_loads_by_path():
    import dataclasses
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "backends" / "dataclass_fields.py"
    spec = importlib.util.spec_from_file_location("dataclass_fields", path)
    fields = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fields)

    @dataclasses.dataclass
    class Args:
        flag: bool = False
        names: list[str] | None = None
        rate: float = 1e-4
        size: int | None = None
        mode: str = dataclasses.field(default_factory=lambda: "x")

    assert fields.defaults(Args) == {"flag": False, "mode": "x", "names": None, "rate": 1e-4, "size": None}
    assert fields.kinds(Args) == {"flag": "bool", "mode": "str", "names": "list", "rate": "float", "size": "int"}


def test_arguments_json_is_what_the_dump_script_writes():
    """The checked-in table matches trl's installed dataclasses (run where trl is installed)."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("trl")
    import trl

    if trl.__version__ != ARGUMENTS["trl_version"]:
        pytest.skip(f"trl {trl.__version__} installed, the table is for {ARGUMENTS['trl_version']}")
    script = Path(__file__).parents[2] / "backends" / "trl" / "dump_arguments.py"
    written = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True,
                             env={**__import__("os").environ, "TRL_EXPERIMENTAL_SILENCE": "1"}).stdout
    assert __import__("json").loads(written) == ARGUMENTS


def test_trl_cli_mixed_precision_and_script_arguments_without_a_place(tmp_path):
    line = "trl sft --model_name_or_path m --dataset_name d/x --bf16 false --mixed_precision fp16"
    result = import_trl(_script(tmp_path, line + "\n", "a.sh"))
    assert result.spec["training"]["precision"] == "fp16"
    assert ("mixed_precision", "training.precision") in result.mapped and "accelerate --mixed_precision" not in \
        result.ignored
    with pytest.raises(SpecError, match="lora_modules_to_save"):
        import_trl(_script(tmp_path, line + " --use_peft --lora_modules_to_save lm_head\n", "b.sh"))
    with pytest.raises(SpecError, match="dataset mixture"):
        import_trl(_script(tmp_path, "model_name_or_path: m\ndatasets: [{path: d/x}]\ntest_split_size: 0.1\n",
                           "c.yaml"))


def test_the_training_command_is_found_among_others(tmp_path):
    script = _script(tmp_path, "pip install -U trl peft\ncd /work && CUDA_VISIBLE_DEVICES=0,1 /usr/bin/python3 "
                     "trl/scripts/dpo.py --model_name_or_path m --dataset_name d/x --beta 0.2 && echo done\n")
    result = import_trl(script)
    assert result.spec["method"] == {"name": "dpo", "beta": 0.2} and "env CUDA_VISIBLE_DEVICES" in result.ignored
