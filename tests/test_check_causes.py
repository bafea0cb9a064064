"""`--check` failures say whether the spec, this machine, the network or a missing package is the cause.

The texts are what the frameworks print (transformers 5.x, huggingface_hub 2.x, datasets, torch, accelerate,
unsloth), as whole tracebacks where the cause sits in a chained exception or a warning printed earlier.
"""

import sys

import pytest

from unified_ft.errors import UftError
from unified_ft.plugin import SPEC_FIX, classify_check_failure, final_error, run_native_check


def traceback(*messages: str, frames: str = 'train.py", line 12, in <module>') -> str:
    """A (chained) traceback ending in each message in turn, as Python prints it."""
    blocks = [f"Traceback (most recent call last):\n  File \"{frames}\n    main()\n    ^^^^^^\n{m}" for m in messages]
    return "\n\nThe above exception was the direct cause of the following exception:\n\n".join(blocks) + "\n"


LOCAL_ENTRY = ("huggingface_hub.errors.LocalEntryNotFoundError: Cannot find the requested files in the disk cache "
               "and outgoing traffic has been disabled. To enable hf.co look-ups and downloads online, set "
               "'local_files_only' to False.")
COULDNT_CONNECT = ("OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them "
                   "in the cached files.\nCheck your internet connection or see how to run the library in offline "
                   "mode at 'https://huggingface.co/docs/transformers/installation#offline-mode'.")
OFFLINE_MODEL = traceback(
    "huggingface_hub.errors.OfflineModeIsEnabled: Cannot access file since 'local_files_only=True' as been set. "
    "(repo_id: Qwen/Qwen2.5-0.5B-Instruct, repo_type: model, revision: main, filename: config.json)",
    LOCAL_ENTRY, COULDNT_CONNECT)

NO_ROUTE = traceback(
    "urllib3.exceptions.MaxRetryError: HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded "
    "with url: /api/models/HuggingFaceTB/SmolLM2-135M/revision/main (Caused by NameResolutionError(\"<urllib3."
    "connection.HTTPSConnection object at 0x7f>: Failed to resolve 'huggingface.co' ([Errno -3] Temporary failure "
    "in name resolution)\"))",
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded "
    "with url: /api/models/HuggingFaceTB/SmolLM2-135M/revision/main")

SNAPSHOT_OFFLINE = traceback(
    "huggingface_hub.errors.LocalEntryNotFoundError: Cannot find an appropriate cached snapshot folder for the "
    "specified revision on the local disk and outgoing traffic has been disabled. To enable repo look-ups and "
    "downloads online, set 'HF_HUB_OFFLINE=0' as environment variable.")

DATASET_OFFLINE = traceback(
    "ConnectionError: Couldn't reach 'tatsu-lab/alpaca' on the Hub (LocalEntryNotFoundError)")

NOT_AN_ID = traceback(
    "huggingface_hub.errors.RepositoryNotFoundError: 401 Client Error. (Request ID: Root=1-6)\n"
    "Repository Not Found for url: https://huggingface.co/Qwen/Qwen2.5-0.5B-Instructt/resolve/main/config.json.",
    "OSError: Qwen/Qwen2.5-0.5B-Instructt is not a local folder and is not a valid model identifier listed on "
    "'https://huggingface.co/models'\nIf this is a private repository, make sure to pass a token having permission "
    "to this repo either by logging in with `hf auth login` or by passing `token=<your_token>`")

# torch warns like this on every CPU host with a CUDA build; the error that follows is the spec's.
TORCH_WARNING = ("/env/lib/python3.11/site-packages/torch/cuda/__init__.py:180: UserWarning: CUDA initialization: "
                 "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed a "
                 "driver from http://www.nvidia.com/Download/index.aspx (Triggered internally at c10/cuda/"
                 "CUDAFunctions.cpp:109.)\n  return torch._C._cuda_getDeviceCount() > 0\n")


@pytest.mark.parametrize("text", [OFFLINE_MODEL, SNAPSHOT_OFFLINE, NO_ROUTE])
def test_an_unreachable_hub_is_the_network_not_the_spec(text):
    why = classify_check_failure(text, "llamafactory")
    assert why.kind == "network"
    assert "cannot be reached" in why.cause and "correct the spec" not in why.fix
    assert "give its local path in model.path" in why.fix


def test_the_model_id_is_named_from_a_chained_exception():
    why = classify_check_failure(OFFLINE_MODEL, "trl")
    assert "'Qwen/Qwen2.5-0.5B-Instruct'" in why.cause
    assert "`hf download Qwen/Qwen2.5-0.5B-Instruct`" in why.fix
    why = classify_check_failure(NO_ROUTE, "trl")
    assert "'HuggingFaceTB/SmolLM2-135M'" in why.cause


def test_transformers_offline_error_without_an_id_is_the_model():
    """What `AutoConfig.from_pretrained(id)` prints with HF_HUB_OFFLINE=1 (transformers 5.24): no id anywhere."""
    why = classify_check_failure(traceback(LOCAL_ENTRY, COULDNT_CONNECT), "trl")
    assert why.kind == "network" and why.cause.startswith("the model in model.path is not in the local cache")


def test_an_offline_snapshot_without_an_id_says_so():
    why = classify_check_failure(SNAPSHOT_OFFLINE, "swift")
    assert why.kind == "network" and "a model or dataset" in why.cause and "hf download <id>" in why.fix


def test_a_dataset_out_of_reach_is_named_as_a_dataset():
    why = classify_check_failure(DATASET_OFFLINE, "swift")
    assert why.kind == "network" and "the dataset 'tatsu-lab/alpaca'" in why.cause
    assert "--repo-type dataset" in why.fix and "data.train[].path" in why.fix


def test_an_id_the_hub_does_not_have_is_named():
    why = classify_check_failure(NOT_AN_ID, "unsloth")
    assert why.kind == "network"
    assert "the model 'Qwen/Qwen2.5-0.5B-Instructt' is neither a local folder nor found" in why.cause
    assert why.fix.startswith("correct the id") and "HF_TOKEN" in why.fix


@pytest.mark.parametrize(("text", "module", "dist"), [
    (traceback("ModuleNotFoundError: No module named 'deepspeed'"), "deepspeed", "deepspeed"),
    (traceback("ModuleNotFoundError: No module named 'flash_attn.bert_padding'"), "flash_attn.bert_padding",
     "flash-attn"),
    (traceback("ImportError: FlashAttention2 has been toggled on, but it cannot be used due to the following error: "
               "the package for FlashAttention2 doesn't seem to be installed."), "flash_attn", "flash-attn"),
    (traceback("ImportError: Using `bitsandbytes` 4-bit quantization requires bitsandbytes: "
               "`pip install -U bitsandbytes>=0.46.1`"), "bitsandbytes", "bitsandbytes"),
    (traceback("ImportError: DeepSpeed is not installed => run `pip install deepspeed` or build it from source."),
     "deepspeed", "deepspeed"),
])
def test_a_missing_module_is_named_with_how_to_add_it(text, module, dist):
    why = classify_check_failure(text, "swift")
    assert why.kind == "package" and f"the module {module!r} is not installed in swift's environment" in why.cause
    assert f"add {dist} to backends/swift/requirements.in" in why.fix and "scripts/lock.sh swift" in why.fix
    assert "or drop the setting that needs it" in why.fix


def test_a_missing_module_in_uft_s_own_environment_is_a_pip_install():
    why = classify_check_failure(traceback("ModuleNotFoundError: No module named 'liger_kernel'"), "trl",
                                 own_environment=True)
    assert "uft's own environment" in why.cause and why.fix.startswith("`pip install liger-kernel`")
    assert "requirements.in" not in why.fix


@pytest.mark.parametrize(("text", "lacks", "fix"), [
    (traceback("ValueError: Your setup doesn't support bf16/gpu. You need to assign use_cpu if you want to train "
               "the model on CPU."), "bf16", "training.precision: fp32"),
    (traceback("ValueError: bf16 mixed precision requires PyTorch >= 1.10 and a supported device."), "bf16",
     "training.precision: fp32"),
    (traceback("RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and "
               "installed a driver from http://www.nvidia.com/Download/index.aspx"), "CUDA GPU", "run on a machine"),
    (traceback("AssertionError: Torch not compiled with CUDA enabled"), "CUDA GPU", "run on a machine"),
    (traceback("RuntimeError: CUDA is not available"), "CUDA GPU", "run on a machine"),
    (traceback("NotImplementedError: Unsloth cannot find any torch accelerator? You need a GPU."), "CUDA GPU",
     "run on a machine"),
    # An ImportError that is the machine's, not a missing package: the package is there, the GPU is not.
    (traceback("ImportError: FlashAttention2 has been toggled on, but it cannot be used due to the following error: "
               "FlashAttention2 is not available on CPU. Please make sure you are on any of the supported devices: "
               "('cuda',)."), "CUDA GPU", "drop the GPU-only setting"),
])
def test_what_the_machine_lacks_is_named(text, lacks, fix):
    why = classify_check_failure(TORCH_WARNING + text, "llamafactory")
    assert why.kind == "machine" and why.cause.startswith("this machine lacks") and lacks in why.cause
    assert fix in why.fix and "correct the spec" not in why.fix


@pytest.mark.parametrize("text", [
    TORCH_WARNING + traceback("TypeError: SFTConfig.__init__() got an unexpected keyword argument "
                              "'no_such_trl_setting'"),
    TORCH_WARNING + "usage: -c [-h] ...\n-c: error: unrecognized arguments: --lora_rankk 8\n",
    traceback("ValueError: At most one of fp16 and bf16 can be True, but not both"),
    traceback("ValueError: Please specify a correct `template`, got qwen99."),
    "",
])
def test_the_spec_keeps_its_fix(text):
    """An earlier warning (torch's driver notice on a CPU host) is not the error the check ended with."""
    why = classify_check_failure(text, "trl")
    assert why.kind == "spec" and why.fix == SPEC_FIX and why.cause == ""


def test_final_error_is_the_last_tracebacks_message():
    assert final_error(OFFLINE_MODEL).startswith("OSError: We couldn't connect to 'https://huggingface.co'")
    assert "OfflineModeIsEnabled" not in final_error(OFFLINE_MODEL)
    assert final_error("log line\nerror: bad flag\n\n") == "error: bad flag"


def program(stderr_text: str) -> list[str]:
    return [sys.executable, "-c", f"import sys; sys.stderr.write({stderr_text!r}); sys.exit(1)"]


def test_run_native_check_names_the_cause(tmp_path):
    with pytest.raises(UftError) as raised:
        run_native_check("trl", program(traceback("ModuleNotFoundError: No module named 'deepspeed'")), tmp_path)
    text = str(raised.value)
    assert "trl could not check the translated config" in text and "rejects" not in text
    assert "cause (package): the module 'deepspeed' is not installed in uft's own environment" in text
    assert "fix: `pip install deepspeed`" in text and "correct the spec" not in text

    with pytest.raises(UftError) as raised:
        run_native_check("trl", program(TORCH_WARNING + traceback("TypeError: got an unexpected keyword argument "
                                                                  "'lora_rankk'")), tmp_path)
    text = str(raised.value)
    assert f"trl rejects the translated config in {tmp_path}: TypeError" in text and f"fix: {SPEC_FIX}" in text
    assert "cause" not in text


def test_the_headline_is_the_errors_first_line_not_its_hint(tmp_path):
    with pytest.raises(UftError) as raised:
        run_native_check("swift", program(OFFLINE_MODEL), tmp_path)
    first = str(raised.value).splitlines()[0]
    assert first.endswith(": OSError: We couldn't connect to 'https://huggingface.co' to load the files, and "
                          "couldn't find them in the cached files.")
    with pytest.raises(UftError, match="no message"):
        run_native_check("swift", program(""), tmp_path)
