"""Watch-list matching at scale: 1,000,000 vehicles and 1,000,000 persons.

    python -m bench.watchlist_bench [--size 1000000] [--queries 2000] [--repeat 3]

The compact index (int64 key hashes in sorted arrays, ``HashIndex``) against the same index code on a
plain Python dict of the same keys (``DictIndex``): the honest trade-off, memory against speed. Each
side runs in its own process on the same generated lists and queries (same seed), ``--repeat`` times,
alternately; every figure is the median with its range. Reported per side: build time, memory
(resident set growth of the indexes) and p50/p99 latency and throughput of each kind of lookup; each
row is compared with the dict baseline of the same lookup. A straightforward rapidfuzz scan of the
plate list (``process.extractOne``) on a sample of the queries shows what no index costs.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

from devices import generators
from models.watchlist import Category, PersonEntry, VehicleEntry
from processors.rules.hashindex import DictIndex, HashIndex
from processors.rules.watchlist import PersonIndex, VehicleIndex

SWAPS = {"8": "B", "B": "8", "0": "D", "D": "0", "5": "S", "S": "5", "2": "Z", "Z": "2", "1": "I", "6": "G", "G": "6"}


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def ocr_noise(plate: str, rng: random.Random) -> str:
    positions = [i for i, c in enumerate(plate) if i > 1 and c in SWAPS]
    if not positions:
        return plate[1:]  # province dropped
    i = rng.choice(positions)
    return plate[:i] + SWAPS[plate[i]] + plate[i + 1:]


def timed(fn: Callable[[str], object], queries: list) -> tuple[float, float, float]:
    lat = []
    start = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        fn(q)
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    lat.sort()
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6, len(queries) / total


def measure(backend: str, size: int, queries: int, baseline_queries: int) -> dict:
    """One side, in this process: build both lists' indexes, time every kind of lookup."""
    index = {"hash": HashIndex, "dict": DictIndex}[backend]
    rng = random.Random(1)
    now = datetime(2026, 11, 29, tzinfo=UTC)
    plates = list({generators.plate(rng)[0] for _ in range(int(size * 1.05))})[:size]
    vehicles = [VehicleEntry(entry_id=f"v{i}", plate=p, category=Category.STOLEN_VEHICLE) for i, p in enumerate(plates)]
    persons = []
    for i in range(size):
        if i % 3:
            persons.append(PersonEntry(entry_id=f"p{i}", id_number=generators.resident_id(rng),
                                       category=Category.WANTED_PERSON))
        else:
            born = date(1950, 1, 1).toordinal() + rng.randrange(20000)
            persons.append(PersonEntry(entry_id=f"p{i}", name=generators.chinese_name(rng),
                                       birth_date_from=date.fromordinal(born), birth_date_to=date.fromordinal(born + 365),
                                       category=Category.MISSING_PERSON))
    gc.collect()
    base = rss_mb()
    t = time.perf_counter()
    vindex = VehicleIndex(vehicles, index=index)
    v_build = time.perf_counter() - t
    v_mem = rss_mb() - base
    t = time.perf_counter()
    pindex = PersonIndex(persons, index=index)
    p_build = time.perf_counter() - t
    p_mem = rss_mb() - base - v_mem

    exact = [rng.choice(plates) for _ in range(queries)]
    fuzzy = [ocr_noise(p, rng) for p in exact]
    ids = [e.id_number for e in rng.sample(persons, queries) if e.id_number][: queries // 2]
    names = [e.name for e in rng.sample(persons, queries * 3) if e.name][: queries // 2]
    out = {"build_s": {"vehicles": v_build, "persons": p_build}, "memory_mib": {"vehicles": v_mem, "persons": p_mem},
           "lookups": {
               "plate, exact": timed(lambda q: vindex.match(q, now), exact),
               "plate, OCR look-alike or no province": timed(lambda q: vindex.match(q, now), fuzzy),
               "person, ID number": timed(lambda q: pindex.match(id_number=q, at=now), ids),
               "person, name + pinyin": timed(lambda q: pindex.match(name=q, birth_date=date(1980, 1, 1), at=now),
                                              names)},
           "found": sum(any(m.entry_id == v.entry_id for m in vindex.match(f, now)) for f, v in
                        zip(fuzzy, [vehicles[plates.index(e)] for e in exact[:200]], strict=False))}
    if baseline_queries:
        from rapidfuzz import fuzz, process

        out["scan"] = timed(lambda q: process.extractOne(q, plates, scorer=fuzz.ratio), fuzzy[:baseline_queries])
    return out


def spread(xs: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--baseline-queries", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--measure", choices=("hash", "dict"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.size, args.queries,
                                 args.baseline_queries if args.measure == "hash" else 0)))
        return
    runs: dict[str, list[dict]] = {"hash": [], "dict": []}
    for _ in range(args.repeat):
        for backend in runs:  # alternately, each in a fresh process
            out = subprocess.run([sys.executable, "-m", "bench.watchlist_bench", "--measure", backend,
                                  "--size", str(args.size), "--queries", str(args.queries),
                                  "--baseline-queries", str(args.baseline_queries)],
                                 capture_output=True, text=True, check=True)
            runs[backend].append(json.loads(out.stdout.strip().splitlines()[-1]))
    h, d = runs["hash"], runs["dict"]

    def col(rs: list[dict], *path: str) -> list[float]:
        vals = []
        for r in rs:
            for p in path:
                r = r[p]
            vals.append(r)
        return vals

    print(f"lists: {args.size:,} vehicles, {args.size:,} persons; median of {args.repeat} runs per side (range)\n")
    print("| | compact index (HashIndex) | plain dict of the same keys (DictIndex) |")
    print("| --- | ---: | ---: |")
    for kind in ("vehicles", "persons"):
        print(f"| build, {kind} | {spread(col(h, 'build_s', kind), '{:.1f}')} s | "
              f"{spread(col(d, 'build_s', kind), '{:.1f}')} s |")
        print(f"| index memory, {kind} | {spread(col(h, 'memory_mib', kind), '{:.0f}')} MiB | "
              f"{spread(col(d, 'memory_mib', kind), '{:.0f}')} MiB |")
    print()
    print("| lookup | index p50 | dict p50 | index p99 | dict p99 | index throughput | dict throughput | "
          "index p50 / dict p50 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in h[0]["lookups"]:
        hp50, dp50 = col(h, "lookups", name), col(d, "lookups", name)
        ratio = statistics.median(x[0] for x in hp50) / statistics.median(x[0] for x in dp50)
        print(f"| {name} | {spread([x[0] for x in hp50], '{:.1f}')} µs | {spread([x[0] for x in dp50], '{:.1f}')} µs | "
              f"{spread([x[1] for x in hp50], '{:.1f}')} µs | {spread([x[1] for x in dp50], '{:.1f}')} µs | "
              f"{spread([x[2] for x in hp50], '{:,.0f}')}/s | {spread([x[2] for x in dp50], '{:,.0f}')}/s | "
              f"{ratio:.2f} |")
    scan = col(h, "scan")
    print(f"\nno index at all (rapidfuzz extractOne scan of the plate list, {args.baseline_queries} OCR queries): "
          f"p50 {spread([x[0] / 1000 for x in scan], '{:.1f}')} ms")
    print(f"OCR-noised reads whose listed plate was among the matches: index {h[0]['found']}/200, "
          f"dict {d[0]['found']}/200")


if __name__ == "__main__":
    main()
