"""The health endpoint's report and answer codes (safecity/health.py), on a real local HTTP server."""

import socket
import time

from safecity import health as h


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthy_only_when_every_check_passes():
    state = {"connected": True}
    hh = h.Health("ingest")
    hh.add("mqtt", lambda: h.Check(state["connected"], {"down_s": {}}))
    hh.add("broken", lambda: h.Check(True) if state["connected"] else 1 / 0)
    port = free_port()
    hh.serve("127.0.0.1", port)
    try:
        ok, body = h.probe(f"http://127.0.0.1:{port}/health")
        assert ok and body["ok"] and body["checks"]["mqtt"] == {"ok": True, "down_s": {}}
        state["connected"] = False
        ok, body = h.probe(f"http://127.0.0.1:{port}/health")
        assert not ok and body["checks"]["mqtt"]["ok"] is False
        assert body["checks"]["broken"] == {"ok": False, "error": "ZeroDivisionError"}  # a failing check fails, never crashes
        assert h.main([f"http://127.0.0.1:{port}/health"]) == 1
        state["connected"] = True
        assert h.main([f"http://127.0.0.1:{port}/health"]) == 0
        assert h.probe(f"http://127.0.0.1:{port}/other")[0] is False
    finally:
        hh.close()
    assert h.main([f"http://127.0.0.1:{port}/health"]) == 1  # nobody listening


def test_a_stalled_loop_fails_the_loop_check():
    hh = h.Health("worker")
    assert hh.report()["checks"]["loop"]["ok"]
    hh.beat = time.monotonic() - h.LOOP_STALL_S - 1
    report = hh.report()
    assert not report["ok"] and not report["checks"]["loop"]["ok"]
