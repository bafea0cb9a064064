"""Mixing, eval split and prepare_records: counts, determinism, upsampling, hashes and kind checks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from unified_ft.data import PreparedData, prepare_records
from unified_ft.data.mixing import mix_datasets, split_eval
from unified_ft.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


def texts(prefix: str, n: int) -> list[dict[str, str]]:
    return [{"text": f"{prefix}{i}"} for i in range(n)]


def lines(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def mix(tmp_path: Path, sources: list[tuple[Any, float]], seed: int = 0, name: str = "out") -> list[str]:
    res = mix_datasets(sources, seed, tmp_path / name)
    got = lines(res.path)
    assert res.rows == len(got)
    return got


def test_equal_weights_take_every_row_once_shuffled(tmp_path: Path) -> None:
    got = mix(tmp_path, [(texts("a", 30), 1.0), (texts("b", 10), 1.0)])
    assert sorted(got) == sorted([f"a{i}" for i in range(30)] + [f"b{i}" for i in range(10)])
    assert got != [f"a{i}" for i in range(30)] + [f"b{i}" for i in range(10)]


def test_without_shuffle_rows_stay_in_file_order(tmp_path: Path) -> None:
    """data.shuffle: false -- the sources one after another, each in its own order (sampled rows too)."""
    res = mix_datasets([(texts("a", 30), 1.0), (texts("b", 10), 1.0)], 0, tmp_path / "plain", shuffle=False)
    assert lines(res.path) == [f"a{i}" for i in range(30)] + [f"b{i}" for i in range(10)]
    res = mix_datasets([(texts("a", 40), 1), (texts("b", 40), 3)], 1, tmp_path / "weighted", shuffle=False)
    got = lines(res.path)
    a_rows, b_rows = [x for x in got if x[0] == "a"], [x for x in got if x[0] == "b"]
    assert got == a_rows + b_rows and len(a_rows) == 20 and len(b_rows) == 60
    assert [int(x[1:]) for x in a_rows] == sorted(int(x[1:]) for x in a_rows)


def test_weights_three_to_one(tmp_path: Path) -> None:
    res = mix_datasets([(texts("a", 40), 3), (texts("b", 40), 1)], 1, tmp_path / "w")
    got = lines(res.path)
    count = Counter(x[0] for x in got)
    assert (res.rows, count["a"], count["b"]) == (80, 60, 20)
    assert res.source_rows == (40, 40) and res.taken == (60, 20)
    a = Counter(x for x in got if x[0] == "a")
    assert set(a) == {f"a{i}" for i in range(40)} and sorted(a.values()) == [1] * 20 + [2] * 20  # upsampled
    b = [x for x in got if x[0] == "b"]
    assert len(set(b)) == 20  # downsampled without replacement


def test_small_source_is_upsampled_in_whole_copies(tmp_path: Path) -> None:
    got = mix(tmp_path, [(texts("a", 8), 1), (texts("b", 2), 4)])
    count = Counter(got)
    assert count["b0"] == count["b1"] == 4
    assert sum(v for k, v in count.items() if k[0] == "a") == 2 and all(v == 1 for k, v in count.items() if k[0] == "a")


def test_same_seed_same_order_different_seed_different_order(tmp_path: Path) -> None:
    def src() -> list[tuple[Any, float]]:
        return [(lambda: iter(texts("a", 50)), 2.0), (texts("b", 30), 1.0)]

    first = mix(tmp_path, src(), seed=7, name="x")
    assert mix(tmp_path, src(), seed=7, name="y") == first
    assert mix(tmp_path, src(), seed=8, name="z") != first


def test_mix_is_independent_of_hash_seed(tmp_path: Path) -> None:
    code = ("import sys, hashlib; from unified_ft.data.mixing import mix_datasets; "
            "src = [([{'text': f'{p}{i}'} for i in range(n)], w) for p, n, w in (('a', 20, 1.5), ('b', 7, 1))]; "
            "r = mix_datasets(src, 3, sys.argv[1]); print(hashlib.sha256(r.path.read_bytes()).hexdigest())")
    out = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        run = subprocess.run([sys.executable, "-c", code, str(tmp_path / hash_seed)], env=env, check=True,
                             capture_output=True, text=True)
        out.append(run.stdout.strip())
    assert out[0] == out[1]


def test_bad_weight(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="positive"):
        mix_datasets([(texts("a", 2), 0)], 0, tmp_path)


def test_split_eval_sizes_and_determinism(tmp_path: Path) -> None:
    src = tmp_path / "all.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in texts("r", 100)))
    assert split_eval(src, 0.1, 5, tmp_path / "t1", tmp_path / "e1") == (90, 10)
    assert split_eval(src, 0.1, 5, tmp_path / "t2", tmp_path / "e2") == (90, 10)
    assert (tmp_path / "e1").read_bytes() == (tmp_path / "e2").read_bytes()
    assert (tmp_path / "t1").read_bytes() == (tmp_path / "t2").read_bytes()
    train, ev = lines(tmp_path / "t1"), lines(tmp_path / "e1")
    assert sorted(train + ev) == sorted(lines(src)) and train == sorted(train, key=lambda x: int(x[1:]))
    split_eval(src, 0.1, 6, tmp_path / "t3", tmp_path / "e3")
    assert lines(tmp_path / "e3") != ev
    assert split_eval(src, 0.001, 5, tmp_path / "t4", tmp_path / "e4") == (99, 1)  # at least one eval row
    # the row count given by the caller (mix_datasets knows it) saves the counting pass, same files
    assert split_eval(src, 0.1, 5, tmp_path / "t5", tmp_path / "e5", rows=100) == (90, 10)
    assert (tmp_path / "t5").read_bytes() == (tmp_path / "t1").read_bytes()
    assert (tmp_path / "e5").read_bytes() == (tmp_path / "e1").read_bytes()


def test_split_eval_impossible(tmp_path: Path) -> None:
    src = tmp_path / "one.jsonl"
    src.write_text('{"text": "x"}\n')
    with pytest.raises(DataError, match="at least one row"):
        split_eval(src, 0.5, 0, tmp_path / "t", tmp_path / "e")
    with pytest.raises(DataError, match="between 0 and 1"):
        split_eval(src, 1.0, 0, tmp_path / "t", tmp_path / "e")


# ---------------------------------------------------------------- prepare_records


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def file_hash(prep: PreparedData) -> str:
    h = hashlib.sha256(b"train.jsonl\0" + prep.train_path.read_bytes())
    if prep.eval_path:
        h.update(b"eval.jsonl\0" + prep.eval_path.read_bytes())
    return h.hexdigest()


def test_prepare_records_mix_and_split(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"q{i}", "output": f"ä{i}"} for i in range(30)])
    b = tmp_path / "b.json"
    b.write_text(json.dumps([{"conversations": [{"from": "human", "value": f"h{i}"}, {"from": "gpt", "value": "g"}]}
                             for i in range(10)]))
    train = [(a, "alpaca", None, 1.0), (b, "sharegpt", None, 1.0)]
    prep = prepare_records(train, None, 0.1, 3, tmp_path / "out", "chat")
    assert (prep.train_rows, prep.eval_rows, prep.source_rows) == (36, 4, (30, 10))
    assert prep.train_path == tmp_path / "out" / "train.jsonl" and prep.eval_path == tmp_path / "out" / "eval.jsonl"
    recs = [json.loads(x) for x in prep.train_path.read_text(encoding="utf-8").splitlines()]
    assert len(recs) == 36 and all(set(r) == {"messages"} for r in recs)
    assert "ä" in prep.train_path.read_text(encoding="utf-8") or "ä" in prep.eval_path.read_text(encoding="utf-8")
    assert prep.sha256 == file_hash(prep)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.jsonl", "train.jsonl"]  # no temp files
    again = prepare_records(train, None, 0.1, 3, tmp_path / "out2", "chat")
    assert again.sha256 == prep.sha256
    other = prepare_records(train, None, 0.1, 4, tmp_path / "out3", "chat")
    assert other.sha256 != prep.sha256
    # no eval this time: a stale eval.jsonl is removed
    none = prepare_records(train, None, None, 3, tmp_path / "out", "chat")
    assert none.eval_path is None and none.eval_rows == 0 and not (tmp_path / "out" / "eval.jsonl").exists()
    assert none.train_rows == 40 and none.sha256 == file_hash(none)


def test_prepare_records_separate_eval(tmp_path: Path) -> None:
    tr = write_jsonl(tmp_path / "t.jsonl", [{"text": f"t{i}"} for i in range(5)])
    ev = write_jsonl(tmp_path / "e.jsonl", [{"body": f"e{i}"} for i in range(3)])
    prep = prepare_records([(tr, "text", None, 1)], (ev, "text", {"text": "body"}), None, 0, tmp_path / "o", "text")
    assert (prep.train_rows, prep.eval_rows) == (5, 3)
    assert lines(prep.eval_path) == ["e0", "e1", "e2"]
    with pytest.raises(DataError, match="not both"):
        prepare_records([(tr, "text", None, 1)], (ev, "text", None), 0.1, 0, tmp_path / "o", "text")


def test_prepare_records_kind_mismatch(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "sft.jsonl", [{"instruction": "q", "output": "a"}])
    with pytest.raises(DataError) as info:
        prepare_records([(a, "alpaca", None, 1)], None, None, 0, tmp_path / "o", "preference")
    msg = str(info.value)
    assert "sft.jsonl" in msg and "preference dataset" in msg and "chosen" in msg and "format: preference" in msg
    assert not (tmp_path / "o" / "train.jsonl").exists()


def test_prepare_records_bad_row_leaves_nothing(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"},
                                            {"prompt": "p", "chosen": "c"}])
    with pytest.raises(DataError) as info:
        prepare_records([(a, "preference", None, 1)], None, None, 0, tmp_path / "o", "preference")
    assert info.value.row == 2 and info.value.field == "rejected"
    assert list((tmp_path / "o").iterdir()) == []


def test_spec_system_prompt_goes_first_where_a_conversation_has_none(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            {"messages": [{"role": "system", "content": "own"}, {"role": "user", "content": "c"},
                          {"role": "assistant", "content": "d"}]}]
    src = tmp_path / "chat.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prepare_records([(src, "messages", None, 1.0)], None, None, 0, tmp_path / "out", "chat", shuffle=False,
                    system="Be brief.")
    written = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert [m["messages"][0] for m in written] == [{"role": "system", "content": "Be brief."},
                                                   {"role": "system", "content": "own"}]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": [{"role": "user", "content": "q"}],
                                 "chosen": [{"role": "assistant", "content": "y"}],
                                 "rejected": [{"role": "assistant", "content": "n"}]}) + "\n")
    prepare_records([(pairs, "preference", None, 1.0)], None, None, 0, tmp_path / "pref", "preference",
                    system="Be brief.")
    pair = json.loads((tmp_path / "pref" / "train.jsonl").read_text())
    assert pair["prompt"][0] == {"role": "system", "content": "Be brief."} and len(pair["chosen"]) == 1


def test_first_rows_reads_only_the_head_of_a_file_before_mixing(tmp_path: Path) -> None:
    from unified_ft.data import DatasetSource

    src = tmp_path / "chat.jsonl"
    src.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                    {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                           for i in range(10)))
    prepared = prepare_records([DatasetSource(src, "messages", first_rows=3)], None, None, 0, tmp_path / "out",
                               "chat", shuffle=False)
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert prepared.train_rows == 3 and [r["messages"][0]["content"] for r in rows] == ["q0", "q1", "q2"]
