"""``ortserve logs DIR``: read prediction log segments, filter them, summarise them.

Reads ``predictions-*.jsonl`` and ``.jsonl.gz`` in name order (that is, time order). A line
that does not parse (the last line of a segment cut short by a crash) is skipped and counted.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import orjson

from .prediction_log import SEGMENT_PREFIX


def segments(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.glob(f"{SEGMENT_PREFIX}*") if p.name.endswith((".jsonl", ".jsonl.gz"))
    )


def read_records(directory: Path, skipped: Counter[str]) -> Iterator[dict[str, Any]]:
    """Every parseable record of every segment; ``skipped["lines"]`` counts the others."""
    for path in segments(directory):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            for line in f:
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    skipped["lines"] += 1


def _time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text).timestamp()


def matches(record: dict[str, Any], args: argparse.Namespace) -> bool:
    return (
        (args.model is None or record.get("model") == args.model)
        and (args.version is None or record.get("version") == args.version)
        and (args.status is None or record.get("status") == args.status)
        and (args.id is None or record.get("id") == args.id)
        and (args.route is None or record.get("route") == args.route)
        and (args.since is None or record.get("ts", 0) >= _time(args.since))
        and (args.until is None or record.get("ts", 0) < _time(args.until))
    )


def summarise(records: Iterator[dict[str, Any]], out: TextIO) -> int:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record.get("model", "?"), record.get("version", "?"))].append(record)
    total = 0
    for (model, version), items in sorted(groups.items()):
        latencies = np.array([r.get("latency_ms", 0.0) for r in items])
        statuses = Counter(r.get("status", "?") for r in items)
        routes = Counter(r.get("route", "?") for r in items)
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        first = datetime.fromtimestamp(min(r.get("ts", 0) for r in items)).isoformat(" ", "seconds")
        last = datetime.fromtimestamp(max(r.get("ts", 0) for r in items)).isoformat(" ", "seconds")
        out.write(
            f"{model} v{version}: {len(items)} predictions, {first} .. {last}\n"
            f"  status: {', '.join(f'{k} {v}' for k, v in statuses.most_common())}\n"
            f"  route: {', '.join(f'{k} {v}' for k, v in routes.most_common())}\n"
            f"  latency ms: p50 {p50:.3f}, p90 {p90:.3f}, p99 {p99:.3f}, "
            f"max {latencies.max():.3f}\n"
        )
        total += len(items)
    out.write(f"{total} predictions in {len(groups)} model versions\n")
    return total


def add_parser(commands: Any) -> None:
    logs = commands.add_parser(
        "logs",
        help="filter and summarise a prediction log",
        description="Print the prediction records of DIR (JSON lines) that match every filter "
        "given, or with --summary, counts, statuses and latency percentiles per model version.",
    )
    logs.add_argument("directory", metavar="DIR", type=Path, help="the prediction log folder")
    logs.add_argument("--model", help="only this model")
    logs.add_argument("--version", help="only this model version")
    logs.add_argument("--status", help="only this status (ok, INVALID_ARGUMENT, ...)")
    logs.add_argument("--route", help="only this route (primary, cache, baseline, shadow)")
    logs.add_argument("--id", help="only the request with this id")
    logs.add_argument("--since", help="from this time (ISO 8601 or Unix seconds)")
    logs.add_argument("--until", help="before this time (ISO 8601 or Unix seconds)")
    logs.add_argument("--limit", type=int, metavar="N", help="print at most N records")
    logs.add_argument("--summary", action="store_true", help="summarise instead of printing")


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run ``ortserve logs``; the exit code (2 when DIR holds no segments)."""
    if not args.directory.is_dir() or not segments(args.directory):
        print(f"ortserve: error: {args.directory}: no prediction log segments", file=sys.stderr)
        return 2
    skipped: Counter[str] = Counter()
    records = (r for r in read_records(args.directory, skipped) if matches(r, args))
    if args.summary:
        summarise(records, out)
    else:
        for count, record in enumerate(records):
            if args.limit is not None and count >= args.limit:
                break
            out.write(orjson.dumps(record).decode() + "\n")
    if skipped["lines"]:
        print(f"ortserve: {skipped['lines']} incomplete lines skipped", file=sys.stderr)
    return 0
