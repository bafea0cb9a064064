"""Secrets: a spec that holds one is refused (exit 2, the fix named, the value never echoed), and whatever uft
writes or prints (spec.yaml, native files, plan, manifest, log tails, the framework's logs) is redacted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from unified_ft.cli import main
from unified_ft.errors import SpecError
from unified_ft.redact import (
    REDACTED,
    env_secrets,
    find_secrets,
    is_secret_key,
    redact_data,
    redact_text,
    scrub_file,
    scrub_tree,
)
from unified_ft.specfile import dump_spec, validate_spec_dict

HF = "hf_" + "Q7xk2LmP9vR4tY8wZ1aB3cD5eF6gH0jKlMn"  # the shape of a Hugging Face token (made up)
SPECS = Path(__file__).resolve().parents[1] / "specs"


def minimal(**extra) -> dict:
    return {"name": "s", "model": {"path": "org/model"},
            "data": {"train": [{"path": "t.jsonl", "format": "alpaca"}]}, **extra}


def write_spec(tmp_path: Path, extra: dict) -> Path:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text('{"model_type": "qwen2"}')  # translated here, never loaded
    (tmp_path / "train.jsonl").write_text("".join(
        json.dumps({"instruction": f"say {i}", "input": "", "output": f"n {i}"}) + "\n" for i in range(6)))
    spec = {"name": "sec", "model": {"path": str(model)},
            "data": {"train": [{"path": str(tmp_path / "train.jsonl"), "format": "alpaca"}]},
            "template": "chatml", "training": {"max_steps": 2}, **extra}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


# --- key names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    "token", "hf_token", "HF_TOKEN", "hfToken", "hub_token", "access_token", "ms_hub_token", "use_auth_token",
    "auth", "bearer", "passwd", "password", "private_key", "access_key", "client_secret", "x-api-key", "apiKey",
    "WANDB_API_KEY", "aws_secret_access_key", "credentials", "Authorization", "cookie"])
def test_secret_key_names(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "pad_token", "eos_token", "bos_token", "max_new_tokens", "num_virtual_tokens", "new_special_tokens",
    "pad_token_id", "label_pad_token_id", "token_type_ids", "tokenizer", "use_fast_tokenizer", "author",
    "TOKENIZERS_PARALLELISM", "trust_remote_code", "neftune_noise_alpha", "max_length", "keys"])
def test_ordinary_key_names(key):
    assert not is_secret_key(key)


def test_no_field_of_the_spec_itself_looks_like_a_secret():
    """The refusal walks the whole spec, so uft's own key names must never trip it."""
    for spec_file in SPECS.glob("*.yaml"):
        data = yaml.safe_load(dump_spec(validate_spec_dict(yaml.safe_load(spec_file.read_text()))))
        assert find_secrets(data) == [], spec_file.name


# --- finding secrets in nested data -----------------------------------------------------------------

@pytest.mark.parametrize(("options", "where"), [
    ({"model_init_kwargs": {"token": "abc123secret"}}, "backend_options.trl.model_init_kwargs.token"),
    ({"auth": "user:pw"}, "backend_options.trl.auth"),
    ({"headers": {"bearer": "xyz"}}, "backend_options.trl.headers.bearer"),
    ({"db": {"passwd": "hunter2"}}, "backend_options.trl.db.passwd"),
    ({"private_key": "-----BEGIN"}, "backend_options.trl.private_key"),
    ({"hf_token": "abc"}, "backend_options.trl.hf_token"),
    ({"s3": [{"access_key": "k"}]}, "backend_options.trl.s3[0].access_key"),
    ({"oauth": {"client_secret": "c"}}, "backend_options.trl.oauth.client_secret"),
    ({"hub_model_id": "https://bob:pw1234@example.com/x"}, "backend_options.trl.hub_model_id"),
    ({"run_name": HF}, "backend_options.trl.run_name"),
    ({"run_name": "sk-proj-" + "a1" * 12}, "backend_options.trl.run_name"),
    ({"run_name": "ghp_" + "b2" * 18}, "backend_options.trl.run_name"),
    ({"run_name": "AKIAIOSFODNN7EXAMPLE"}, "backend_options.trl.run_name"),
    ({"run_name": "xoxb-1234-5678-abcdefgh"}, "backend_options.trl.run_name"),
    ({"run_name": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig"}, "backend_options.trl.run_name"),
    ({"header": "Bearer x"}, "backend_options.trl.header"),
])
def test_spec_secrets_are_refused_with_the_key_path_and_the_fix(options, where):
    with pytest.raises(SpecError) as info:
        validate_spec_dict(minimal(backend_options={"trl": options}))
    message = str(info.value)
    assert where in message and "HF_TOKEN" in message and "environment" in message
    for value in _strings(options):
        assert value not in message or len(value) < 4  # never echoes the secret


def _strings(data) -> list[str]:
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return [data] if isinstance(data, str) else []


def test_a_secret_outside_backend_options_is_refused_too():
    data = minimal()
    data["data"]["train"][0].update(hub="org/set", path=None, hub_site="https://me:pw9876@mirror.example/")
    with pytest.raises(SpecError, match=r"data\.train\[0\]\.hub_site"):
        validate_spec_dict(data)


@pytest.mark.parametrize("options", [
    {"use_auth_token": True}, {"hub_token": None}, {"token": "$HF_TOKEN"}, {"pad_token": "<pad>"},
    {"max_new_tokens": 64}, {"model_init_kwargs": {"attn_implementation": "eager"}},
    {"hub_model_id": "https://huggingface.co/org/name"}, {"run_name": "hf_small"}])
def test_harmless_values_under_such_keys_are_accepted(options):
    assert validate_spec_dict(minimal(backend_options={"trl": options})).backend_options == {"trl": options}


# --- redacting text and data ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "secret"), [
    (f"token is {HF}", HF),
    ("HF_TOKEN=abcdef123456789", "abcdef123456789"),
    ("password: hunter2hunter2", "hunter2hunter2"),
    ('{"client_secret": "s3cr3t-value"}', "s3cr3t-value"),
    ("--hub_token tok123456789", "tok123456789"),
    ("git clone https://bob:pa55word@example.com/r.git", "pa55word"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("Authorization: Bearer abc123def456ghi789", "abc123def456ghi789"),
    ("GET /x?api_key=k3y9876543&x=1", "k3y9876543"),
    ("key AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
])
def test_redact_text_removes_secrets(text, secret):
    clean = redact_text(text)
    assert secret not in clean and REDACTED in clean


@pytest.mark.parametrize("text", [
    "pad_token: <|endoftext|>", "max_new_tokens=64", "hub_token=<HUB_TOKEN>", "use_auth_token: True",
    "revision: 0123456789abcdef0123456789abcdef01234567", "model org/hf-tiny loaded", "{'loss': 1.23}",
    "Bearer of good news"])
def test_redact_text_leaves_ordinary_text_alone(text):
    assert redact_text(text) == text


def test_known_values_are_redacted_wherever_they_appear():
    assert redact_text("printed plainvalue99 here", ["plainvalue99"]) == f"printed {REDACTED} here"
    assert redact_text("short abc", ["abc"]) == "short abc"  # too short to be told from ordinary text


def test_redact_data_handles_argv_flags_nested_keys_and_leaves_the_rest():
    data = {"command": ["python", "train.py", "--hub_token", "tok123456789", "--seed", "1"],
            "trainer": {"model_init_kwargs": {"token": "abc"}, "seed": 1, "pad_token": "<pad>"},
            "note": f"uses {HF}"}
    clean = redact_data(data)
    assert clean["command"] == ["python", "train.py", "--hub_token", REDACTED, "--seed", "1"]
    assert clean["trainer"] == {"model_init_kwargs": {"token": REDACTED}, "seed": 1, "pad_token": "<pad>"}
    assert clean["note"] == f"uses {REDACTED}"
    assert data["trainer"]["model_init_kwargs"]["token"] == "abc"  # a copy: the input is untouched


def test_redaction_is_the_identity_on_every_valid_reference_spec():
    for spec_file in SPECS.glob("*.yaml"):
        data = yaml.safe_load(dump_spec(validate_spec_dict(yaml.safe_load(spec_file.read_text()))))
        assert redact_data(data) == data, spec_file.name


def test_env_secrets_are_the_values_of_secret_named_variables(tmp_path):
    env = {"HF_TOKEN": HF, "WANDB_API_KEY": "0123456789abcdef0123", "TOKENIZERS_PARALLELISM": "false",
           "HOME": "/root", "GITHUB_TOKEN": "short", "HF_HOME": str(tmp_path)}
    (tmp_path / "token").write_text("hf_saved_token_value_123\n")
    assert env_secrets(env) == sorted([HF, "0123456789abcdef0123", "hf_saved_token_value_123"])


def test_scrub_rewrites_text_files_and_leaves_weights_alone(tmp_path):
    (tmp_path / "sub").mkdir()
    log = tmp_path / "sub" / "stderr.log"
    log.write_bytes(b"ok\nInvalid -W option ignored: 'plainvalue99' \xff\n")
    weights = tmp_path / "adapter_model.safetensors"
    weights.write_bytes(b"\x00plainvalue99")
    assert scrub_tree(tmp_path, ["plainvalue99"]) == [log]
    assert log.read_bytes() == f"ok\nInvalid -W option ignored: '{REDACTED}' ".encode() + b"\xff\n"
    assert weights.read_bytes() == b"\x00plainvalue99"
    assert not scrub_file(log, ["plainvalue99"])  # already clean


def test_a_frameworks_own_files_keep_their_metrics(tmp_path):
    """Trainer logs are data: a key like `mean_token_accuracy` is no secret name, and its number stays."""
    row = '{"loss": 1.25, "mean_token_accuracy": 0.53, "num_tokens": 64.0, "step": 1}\n'
    log = tmp_path / "trainer_log.jsonl"
    log.write_text(row + '{"note": "hf_abcdefghijklmnopqrstuvwxyz123456"}\n', encoding="utf-8")
    assert scrub_tree(tmp_path, ["plainvalue99"]) == [log]
    first, second = log.read_text(encoding="utf-8").splitlines()
    assert json.loads(first) == json.loads(row) and "hf_abc" not in second and json.loads(second)
    assert redact_text("mean_token_accuracy: 0.53, eval_token_loss=1e-3") == \
        "mean_token_accuracy: 0.53, eval_token_loss=1e-3"


# --- where uft writes and prints -------------------------------------------------------------------

def test_manifest_is_written_redacted(tmp_path, monkeypatch):
    from unified_ft.runs import Manifest

    monkeypatch.setenv("HF_TOKEN", "envvalue123456")
    manifest = Manifest(tmp_path, command=["swift", "sft", "--hub_token", "tok123456789"])
    manifest.finish("failed", 1, error_tail="Traceback ... envvalue123456 ... password=abc12345")
    text = (tmp_path / "manifest.json").read_text()
    assert "tok123456789" not in text and "envvalue123456" not in text and "abc12345" not in text
    assert json.loads(text)["command"][-1] == REDACTED


def test_log_tail_is_redacted(tmp_path, monkeypatch):
    from unified_ft.supervise import log_tail

    monkeypatch.setenv("WANDB_API_KEY", "wandbvalue0123456789")
    (tmp_path / "stderr.log").write_text("line\nwandb: key wandbvalue0123456789 rejected\n")
    assert log_tail(tmp_path / "stderr.log") == f"line\nwandb: key {REDACTED} rejected"


@pytest.mark.parametrize(("backend", "options", "native_file"), [
    ("trl", {"model_init_kwargs": {"token": HF}}, "config.yaml"),
    ("llamafactory", {"hf_hub_token": HF}, "train.yaml"),
    ("swift", {"hub_token": HF}, "config.yaml"),
    ("swift", {"hub_token": HF}, "train.sh"),
])
def test_translators_write_no_secret_even_if_one_slipped_past_validation(tmp_path, backend, options, native_file):
    """Defence in depth: a spec changed after validation (library use) still writes no secret to native/."""
    from unified_ft.launch import translate_to
    from unified_ft.specfile import load_spec

    spec = load_spec(write_spec(tmp_path, {}))
    spec.backend_options = {backend: options}  # pydantic does not re-validate assignments
    _plan, job = translate_to(spec, backend, tmp_path / "native")
    text = (job.native_dir / native_file).read_text()
    assert HF not in text and REDACTED in text


@pytest.mark.parametrize("options", [
    {"model_init_kwargs": {"token": HF}}, {"auth": "user:password1"}, {"passwd": "hunter2hunter2"},
    {"hub_model_id": "https://bob:pa55word@example.com/x"}, {"run_name": HF}])
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_cli_refuses_a_spec_with_a_secret_with_exit_2_and_no_echo(tmp_path, capsys, command, options):
    spec = write_spec(tmp_path, {"backend_options": {"trl": options}})
    assert main([command, str(spec)]) == 2
    captured = capsys.readouterr()
    out = " ".join((captured.out + captured.err).split())
    assert "looks like a secret" in out and "HF_TOKEN" in out and "Traceback" not in out
    assert f"backend_options.trl.{next(iter(options))}" in out  # the key path, not redacted by the printing
    for value in _strings(options):
        assert value not in out
    assert not (tmp_path / "runs").exists()


def test_plan_prints_no_secret_from_the_environment_or_a_note(tmp_path, capsys, monkeypatch):
    from unified_ft.backends.trl import TrlBackend

    monkeypatch.setenv("HF_TOKEN", "envvalue123456")
    monkeypatch.setattr(TrlBackend, "notes", lambda self, spec: ["framework said token=envvalue123456"],
                        raising=False)
    assert main(["plan", str(write_spec(tmp_path, {}))]) == 0
    out = capsys.readouterr().out
    assert "envvalue123456" not in out and f"token={REDACTED}" in out
    assert "native/config.yaml" in out and out.count(REDACTED) == 1  # nothing else was redacted


@pytest.mark.parametrize("backend", ["trl", "llamafactory"])
def test_adapter_copy_leaves_training_args_in_native_output(tmp_path, backend):
    """collect() copies the adapter without the TrainingArguments pickle (checked for real on trl in the
    integration test below). ms-swift's collect copies only the adapter's config and weights."""
    from unified_ft.plugin import NativeJob, load_backend

    plugin = load_backend(backend)
    if backend == "llamafactory" and not plugin.environment().ready:
        pytest.skip("collect reads the versions from the LLaMA-Factory environment, which is not built")
    final = tmp_path / "native" / "output" / ("final" if backend == "trl" else "")
    final.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "training_args.bin", "tokenizer.json"):
        (final / name).write_text("{}")
    job = NativeJob(native_dir=tmp_path / "native", files=[], argv=[])
    outputs = plugin.collect(tmp_path, job)
    assert sorted(p.name for p in outputs.adapter_dir.iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "tokenizer.json"]
    assert (final / "training_args.bin").exists()


# --- a real run -------------------------------------------------------------------------------------

@pytest.mark.integration
def test_real_trl_run_leaves_no_planted_secret_anywhere_in_the_run_dir(tmp_path, tiny_model, monkeypatch):
    """Secrets live in the environment only; the child echoes one (Python prints an invalid PYTHONWARNINGS
    value to stderr at start-up), and afterwards no byte of any file under the run directory holds it."""
    hf_token, wandb_key = HF, "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
    monkeypatch.setenv("HF_TOKEN", hf_token)
    monkeypatch.setenv("WANDB_API_KEY", wandb_key)
    monkeypatch.setenv("PYTHONWARNINGS", f"{hf_token},{wandb_key}")  # the child prints both values
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = write_spec(tmp_path, {"model": {"path": str(tiny_model)}, "template": "chatml",
                                 "adapter": {"type": "lora", "r": 4, "alpha": 8},
                                 "training": {"max_steps": 2, "per_device_batch_size": 2},
                                 "evaluation": {"enabled": False}})
    runs = tmp_path / "runs"
    assert main(["run", str(spec), "--backend", "trl", "--runs-dir", str(runs)]) == 0
    run_dir = runs / "sec" / "trl"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "succeeded"
    assert REDACTED in (run_dir / "logs" / "stderr.log").read_text()  # it was printed, and scrubbed

    adapter = run_dir / "adapter"
    assert (adapter / "adapter_config.json").exists() and not (adapter / "training_args.bin").exists()
    assert (run_dir / "native" / "output" / "final" / "training_args.bin").exists()  # kept out of adapter/ only

    files = [p for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(files) > 10
    leaks = [str(p.relative_to(run_dir)) for p in files
             if any(secret.encode() in p.read_bytes() for secret in (hf_token, wandb_key))]
    assert leaks == []


def test_redact_is_stdlib_only():
    """The spec model, runs and the CLI import it: it must stay pure and light."""
    source = (Path(__file__).resolve().parents[1] / "unified_ft" / "redact.py").read_text()
    imports = {line.split()[1].split(".")[0] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "os", "re", "collections", "pathlib", "typing"}, imports


def test_error_messages_are_not_mangled_by_secret_looking_words(tmp_path, capsys):
    """A file called passwd is a path, not a `passwd: value` pair: the message must survive whole."""
    spec = tmp_path / "passwd"
    spec.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    assert main(["plan", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "expected a mapping of keys" in err and REDACTED not in err
