"""Watch-list matching at scale: 1,000,000 vehicles and 1,000,000 persons.

    python -m bench.watchlist_bench [--size 1000000] [--queries 2000]

Reports build time, memory (resident set growth) and p50/p99 latency and throughput for exact and
fuzzy lookups, beside a baseline measured in the same run: a straightforward scan of the same list
with rapidfuzz (``process.extractOne``), on a sample of the queries (it is slow).
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

from devices import generators
from models.watchlist import Category, PersonEntry, VehicleEntry
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--baseline-queries", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(1)
    now = datetime(2026, 11, 29, tzinfo=UTC)

    plates = list({generators.plate(rng)[0] for _ in range(int(args.size * 1.05))})[: args.size]
    vehicles = [VehicleEntry(entry_id=f"v{i}", plate=p, category=Category.STOLEN_VEHICLE) for i, p in enumerate(plates)]
    persons = []
    for i in range(args.size):
        if i % 3:
            persons.append(PersonEntry(entry_id=f"p{i}", id_number=generators.resident_id(rng),
                                       category=Category.WANTED_PERSON))
        else:
            born = date(1950, 1, 1).toordinal() + rng.randrange(20000)
            persons.append(PersonEntry(entry_id=f"p{i}", name=generators.chinese_name(rng),
                                       birth_date_from=date.fromordinal(born), birth_date_to=date.fromordinal(born + 365),
                                       category=Category.MISSING_PERSON))
    gc.collect()
    start_rss = rss_mb()
    base = start_rss
    t = time.perf_counter()
    vindex = VehicleIndex(vehicles)
    v_build = time.perf_counter() - t
    v_mem = rss_mb() - base
    t = time.perf_counter()
    pindex = PersonIndex(persons)
    p_build = time.perf_counter() - t
    p_mem = rss_mb() - base - v_mem

    exact = [rng.choice(plates) for _ in range(args.queries)]
    fuzzy = [ocr_noise(p, rng) for p in exact]
    ids = [e.id_number for e in rng.sample(persons, args.queries) if e.id_number][: args.queries // 2]
    names = [e.name for e in rng.sample(persons, args.queries * 3) if e.name][: args.queries // 2]
    rows = [
        ("plate, exact", *timed(lambda q: vindex.match(q, now), exact)),
        ("plate, OCR look-alike or no province", *timed(lambda q: vindex.match(q, now), fuzzy)),
        ("person, ID number", *timed(lambda q: pindex.match(id_number=q, at=now), ids)),
        ("person, name + pinyin", *timed(lambda q: pindex.match(name=q, birth_date=date(1980, 1, 1), at=now), names)),
    ]
    from rapidfuzz import fuzz, process

    sample = fuzzy[: args.baseline_queries]
    baseline = timed(lambda q: process.extractOne(q, plates, scorer=fuzz.ratio), sample)

    print(f"lists: {len(vindex):,} vehicles, {len(pindex):,} persons")
    print(f"build: vehicles {v_build:.1f} s, persons {p_build:.1f} s; index memory: vehicles {v_mem:.0f} MiB, "
          f"persons {p_mem:.0f} MiB, together {v_mem + p_mem:.0f} MiB (resident set growth)")
    print(f"whole process with both lists (entries + indexes + interpreter): {rss_mb():.0f} MiB resident "
          f"(entries alone {start_rss:.0f} MiB before indexing)")
    print()
    print("| lookup | p50 | p99 | throughput | speed-up over the rapidfuzz scan (p50) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, p50, p99, qps in rows:
        print(f"| {name} | {p50:.1f} µs | {p99:.1f} µs | {qps:,.0f}/s | {baseline[0] / p50:,.0f}x |")
    print(f"| baseline: rapidfuzz extractOne scan, OCR queries | {baseline[0] / 1000:.1f} ms | "
          f"{baseline[1] / 1000:.1f} ms | {baseline[2]:,.1f}/s | 1x |")
    found = sum(any(m.entry_id == v.entry_id for m in vindex.match(f, now)) for f, v in
                zip(fuzzy, [vehicles[plates.index(e)] for e in exact[:200]], strict=False))
    print(f"\nOCR-noised reads whose listed plate was among the matches: {found}/200")


if __name__ == "__main__":
    main()
