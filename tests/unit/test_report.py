"""The governance report's figures and page (alerting/report.py), from synthetic facts."""

import json
import re
from datetime import UTC, datetime, timedelta

from alerting.report import Episode, Facts, build, kpis, render_html

T0 = datetime(2026, 11, 1, tzinfo=UTC)
M = timedelta(minutes=1)


def ep(kind, minute, ack=None, close=None, device="d-1", district="xuhui", site=""):
    at = T0 + minute * M
    return Episode(kind, "high", device, district, site, at, at + ack * M if ack is not None else None,
                   at + close * M if close is not None else None)


EPISODES = [
    ep("gas-level-1", 0, ack=5, close=30, device="gas-1", site="bldg-1"),
    ep("gas-level-2", 60, ack=20, device="gas-2", site="bldg-1"),  # handled late (target 15 min)
    ep("gas-level-1", 120, device="gas-3", district="pudong"),  # not handled
    ep("hotel-late-upload", 200, close=1, device="hotel-9"),
    ep("hotel-silent", 300, device="hotel-9"),
    ep("camera-tampered", 24 * 60 + 5, ack=1, close=2, device="cp-1-L1"),
]


def test_the_key_figures_are_counted_exactly():
    f = Facts(EPISODES, registrations=40, on_time_share=0.9, hotels_total=5, hotels_reporting=4,
              cameras={"cp-1-L1": (0.75, 100), "cp-2-L1": (1.0, 300)})
    k = kpis(f, target_s=900)
    assert (k["warnings_issued"], k["warnings_handled"]) == (6, 4)
    assert k["handled_share"] == 0.6667 and k["handled_in_time_share"] == 0.5  # gas-2 took 20 min
    assert k["median_time_to_handle_s"] == 180.0  # 5, 20, 1, 1 min -> median 3 min
    assert k["median_time_to_close_s"] == 120.0  # closed after 30, 1 and 2 min
    assert (k["gas_alarms"], k["gas_sites_with_alarms"]) == (3, 2)  # bldg-1 and gas-3
    assert k["hotel_coverage_share"] == 0.8 and k["camera_healthy_share"] == 0.9375  # (75 + 300) / 400
    assert k["camera_warnings"] == 1


def test_the_page_shows_every_figure_and_no_one():
    current = Facts(EPISODES, registrations=40, on_time_share=0.9, hotels_total=5, hotels_reporting=4,
                    cameras={"cp-1-L1": (0.75, 100)})
    previous = Facts(EPISODES[:2], registrations=30, on_time_share=0.8, hotels_total=5, hotels_reporting=5)
    data = build(current, previous, T0, T0 + timedelta(days=7), None, 900)
    page = render_html(data)
    embedded = json.loads(re.search(r'<script id="report-data" type="application/json">(.*?)</script>', page,
                                    re.S).group(1))
    assert embedded == json.loads(json.dumps(data))
    assert data["hotels_late_or_silent"] == [{"hotel": "hotel-9", "late_uploads": 1, "silent": 1}]
    assert data["gas_sites_with_alarms"] == [{"site": "bldg-1", "alarms": 2}, {"site": "gas-3", "alarms": 1}]
    assert data["cameras_most_downtime"] == [{"camera": "cp-1-L1", "unhealthy_share": 0.25, "frames": 100}]
    assert data["warnings_per_day"] == {"2026-11-01": {"gas": 3, "hotel": 2}, "2026-11-02": {"camera": 1}}
    assert "<td>Guest registrations</td><td class=n>40</td><td class=n>30</td><td class=n>▲ +10</td>" in page
    assert "<td>Registrations uploaded on time</td><td class=n>90.0 %</td><td class=n>80.0 %</td>" \
           "<td class=n>▲ +10.0 pt</td>" in page
    assert "<svg" in page and "Guest registrations" in page
