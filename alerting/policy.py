"""The notification policy file: receivers, routes (first match wins), silences, grouping.

::

    receivers:                      # name -> channels; several channels allowed
      duty-xuhui: {webhook: "https://…", email: ["duty@example.org"]}
      command-center: {dingtalk: {url: "https://…", secret: "SEC…"}, mqtt: true}
    routes:                         # first match wins; every key of match is optional
      - match: {type: "gas-*", severity: [critical, high], district: xuhui}
        receivers: [duty-xuhui]
        remind_every: 15m           # while firing and unacknowledged
        escalate:                   # from the first notification, while unacknowledged
          - {after: 10m, receivers: [supervisor-xuhui]}
    silences:
      - {match: {device: gas-007}, from: 2026-11-29T08:00:00Z, until: 2026-11-29T12:00:00Z, by: li, reason: x}
    group_window: 1m                # a burst of one type at one site: one grouped notification

Channels: ``webhook`` (a URL, or ``{url, secret}``), ``email`` (addresses), ``dingtalk``,
``feishu`` (a URL, or ``{url, secret}``), ``wecom`` (a URL), ``mqtt`` (true). Match keys:
``type``, ``district``, ``site``, ``device``, ``grid`` (globs: ``gas-*``), ``severity`` and ``route``
(the type's default route group, see models/alerts.py), each a value or a list.

Parsing is pure; every error names the line.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml

from models.alerts import Severity

CHANNELS = ("webhook", "email", "dingtalk", "feishu", "wecom", "mqtt")
MATCH_KEYS = ("type", "severity", "district", "site", "device", "grid", "route")
GLOB_KEYS = frozenset({"type", "district", "site", "device", "grid"})  # values may use * and ?
DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class PolicyError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What a route or silence can match on."""

    type: str
    severity: str
    device: str
    district: str = ""
    site: str = ""
    grid: str = ""
    route: str = ""


@dataclass(frozen=True, slots=True)
class Match:
    terms: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __call__(self, facts: AlertFacts) -> bool:
        for key, values in self.terms:
            got = getattr(facts, key)
            if key in GLOB_KEYS:
                if not any(fnmatch.fnmatchcase(got, v) for v in values):
                    return False
            elif got not in values:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Channel:
    kind: str
    target: str  # URL, address or "" (mqtt)
    secret: str = ""


@dataclass(frozen=True, slots=True)
class Receiver:
    name: str
    channels: tuple[Channel, ...]


@dataclass(frozen=True, slots=True)
class Escalation:
    after: timedelta
    receivers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Route:
    match: Match
    receivers: tuple[str, ...]
    remind_every: timedelta | None = None
    escalate: tuple[Escalation, ...] = ()
    line: int = 0


@dataclass(frozen=True, slots=True)
class Silence:
    match: Match
    start: datetime
    until: datetime
    by: str
    reason: str

    def covers(self, facts: AlertFacts, at: datetime) -> bool:
        return self.start <= at < self.until and self.match(facts)


@dataclass(frozen=True)
class Policy:
    receivers: dict[str, Receiver] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    silences: tuple[Silence, ...] = ()
    group_window: timedelta = timedelta(minutes=1)

    def route_for(self, facts: AlertFacts) -> Route | None:
        return next((r for r in self.routes if r.match(facts)), None)

    def silence_for(self, facts: AlertFacts, at: datetime) -> Silence | None:
        return next((s for s in self.silences if s.covers(facts, at)), None)


# --------------------------------------------------------------------------- parsing
def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping(node: yaml.Node, what: str, allowed: tuple[str, ...] | None = None) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise PolicyError(_line(node), f"{what} must be a mapping")
    out: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if not isinstance(name, str) or not name:
            raise PolicyError(_line(key), f"{what}: keys must be names")
        if allowed is not None and name not in allowed:
            raise PolicyError(_line(key), f"{what}: unknown key {name!r} (known: {', '.join(allowed)})")
        if name in out:
            raise PolicyError(_line(key), f"{what}: {name!r} given twice")
        out[name] = value
    return out


def _scalar(node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.value == "":
        raise PolicyError(_line(node), f"{what} must be a non-empty value")
    return str(node.value)


def _list(node: yaml.Node, what: str, empty_ok: bool = False) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode) and not node.value and empty_ok:
        return []
    if isinstance(node, yaml.ScalarNode):
        return [node]
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise PolicyError(_line(node), f"{what} must be a value or a non-empty list")
    return list(node.value)


def duration(text: str, line: int, what: str) -> timedelta:
    m = DURATION_RE.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise PolicyError(line, f"{what} must be a positive duration such as 90s, 15m, 2h (got {text[:40]!r})")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def _time(node: yaml.Node, what: str) -> datetime:
    text = _scalar(node, what)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PolicyError(_line(node), f"{what} must be an ISO 8601 time with a zone") from None
    if value.tzinfo is None:
        raise PolicyError(_line(node), f"{what} must carry a time zone")
    return value


def _match(node: yaml.Node | None) -> Match:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return Match()
    terms = []
    for key, value in _mapping(node, "match", MATCH_KEYS).items():
        values = tuple(_scalar(v, f"match.{key}") for v in _list(value, f"match.{key}"))
        if key == "severity":
            for v, n in zip(values, _list(value, "match.severity"), strict=True):
                if v not in Severity.__members__.values():
                    raise PolicyError(_line(n), f"unknown severity {v!r} (known: {', '.join(Severity)})")
        terms.append((key, values))
    return Match(tuple(terms))


def _channel(kind: str, node: yaml.Node) -> list[Channel]:
    if kind == "mqtt":
        if _scalar(node, "mqtt") not in ("true", "True", "yes"):
            raise PolicyError(_line(node), "mqtt must be true")
        return [Channel("mqtt", "")]
    if kind == "email":
        out = []
        for n in _list(node, "email"):
            addr = _scalar(n, "email")
            if not re.match(r"^[^@\s]+@[^@\s]+$", addr):
                raise PolicyError(_line(n), f"{addr[:60]!r} is not an e-mail address")
            out.append(Channel("email", addr))
        return out
    if isinstance(node, yaml.MappingNode):
        fields = _mapping(node, kind, ("url", "secret"))
        if "url" not in fields:
            raise PolicyError(_line(node), f"{kind} needs a url")
        url, secret = _scalar(fields["url"], f"{kind}.url"), _scalar(fields["secret"], "secret") if "secret" in fields else ""
    else:
        url, secret = _scalar(node, kind), ""
    if not re.match(r"^https?://", url):
        raise PolicyError(_line(node), f"{kind} url must start with http:// or https://")
    return [Channel(kind, url, secret)]


def parse_policy(text: str) -> Policy:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError(mark.line + 1 if mark else 1, f"not YAML: {getattr(exc, 'problem', exc)}") from None
    if root is None:
        raise PolicyError(1, "the policy is empty")
    top = _mapping(root, "policy", ("receivers", "routes", "silences", "group_window"))
    receivers: dict[str, Receiver] = {}
    for name, value in (_mapping(top["receivers"], "receivers").items() if "receivers" in top else []):
        chans = [c for kind, n in _mapping(value, f"receiver {name}", CHANNELS).items() for c in _channel(kind, n)]
        if not chans:
            raise PolicyError(_line(value), f"receiver {name} has no channel")
        receivers[name] = Receiver(name, tuple(chans))

    def known(nodes: list[yaml.Node], what: str) -> tuple[str, ...]:
        names = tuple(_scalar(n, what) for n in nodes)
        for name, n in zip(names, nodes, strict=True):
            if name not in receivers:
                raise PolicyError(_line(n), f"unknown receiver {name!r}")
        return names

    routes = []
    for node in _list(top["routes"], "routes", empty_ok=True) if "routes" in top else []:
        r = _mapping(node, "route", ("match", "receivers", "remind_every", "escalate"))
        if "receivers" not in r:
            raise PolicyError(_line(node), "a route needs receivers")
        escalations = []
        for e_node in _list(r["escalate"], "escalate") if "escalate" in r else []:
            e = _mapping(e_node, "escalation", ("after", "receivers"))
            if "after" not in e or "receivers" not in e:
                raise PolicyError(_line(e_node), "an escalation needs after and receivers")
            escalations.append(Escalation(duration(_scalar(e["after"], "after"), _line(e["after"]), "after"),
                                          known(_list(e["receivers"], "receivers"), "receiver")))
        if [x.after for x in escalations] != sorted(x.after for x in escalations):
            raise PolicyError(_line(r["escalate"]), "escalation steps must be in order of their 'after'")
        remind = r.get("remind_every")
        routes.append(Route(_match(r.get("match")), known(_list(r["receivers"], "receivers"), "receiver"),
                            duration(_scalar(remind, "remind_every"), _line(remind), "remind_every") if remind else None,
                            tuple(escalations), _line(node)))
    silences = []
    for node in _list(top["silences"], "silences", empty_ok=True) if "silences" in top else []:
        s = _mapping(node, "silence", ("match", "from", "until", "by", "reason"))
        for need in ("from", "until", "by", "reason"):
            if need not in s:
                raise PolicyError(_line(node), f"a silence needs {need}")
        start, until = _time(s["from"], "from"), _time(s["until"], "until")
        if until <= start:
            raise PolicyError(_line(s["until"]), "until must be after from")
        silences.append(Silence(_match(s.get("match")), start, until, _scalar(s["by"], "by"),
                                _scalar(s["reason"], "reason")))
    group = top.get("group_window")
    window = timedelta(minutes=1)
    if group is not None:
        text = _scalar(group, "group_window")
        window = timedelta(0) if text in ("0", "0s", "off") else duration(text, _line(group), "group_window")
    return Policy(receivers, tuple(routes), tuple(silences), window)


def load_policy(path: Any) -> Policy:
    with open(path, encoding="utf-8") as fh:
        return parse_policy(fh.read())
