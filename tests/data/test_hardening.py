"""Hostile-but-realistic dataset files and paths: each is one clear DataError naming the file, row and field
(exit 2 through the CLI, no traceback, nothing left behind), and valid data that used to be refused is read."""

from __future__ import annotations

import errno
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unified_ft.cli import main
from unified_ft.data import (
    DatasetSource,
    check_source,
    detect_format,
    iter_rows,
    mix_datasets,
    prepare_records,
    read_records,
)
from unified_ft.data.hub import cached_path, fetch_hub_dataset
from unified_ft.data.mixing import shares
from unified_ft.errors import DataError
from unified_ft.runs import create_run_dir, discard_run_dir


def jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def texts(n: int, prefix: str = "row") -> list[dict[str, str]]:
    return [{"text": f"{prefix} {i}"} for i in range(n)]


def data_error(fn: Callable[[], Any], timeout: float = 20.0) -> DataError:
    """The DataError `fn` raises; fails (instead of hanging the suite) if it blocks, as a FIFO read does."""
    box: dict[str, BaseException | None] = {"exc": None}

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["exc"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), "the call blocked"
    exc = box["exc"]
    assert isinstance(exc, DataError), f"expected a DataError, got {exc!r}"
    return exc


def read_all(path: Path, fmt: str = "text") -> list[dict[str, Any]]:
    return list(read_records(path, fmt))


ENTRY_POINTS: dict[str, Callable[[Path], Any]] = {
    "check_source": lambda p: check_source(p, "text"),
    "iter_rows": lambda p: list(iter_rows(p)),
    "detect_format": detect_format,
    "read_records": read_all,
    "prepare_records": lambda p: prepare_records([(p, "text", None, 1.0)], None, None, 0,
                                                 Path(tempfile.mkdtemp()), "text"),
}


# --- CSV quoting ----------------------------------------------------------------------------------


def test_csv_unterminated_quote_names_the_row_where_it_opened(tmp_path: Path) -> None:
    p = tmp_path / "qa.csv"
    p.write_text('instruction,output\nq1,a1\nq2,"a2\nq3,a3\nq4,a4\nq5,a5\n', encoding="utf-8")
    err = data_error(lambda: read_all(p, "alpaca"))  # a lenient reader gave 2 rows, the second swallowing 3 more
    assert err.path == str(p) and err.row == 2 and err.field == "output"
    assert "opens on line 3 and is never closed" in str(err) and "fix:" in str(err)


def test_csv_quoted_cell_with_line_breaks_and_row_like_text_is_still_one_valid_cell(tmp_path: Path) -> None:
    p = tmp_path / "ok.csv"
    p.write_text('instruction,output\nq1,"line one\nq9,looks like a row\n"\nq2,"say ""hi"""\n', encoding="utf-8")
    rows = read_all(p, "alpaca")
    assert [r["messages"][1]["content"] for r in rows] == ["line one\nq9,looks like a row\n", 'say "hi"']


def test_csv_text_after_a_closing_quote_is_an_error_not_mangled_text(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text('instruction,output\nq1,a1\nq2,"he said "hi" twice"\n', encoding="utf-8")
    err = data_error(lambda: read_all(p, "alpaca"))
    assert err.row == 2 and "after its closing quote" in str(err) and "line 3" in str(err)


# --- encoding errors point at the right line and row -------------------------------------------------


def test_jsonl_encoding_error_after_blank_lines_names_its_own_line(tmp_path: Path) -> None:
    p = tmp_path / "enc.jsonl"
    p.write_bytes(b'{"text": "a"}\n\n\n{"text": "b"}\n{"text": "\xff"}\n')
    err = data_error(lambda: read_all(p))
    assert err.row == 5 and "line 5" in str(err) and "not UTF-8" in str(err)


def test_json_array_encoding_error_names_the_row_holding_the_byte(tmp_path: Path) -> None:
    p = tmp_path / "enc.json"
    rows = [json.dumps({"text": f"row {i}"}).encode() for i in range(300)]
    rows[199] = b'{"text": "bad \xff byte"}'
    p.write_bytes(b"[\n" + b",\n".join(rows) + b"\n]")  # the whole file fits in one read-ahead chunk
    err = data_error(lambda: read_all(p))
    assert err.row == 200 and "line 201" in str(err) and "not UTF-8" in str(err)


def test_csv_encoding_error_names_line_and_data_row(tmp_path: Path) -> None:
    p = tmp_path / "enc.csv"
    p.write_bytes(b'instruction,output\n\nq1,a1\nq2,"two\nlines"\n\nq3,\xe9t\xe9\n')
    err = data_error(lambda: read_all(p, "alpaca"))
    assert err.row == 3 and "line 7" in str(err)


# --- gzip ------------------------------------------------------------------------------------------


def _gz_rows(n: int) -> bytes:
    return gzip.compress(b"".join(json.dumps({"text": f"row {i}"}).encode() + b"\n" for i in range(n)))


@pytest.mark.parametrize("damage", ["truncated", "crc", "header", "not gzip"])
@pytest.mark.parametrize("suffix", [".jsonl.gz", ".json.gz"])
def test_corrupt_gzip_is_a_clear_error(tmp_path: Path, damage: str, suffix: str) -> None:
    good = _gz_rows(20_000)
    bad = {"truncated": good[: len(good) // 2], "crc": good[:-8] + b"\0\0\0\0" + good[-4:],
           "header": good[:2] + b"\x09" + good[3:], "not gzip": b'{"text": "x"}\n'}[damage]
    p = tmp_path / f"data{suffix}"
    p.write_bytes(bad)
    err = data_error(lambda: read_all(p))
    assert err.path == str(p) and "gzip" in str(err) and "fix:" in str(err)
    if damage == "truncated":
        assert err.row is not None and 1 < err.row < 20_000 and f"row {err.row}" in str(err)


# --- paths that are not one regular file -------------------------------------------------------------


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_fifo_is_refused_up_front_at_every_entry_point(tmp_path: Path, entry: str) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    err = data_error(lambda: ENTRY_POINTS[entry](fifo))
    assert err.path == str(fifo) and "named pipe" in str(err)


def test_devices_and_sockets_are_refused(tmp_path: Path) -> None:
    assert "is a device" in str(data_error(lambda: read_all(Path("/dev/zero"))))
    folder = tempfile.mkdtemp(dir="/tmp")  # a socket path must be short
    sock_path = Path(folder) / "s.jsonl"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(sock_path))
        for entry in ("check_source", "read_records"):
            assert "is a socket" in str(data_error(lambda e=entry: ENTRY_POINTS[e](sock_path)))
    sock_path.unlink()
    os.rmdir(folder)


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_a_directory_is_called_a_directory_at_every_entry_point(tmp_path: Path, entry: str) -> None:
    folder = tmp_path / "train.jsonl"
    folder.mkdir()
    err = data_error(lambda: ENTRY_POINTS[entry](folder))
    assert err.path == str(folder) and "is a directory" in str(err)


def test_bad_paths_get_clear_messages(tmp_path: Path) -> None:
    loop = tmp_path / "loop.jsonl"
    os.symlink(loop, loop)
    dangling = tmp_path / "dangling.jsonl"
    os.symlink(tmp_path / "gone.jsonl", dangling)
    (tmp_path / "file").write_text("x")
    cases = {
        tmp_path / ("x" * 300 + ".jsonl"): "too long",
        tmp_path / "/".join(["y" * 200] * 30): "too long",
        Path(f"{tmp_path}/a\0b.jsonl"): "NUL character",
        loop: "loop of symbolic links",
        dangling: "which does not exist",
        tmp_path / "file" / "x.jsonl": "is a file, not a folder",
        tmp_path / "missing.jsonl": "file not found",
    }
    for path, words in cases.items():
        for entry in ENTRY_POINTS.values():
            err = data_error(lambda p=path, e=entry: e(p))
            assert words in str(err) and "\0" not in str(err) and "fix:" in str(err), (path, str(err))


def test_hub_cache_that_is_a_directory_is_named_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UFT_CACHE_DIR", str(tmp_path / "cache"))
    cached = cached_path("org/data", None, "train")
    cached.mkdir(parents=True)
    err = data_error(lambda: fetch_hub_dataset("org/data"))
    assert "hub:org/data" in str(err) and "is a directory" in str(err) and f"delete {cached}" in str(err)


# --- extension-less files: the link's name, then the content -----------------------------------------


def test_hugging_face_cache_layout_symlink_to_extensionless_blob(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "8f3a9c").write_text("instruction,output\nq,a\n")
    snapshot = tmp_path / "snapshots" / "abc" / "data"
    snapshot.mkdir(parents=True)
    link = snapshot / "train.csv"
    os.symlink(os.path.relpath(blobs / "8f3a9c", snapshot), link)
    assert read_all(link, "alpaca")[0]["messages"][1]["content"] == "a"  # typed as CSV by the link's own name


@pytest.mark.parametrize("content,fmt", [
    (b' \n[{"text": "array"}]', "text"),
    (b'{"text": "lines"}\n{"text": "two"}\n', "text"),
    (b"\xef\xbb\xbfinstruction,output\nq,a\n", "alpaca"),
    (b"text\nhello\n", "text"),
    (gzip.compress(b'{"text": "zipped"}\n'), "text"),
    (gzip.compress(b'[{"text": "zipped array"}]'), "text"),
])
def test_extensionless_blob_is_typed_by_its_content(tmp_path: Path, content: bytes, fmt: str) -> None:
    blob = tmp_path / "8f3a9c0d"
    blob.write_bytes(content)
    assert len(read_all(blob, fmt)) >= 1 and check_source(blob, fmt) is None


def test_extensionless_parquet_blob(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    blob = tmp_path / "blob"
    pq.write_table(pa.table({"text": ["from parquet"]}), blob)
    assert read_all(blob) == [{"text": "from parquet"}]


@pytest.mark.parametrize("content", [b"just some prose, with a comma\n", b"\x00\x01\x02binary", b"<html></html>"])
def test_unrecognisable_extensionless_file_is_refused_naming_the_types(tmp_path: Path, content: bytes) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(content)
    err = data_error(lambda: read_all(blob))
    assert "unknown file type" in str(err) and ".jsonl" in str(err)


def test_another_extension_is_refused_not_sniffed(tmp_path: Path) -> None:
    p = jsonl(tmp_path / "rows.txt", texts(2))
    err = data_error(lambda: read_all(p))
    assert "unknown file type '.txt'" in str(err) and ".jsonl" in str(err)


def test_nul_byte_in_csv_and_bare_nan_in_json_are_errors_naming_the_row(tmp_path: Path) -> None:
    p = tmp_path / "nul.csv"
    p.write_bytes(b"instruction,output\nq1,a1\nq\x002,a2\n")
    err = data_error(lambda: read_all(p, "alpaca"))
    assert err.row == 2 and "NUL byte" in str(err) and "line 3" in str(err)
    q = tmp_path / "nan.json"
    q.write_text('[{"instruction": "q", "output": "a"}, {"instruction": "q", "output": NaN}]', encoding="utf-8")
    err = data_error(lambda: read_all(q, "alpaca"))
    assert err.row == 2 and err.field == "output" and "NaN" in str(err) and 'quote it in the file ("NaN")' in str(err)


# --- samples: the user's own file and row; CSV sampled reads like the original -----------------------


def test_samples_error_names_the_users_file_and_row(tmp_path: Path) -> None:
    rows: list[Any] = texts(10)
    rows[6] = {"text": ""}
    src = jsonl(tmp_path / "mine.jsonl", rows)
    err = data_error(lambda: prepare_records([DatasetSource(src, "text", samples=3)], None, None, 0,
                                             tmp_path / "out", "text"))
    assert err.path == str(src) and err.row == 7 and "sampled" not in str(err)
    assert not list((tmp_path / "out").glob("sampled-*"))


def test_samples_on_a_csv_messages_file_read_exactly_like_the_file(tmp_path: Path) -> None:
    p = tmp_path / "chat.csv"
    chats = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"00{i}"}] for i in range(6)]
    p.write_text("messages\n" + "".join('"' + json.dumps(c).replace('"', '""') + '"\n' for c in chats), "utf-8")
    out = prepare_records([DatasetSource(p, "messages", samples=4)], None, None, 3, tmp_path / "out", "chat")
    got = [json.loads(line) for line in out.train_path.read_text("utf-8").splitlines()]
    original = read_all(p, "messages")
    assert out.train_rows == 4 and all(g in original for g in got) and len({json.dumps(g) for g in got}) == 4
    more = prepare_records([DatasetSource(p, "messages", samples=15)], None, None, 3, tmp_path / "o2", "chat")
    assert more.train_rows == 15


def test_messages_name_the_symlink_the_user_gave(tmp_path: Path) -> None:
    real = jsonl(tmp_path / "blob-target.jsonl", [{"text": True}])
    link = tmp_path / "train.jsonl"
    os.symlink(real, link)
    err = data_error(lambda: read_all(link))
    assert err.path == str(link) and err.row == 1


# --- other traceback sources --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_deeply_nested_row_is_an_error_not_a_recursion_traceback(tmp_path: Path, suffix: str) -> None:
    row = '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}"
    p = tmp_path / f"deep{suffix}"
    p.write_text(f"[{row}]" if suffix == ".json" else f'{{"text": "ok"}}\n{row}\n', encoding="utf-8")
    err = data_error(lambda: read_all(p))
    assert err.row == (1 if suffix == ".json" else 2) and "too deeply" in str(err)


def test_rows_that_are_not_objects_and_huge_numbers(tmp_path: Path) -> None:
    p = tmp_path / "scalars.jsonl"
    p.write_text('\n\n123\n', encoding="utf-8")
    for fn in (read_all, detect_format):
        err = data_error(lambda f=fn: f(p))
        assert err.row == 3 and "must be an object" in str(err) and "a number" in str(err)
    big = tmp_path / "big.jsonl"
    digits = "9" * 50_000
    big.write_text(f'{{"instruction": "q", "output": {digits}, "tools": "[{{\\"n\\": {digits}}}]"}}\n')
    assert read_all(big, "alpaca")[0]["messages"][1]["content"] == digits  # text stays text, however long


# --- mixing: huge and tiny weights, thousands of datasets ---------------------------------------------


@pytest.mark.parametrize("weights,expected", [
    ([1e308, 1e308, 5e307], [8, 8, 4]),
    ([1e308, 1.0], [20, 0]),
    ([1e-308, 3e-308], [5, 15]),
    ([5e-324, 1e-323], [7, 13]),
])
def test_shares_survive_huge_and_tiny_weights(weights: list[float], expected: list[int]) -> None:
    assert shares(weights, 20) == expected


def test_mix_with_huge_weights(tmp_path: Path) -> None:
    sources = [(texts(10, "a"), 1e308), (texts(10, "b"), 1e308 / 4)]
    result = mix_datasets(sources, 0, tmp_path)
    assert result.taken == (16, 4) and result.rows == 20


def test_thousands_of_datasets_hold_one_file_open_at_a_time(tmp_path: Path) -> None:
    """3000 one-row datasets under a limit of 64 open files, in a fresh interpreter."""
    files = tmp_path / "many"
    files.mkdir()
    for i in range(3000):
        (files / f"d{i}.jsonl").write_text(json.dumps({"text": f"t{i}"}) + "\n")
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "from unified_ft.data import prepare_records\n"
        f"root = Path({str(files)!r})\n"
        "srcs = [(root / f'd{i}.jsonl', 'text', None, 1.0 + (i % 3)) for i in range(3000)]\n"
        f"out = prepare_records(srcs, None, 0.1, 0, Path({str(tmp_path / 'out')!r}), 'text')\n"
        "print(out.train_rows + out.eval_rows, len(out.source_rows))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3000", "3000"]


# --- leftovers ------------------------------------------------------------------------------------------


def test_discard_run_dir_removes_only_what_create_run_dir_made(tmp_path: Path) -> None:
    fresh = tmp_path / "a" / "runs"
    run_dir = create_run_dir(fresh, "job", "trl")
    discard_run_dir(run_dir)
    assert not (tmp_path / "a").exists()
    kept = tmp_path / "kept"
    (kept / "job").mkdir(parents=True)
    run_dir = create_run_dir(kept, "job", "trl")
    discard_run_dir(run_dir)
    assert (kept / "job").is_dir() and not any((kept / "job").iterdir())


def test_create_run_dir_expands_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    run_dir = create_run_dir("~/runs", "job", "trl")
    assert run_dir == tmp_path / "runs" / "job" / "trl" and not (tmp_path / "~").exists()


def test_create_run_dir_failing_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_mkdir = Path.mkdir

    def failing(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name == "logs":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", failing)
    with pytest.raises(OSError):
        create_run_dir(tmp_path / "runs", "job", "trl")
    assert list(tmp_path.iterdir()) == []


# --- through the CLI: exit 2, one message, no traceback, nothing left behind ----------------------------


def spec_for(tmp_path: Path, data: str, extra: str = "", fmt: str = "alpaca") -> Path:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    spec = tmp_path / "job.yaml"
    spec.write_text(f"name: unit\nmodel:\n  path: {model}\ndata:\n  train:\n    - path: {json.dumps(data)}\n"
                    f"      format: {fmt}\n{extra}training:\n  max_steps: 2\n", encoding="utf-8")
    return spec


def trl_ready() -> bool:
    from unified_ft.plugin import load_backend

    return load_backend("trl").environment().ready


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, " ".join(captured.err.split())


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    p = tmp_path / "qa.csv"
    p.write_text('instruction,output\nq1,a1\nq2,"a2\nq3,a3\nq4,a4\nq5,a5\n', encoding="utf-8")
    return p


def test_cli_plan_unterminated_csv_quote(tmp_path: Path, bad_csv: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = cli(["plan", str(spec_for(tmp_path, str(bad_csv)))], capsys)
    assert code == 2 and f"{bad_csv}, row 2, field 'output'" in err and "never closed" in err


def test_cli_plan_samples_error_names_the_users_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(8)]
    rows[5]["output"] = ""
    src = jsonl(tmp_path / "mine.jsonl", rows)
    code, err = cli(["plan", str(spec_for(tmp_path, str(src), extra="      samples: 3\n"))], capsys)
    assert code == 2 and f"{src}, row 6, field 'output'" in err and "sampled" not in err


@pytest.mark.parametrize("kind", ["fifo", "directory", "corrupt gzip", "unterminated csv"])
@pytest.mark.parametrize("runs_existed", [False, True])
def test_cli_run_input_error_leaves_no_runs_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch, kind: str,
                                                   runs_existed: bool) -> None:
    if not trl_ready():
        pytest.skip("the trl backend's environment is not installed here")
    monkeypatch.chdir(tmp_path)
    data = tmp_path / {"fifo": "p.jsonl", "directory": "d.jsonl", "corrupt gzip": "z.jsonl.gz",
                       "unterminated csv": "u.csv"}[kind]
    if kind == "fifo":
        os.mkfifo(data)
    elif kind == "directory":
        data.mkdir()
    elif kind == "corrupt gzip":
        data.write_bytes(_gz_rows(5000)[:2000])
    else:
        data.write_text('instruction,output\nq1,"a1\nq2,a2\n', encoding="utf-8")
    runs = tmp_path / "runs"
    if runs_existed:
        runs.mkdir()
    code, err = cli(["run", str(spec_for(tmp_path, str(data))), "--runs-dir", str(runs)], capsys)
    assert code == 2 and str(data) in err
    assert runs.is_dir() == runs_existed and (not runs_existed or list(runs.iterdir()) == [])
