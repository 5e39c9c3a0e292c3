"""PredictionLog and the ``ortserve logs`` reader, on real files in a temp folder."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import io
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from server import log_reader
from server.errors import Overloaded
from server.prediction_log import LogConfig, PredictionLog, Record


def record(k: int, policy: str = "hash", model: str = "m", status: str = "ok") -> Record:
    return Record(
        timestamp=1_700_000_000.0 + k,
        request_id=f"r{k}",
        model=model,
        version="1",
        route="primary",
        latency_ms=float(k),
        status=status,
        protocol="grpc",
        inputs={"x": np.full((1, 4), k, dtype=np.float32)},
        input_policy=policy,
        outputs={"y": np.full((1, 2), 2 * k, dtype=np.float32)},
    )


def run_log(config: LogConfig, records: list[Record]) -> PredictionLog:
    async def main() -> PredictionLog:
        log = PredictionLog(config)
        log.start()
        for item in records:
            log.put(item)
        await asyncio.to_thread(log.close)
        return log

    return asyncio.run(main())


def lines(directory: Path) -> list[dict]:
    out = []
    for path in log_reader.segments(directory):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        out += [orjson.loads(line) for line in data.splitlines()]
    return out


def test_every_record_written_once_in_order(tmp_path):
    log = run_log(LogConfig(directory=tmp_path), [record(k) for k in range(500)])
    got = lines(tmp_path)
    assert log.written == 500 and log.dropped == 0
    assert [r["id"] for r in got] == [f"r{k}" for k in range(500)]
    assert got[3]["outputs"] == {"y": [[6.0, 6.0]]}
    expected = hashlib.sha256(b"x" + np.full((1, 4), 3, np.float32).tobytes()).hexdigest()
    assert got[3]["inputs_sha256"] == expected


@pytest.mark.parametrize("policy", ["full", "none"])
def test_input_policies(tmp_path, policy):
    run_log(LogConfig(directory=tmp_path), [record(1, policy)])
    (got,) = lines(tmp_path)
    assert ("inputs" in got) == (policy == "full") and "inputs_sha256" not in got
    if policy == "full":
        assert got["inputs"] == {"x": [[1.0] * 4]}


def test_segments_rotate_by_size_and_closed_ones_are_gzipped(tmp_path):
    config = LogConfig(directory=tmp_path, segment_bytes=2000, gzip_closed=True)
    run_log(config, [record(k) for k in range(100)])
    files = log_reader.segments(tmp_path)
    assert len(files) > 3
    assert all(p.name.endswith(".jsonl.gz") for p in files[:-1])
    assert files[-1].name.endswith(".jsonl")  # the last one is closed at shutdown, as is
    assert [r["id"] for r in lines(tmp_path)] == [f"r{k}" for k in range(100)]


def test_drop_policy_counts_what_it_drops(tmp_path):
    log = PredictionLog(LogConfig(directory=tmp_path, queue_size=10, when_full="drop"))
    for k in range(25):  # the writer is not started: nothing leaves the buffer
        log.put(record(k))
    assert log.depth == 10 and log.dropped == 15


def test_block_policy_waits_then_refuses(tmp_path):
    log = PredictionLog(LogConfig(directory=tmp_path, queue_size=2, block_ms=50))

    async def main() -> None:
        log._room = asyncio.Event()  # as start() would, without a writer draining it
        for k in range(2):
            log.put(record(k))
        assert log.is_full
        with pytest.raises(Overloaded, match="prediction log is full"):
            await log.admit()

    asyncio.run(main())


def test_block_policy_admits_once_the_writer_makes_room(tmp_path):
    async def main() -> int:
        log = PredictionLog(LogConfig(directory=tmp_path, queue_size=5, block_ms=5000))
        log.start()
        for k in range(200):
            await log.admit()
            log.put(record(k))
        await asyncio.to_thread(log.close)
        return log.written

    assert asyncio.run(main()) == 200


def reader_args(directory: Path, **overrides: object) -> argparse.Namespace:
    values = dict(
        directory=directory,
        model=None,
        version=None,
        status=None,
        route=None,
        id=None,
        since=None,
        until=None,
        limit=None,
        summary=False,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def test_reader_filters_and_skips_a_torn_last_line(tmp_path):
    run_log(
        LogConfig(directory=tmp_path),
        [
            record(k, model="a" if k % 2 else "b", status="ok" if k % 3 else "INTERNAL")
            for k in range(30)
        ],
    )
    (segment,) = log_reader.segments(tmp_path)
    with segment.open("ab") as f:
        f.write(b'{"ts": 1, "model": "a", "trunc')  # a crash in the middle of a line
    skipped: Counter[str] = Counter()
    assert len(list(log_reader.read_records(tmp_path, skipped))) == 30
    assert skipped["lines"] == 1
    out = io.StringIO()
    assert log_reader.run(reader_args(tmp_path, model="a", status="INTERNAL"), out) == 0
    ids = [orjson.loads(line)["id"] for line in out.getvalue().splitlines()]
    assert ids == [f"r{k}" for k in range(30) if k % 2 and not k % 3]
    out = io.StringIO()
    log_reader.run(reader_args(tmp_path, since="1700000010", until="1700000012"), out)
    assert len(out.getvalue().splitlines()) == 2


def test_reader_summary(tmp_path):
    run_log(LogConfig(directory=tmp_path), [record(k) for k in range(11)])
    out = io.StringIO()
    log_reader.run(reader_args(tmp_path, summary=True), out)
    text = out.getvalue()
    assert "m v1: 11 predictions" in text and "p50 5.000" in text and "ok 11" in text


def test_reader_refuses_a_folder_without_segments(tmp_path):
    assert log_reader.run(reader_args(tmp_path)) == 2
