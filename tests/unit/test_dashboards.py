"""Grafana cannot run here: the provisioning is validated structurally (the queries themselves run
against a real InfluxDB in tests/integration/test_dashboard_queries.py)."""

import json
import pathlib

import yaml

from dashboards import build

GRAFANA = pathlib.Path(build.__file__).resolve().parent / "grafana"


def test_committed_dashboards_are_what_the_code_builds():
    assert build.write(check=True) == [], "run `python -m dashboards.build` and commit the result"


def test_datasource_provisioning_matches_what_panels_reference():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "influxdb.yaml").read_text())
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert ds["type"] == "influxdb" and ds["uid"] == build.DATASOURCE["uid"] and ds["jsonData"]["dbName"]
    for path in (GRAFANA / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"] == build.DATASOURCE
            assert all(t["datasource"] == build.DATASOURCE and t["rawQuery"] for t in panel["targets"])


def test_dashboard_provider_points_at_the_mounted_folder():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "safecity.yaml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].endswith("/safecity")
    compose = yaml.safe_load((GRAFANA.parents[1] / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert any(v.startswith("./dashboards/grafana/dashboards:") and v.split(":")[1] == provider["options"]["path"]
               for v in volumes)


def test_dashboards_are_well_formed():
    uids = set()
    for path in (GRAFANA / "dashboards").glob("*.json"):
        dash = json.loads(path.read_text())
        assert dash["uid"] not in uids and path.stem == dash["uid"]
        uids.add(dash["uid"])
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dash["panels"]:
            pos = panel["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0
            assert panel["title"] and panel["targets"]
            for target in panel["targets"]:
                q = target["query"]
                assert ";" not in q
                # every query follows the dashboard's time range, except the open-alert snapshot, which
                # must be right on any range: it reads the latest snapshot only
                assert "$timeFilter" in q or (build.SNAPSHOT in q and '"alerts_open' in q), q
    assert len(uids) == len(build.DASHBOARDS)


def test_every_wall_has_a_district_variable_that_filters_every_panel():
    for dash in build.DASHBOARDS:
        doc = build.render(dash)
        (variable,) = [v for v in doc["templating"]["list"] if v["name"] == "district"]
        assert variable["includeAll"] and variable["allValue"] == ".*" and "district" in variable["query"]
        for panel in doc["panels"]:
            for target in panel["targets"]:
                assert build.PLACE in target["query"], (dash.uid, panel["title"])
