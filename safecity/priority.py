"""CPU priority for the processes off the alarm path.

Image analysis, retro-hunts, the metrics writer and, run locally, InfluxDB with its adapter and
Kafka's log cleaner thread do work that may wait; the alarm path (ingest, worker, alert service,
Kafka's request handling, the MQTT broker) may not. On a machine whose cores they share, the kernel
gives a process at niceness 10 about a tenth of the share of one at 0, and a waking alarm-path
process preempts it sooner, so a burst of InfluxDB writes, of image checks or of compaction does not
sit in front of an alarm (``background_nice`` in the settings; 0 runs everything at one priority).
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


def thread_names(pid: int) -> dict[int, str]:
    """The threads of process ``pid`` by ID, with their names (``comm``: 15 characters at most); those
    that end while being read are left out, and a process that is gone has none."""
    names = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return names
    for tid in map(int, tids):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names[tid] = f.read().strip()
        except OSError:  # the thread ended
            continue
    return names


def lower_threads(pid: int, name_prefix: str, nice: int) -> list[int]:
    """Raise to ``nice`` the niceness of the threads of process ``pid`` whose name starts with
    ``name_prefix``: on Linux a thread's niceness is its own. For one thread of a server that does
    work off the alarm path (Kafka's log cleaner). Returns the thread IDs now at ``nice`` or above;
    none where there is no such thread or it is not permitted."""
    done = []
    for tid, name in thread_names(pid).items():
        if not name.startswith(name_prefix):
            continue
        try:
            if nice > os.getpriority(os.PRIO_PROCESS, tid):
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            done.append(tid)
        except OSError:  # the thread ended, or not permitted
            continue
    return done
