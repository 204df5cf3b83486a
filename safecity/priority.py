"""CPU priority for the processes off the alarm path.

Image analysis, retro-hunts, the metrics writer and (run locally) InfluxDB and its adapter do work
that may wait; the alarm path (ingest, worker, alert service, Kafka, the broker) may not. On a
machine whose cores they share, the kernel gives a process at niceness 10 about a tenth of the
share of one at 0, and a waking alarm-path process preempts it sooner, so a burst of InfluxDB
writes or of image checks does not sit in front of an alarm (``background_nice`` in the settings;
0 runs everything at one priority).
"""

from __future__ import annotations

import os


def lower_priority(nice: int) -> int:
    """Raise the calling thread's niceness to ``nice`` (never lower it); the threads it starts later
    inherit it, so call this first thing in a process. Returns the niceness it runs at."""
    try:
        if nice > os.getpriority(os.PRIO_PROCESS, 0):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:  # not permitted here: the priority it had
        pass
    return os.getpriority(os.PRIO_PROCESS, 0)


def niced(command: list[str], nice: int) -> list[str]:
    """``command`` started at niceness ``nice``, or this process's if that is higher (every thread
    of it, and the same PID: ``nice`` execs it)."""
    step = nice - os.getpriority(os.PRIO_PROCESS, 0)  # nice -n adds to the niceness it starts at
    return ["nice", "-n", str(step), *command] if step > 0 else command
