"""Full garbage collections on a timer of the process's own, not every few seconds on the alarm path.

CPython runs a full (oldest-generation) collection whenever the objects that survived the young
collections grow by a quarter since the last one. A worker keeps tens of thousands of long-lived
objects (each gas sensor's decoded state, the registry, Faust's own) and promotes new ones all the
time, so it ran a full collection every 3-10 s, each walking all of them: logged in the worker at
1,500 gas readings/s, 23 full collections of 30-75 ms in two minutes, every one finding nothing
(``collected=0``), each holding the event loop while readings and alarms waited behind it.
(Since then the gas states, and the messages, are data the collector does not track at all:
``gc=False`` structs and tuples, processors/rules/gas.py; at 20,000 sensors a timed full
collection went from 100-170 ms to 21-39 ms.)

``defer_full_collections`` leaves the young collections as they are (they are short and find most
cyclic garbage) and keeps the automatic full ones from running; ``full_collection`` is then called
by the process on a timer (``SAFECITY_WORKER__FULL_GC_EVERY_S``), so cyclic garbage that reached the
oldest generation is still reclaimed, once every few minutes instead of every few seconds.
"""

from __future__ import annotations

import gc
import time

NEVER = 1_000_000_000  # young collections before the automatic full one: never, in practice


def defer_full_collections() -> None:
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)


def setup_done() -> None:
    """Move every object alive now (modules, settings, the registry, the app) out of the collector's
    sight: later full collections, the timed ones and any a library runs, need not walk them. In a
    worker joining the group, the full collections Faust ran during its first rebalance took 100-180 ms
    each with the registry just parsed. What is garbage now is collected first."""
    gc.collect()
    gc.freeze()


def full_collection() -> tuple[int, float]:
    """Collect every generation now; returns (objects found unreachable, seconds it took)."""
    started = time.perf_counter()
    found = gc.collect()
    return found, time.perf_counter() - started
