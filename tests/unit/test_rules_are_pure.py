"""Rule modules and models import no I/O library: rules stay plain code, tested directly."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FORBIDDEN = {"paho", "faust", "aiokafka", "influxdb_client", "mode", "socket", "requests", "urllib", "http"}
PURE = sorted((ROOT / "processors" / "rules").glob("*.py")) + sorted((ROOT / "models").glob("*.py")) + [
    ROOT / "alerting" / name for name in ("lifecycle.py", "policy.py", "routing.py", "replay.py")]
FORBIDDEN |= {"aiohttp", "sqlalchemy", "alembic", "psycopg", "smtplib"}


def imported_roots(path: pathlib.Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_io_imports(path):
    assert not imported_roots(path) & FORBIDDEN


@pytest.mark.parametrize("path", sorted((ROOT / "models").glob("*.py")), ids=lambda p: p.name)
def test_models_import_nothing_internal(path):
    assert not imported_roots(path) & {"ingest", "processors", "devices", "deploy", "safecity", "dashboards"}


def test_the_check_covers_modules():
    assert len(PURE) >= 6
