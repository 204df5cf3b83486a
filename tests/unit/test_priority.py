"""Work off the alarm path runs at a lower CPU priority (safecity/priority.py), in real processes."""

from __future__ import annotations

import os
import subprocess
import sys

from safecity.priority import lower_threads, niced, thread_names


def niceness_of_thread_started_after(nice: int) -> list[int]:
    """In a fresh process: lower_priority(nice), then the niceness of the main thread and of a thread
    it starts afterwards (Linux keeps a niceness per thread)."""
    code = (
        "import os, threading\n"
        "from safecity.priority import lower_priority\n"
        f"got = lower_priority({nice})\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, 0)))\n"
        "t.start(); t.join()\n"
        "print(got, os.getpriority(os.PRIO_PROCESS, 0), seen[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [int(x) for x in out.stdout.split()]


def test_lower_priority_reaches_the_threads_started_after_it():
    expected = max(10, os.getpriority(os.PRIO_PROCESS, 0))  # 10, unless the tests themselves run niced further
    assert niceness_of_thread_started_after(10) == [expected] * 3


def test_lower_priority_never_raises_priority():
    out = subprocess.run(["nice", "-n", "15", sys.executable, "-c",
                          "from safecity.priority import lower_priority; print(lower_priority(10))"],
                         capture_output=True, text=True, check=True)
    assert int(out.stdout) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 15)  # where nice -n 15 put it


def test_a_niced_command_runs_at_that_niceness_under_the_same_pid():
    proc = subprocess.Popen(niced(["sh", "-c", "cut -d' ' -f19 /proc/$$/stat; echo $$"], 7), stdout=subprocess.PIPE,
                            text=True)
    out, _ = proc.communicate(timeout=10)
    nice, pid = (int(x) for x in out.split())
    assert nice == max(7, os.getpriority(os.PRIO_PROCESS, 0))
    assert pid == proc.pid  # stopped by PID: the PID recorded is the server's own
    assert niced(["true"], 0) == ["true"]


def test_lower_threads_lowers_only_the_named_threads_of_another_process():
    """As for Kafka's log cleaner: one thread of a running server, found by its name, the rest unchanged."""
    code = (
        "import threading, time\n"
        "named = threading.Barrier(3)\n"
        "def run(name):\n"
        "    open(f'/proc/self/task/{threading.get_native_id()}/comm', 'w').write(name)\n"
        "    named.wait(); time.sleep(30)\n"
        "for name in ('kafka-log-cleaner-thread-0', 'data-plane-kafka-request-handler-0'):\n"
        "    threading.Thread(target=run, args=(name,), daemon=True).start()\n"
        "named.wait(); print('ready', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        base = os.getpriority(os.PRIO_PROCESS, 0)
        names = thread_names(proc.pid)
        assert sorted(names.values()).count("kafka-log-clean") == 1  # comm keeps 15 characters
        lowered = lower_threads(proc.pid, "kafka-log-clean", base + 5)
        assert [names[t] for t in lowered] == ["kafka-log-clean"]
        for tid, name in names.items():
            assert os.getpriority(os.PRIO_PROCESS, tid) == (min(19, base + 5) if tid in lowered else base), name
        assert lower_threads(proc.pid, "kafka-log-clean", base) == lowered  # never raises it back
        assert os.getpriority(os.PRIO_PROCESS, lowered[0]) == min(19, base + 5)
        assert lower_threads(proc.pid, "no-such-thread", base + 5) == []
    finally:
        proc.kill()
        proc.wait()
    assert lower_threads(proc.pid, "kafka-log-clean", 10) == [] and thread_names(proc.pid) == {}  # it is gone
