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
    store = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "alert-store.yaml").read_text())
    (pg,) = store["datasources"]
    assert (pg["type"], pg["uid"]) == (build.ALERT_STORE["type"], build.ALERT_STORE["uid"])
    assert pg["user"] == "safecity_reader" and pg["jsonData"]["database"] == "alerts"
    assert pg["secureJsonData"]["password"] == "${ALERTS_READER_PASSWORD}"  # from the environment, not here
    sources = {build.DATASOURCE["uid"]: build.DATASOURCE, build.ALERT_STORE["uid"]: build.ALERT_STORE}
    used = set()
    for path in (GRAFANA / "dashboards").glob("*.json"):
        dash = json.loads(path.read_text())
        for panel in dash["panels"]:
            source = sources[panel["datasource"]["uid"]]
            assert panel["datasource"] == source
            assert all(t["datasource"] == source and t["rawQuery"] for t in panel["targets"])
            used.add(source["uid"])
        for annotation in dash["annotations"]["list"]:
            assert annotation["datasource"] == build.DATASOURCE
    assert used == set(sources)
    compose = yaml.safe_load((GRAFANA.parents[1] / "docker-compose.yml").read_text())
    grafana_env = compose["services"]["grafana"]["environment"]
    assert {"ALERTS_DB_HOST", "ALERTS_DB_SSLMODE", "ALERTS_READER_PASSWORD", "INFLUX_URL", "INFLUX_TOKEN"} <= set(
        grafana_env)


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
                q = target.get("query") or target["rawSql"]
                assert ";" not in q
                if "rawSql" in target:  # the alert store's view holds the current state: no time range
                    assert "FROM alert_board" in q and build.SQL_PLACE in q, q
                    continue
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
                assert build.PLACE in target.get("query", "") or build.SQL_PLACE in target.get("rawSql", ""), (
                    dash.uid, panel["title"])
        for annotation in doc["annotations"]["list"]:
            assert "$district" in annotation["query"] and "$timeFilter" in annotation["query"]


def test_severity_colours_are_the_same_on_every_wall_and_in_the_console():
    css = (GRAFANA.parents[1] / "console" / "static" / "console.css").read_text()
    for severity, colour in build.SEVERITY_COLOURS.items():
        assert f"--{severity}: {colour};" in css, severity
    for dash in build.DASHBOARDS:
        for panel in build.render(dash)["panels"]:
            if panel["type"] != "stat":
                assert panel["fieldConfig"]["overrides"] == build.SEVERITY_OVERRIDES


def test_legends_say_what_a_series_is():
    """Grafana's default legend for a raw InfluxQL query is "measurement.function" (plate_reads.sum):
    each query names its series, by its GROUP BY tags or by name."""
    for dash in build.DASHBOARDS:
        for panel in build.render(dash)["panels"]:
            aliases = [t["alias"] for t in panel["targets"] if "query" in t]
            assert all(a and "." not in a.replace("$tag_", "") for a in aliases), (dash.uid, panel["title"])
            if panel["type"] == "timeseries":
                assert len(set(aliases)) == len(aliases), (dash.uid, panel["title"])
    city = {p["title"]: p for p in build.render(build.CITY)["panels"]}
    assert [t["alias"] for t in city["Events per second by kind"]["targets"]] == ["plate reads", "registrations",
                                                                                 "gas readings"]
    assert [t["alias"] for t in city["Alert transitions by type"]["targets"]] == ["$tag_type"]
    assert [t["alias"] for t in city["Open alerts by severity"]["targets"]] == ["$tag_severity"]  # the outer query's
