#!/bin/bash
# InfluxDB 2 first-start setup for SafeCity Stream (mounted into /docker-entrypoint-initdb.d/; the
# image runs it once, after creating the organisation, the raw bucket `safecity` and the admin token).
#
# - DBRP mappings, so the InfluxQL wall displays (dashboards/) and `safecity report` query database
#   `safecity`: retention policy `autogen` -> bucket `safecity` (raw points, DOCKER_INFLUXDB_INIT_RETENTION,
#   30 days by default) and `rollup` -> bucket `safecity_rollup` (INFLUX_ROLLUP_RETENTION, 400 days).
# - A task writing 5-minute means, minima and maxima of every numeric field to `safecity_rollup`, so
#   long ranges read `safecity.rollup.<measurement>` instead of raw points.
set -euo pipefail
org=${DOCKER_INFLUXDB_INIT_ORG}
raw_id=$(influx bucket list --org "$org" --name safecity --hide-headers | cut -f1)
influx bucket create --org "$org" --name safecity_rollup --retention "${INFLUX_ROLLUP_RETENTION:-400d}"
rollup_id=$(influx bucket list --org "$org" --name safecity_rollup --hide-headers | cut -f1)
influx v1 dbrp create --org "$org" --db safecity --rp autogen --bucket-id "$raw_id" --default
influx v1 dbrp create --org "$org" --db safecity --rp rollup --bucket-id "$rollup_id"
influx task create --org "$org" <<'FLUX'
import "types"

option task = {name: "safecity-rollup-5m", every: 5m, offset: 30s}

data = from(bucket: "safecity")
    |> range(start: -task.every)
    |> filter(fn: (r) => types.isNumeric(v: r._value))

union(tables: [
    data |> aggregateWindow(every: 5m, fn: mean, createEmpty: false) |> map(fn: (r) => ({r with _field: r._field + "_mean"})),
    data |> aggregateWindow(every: 5m, fn: min, createEmpty: false) |> map(fn: (r) => ({r with _field: r._field + "_min"})),
    data |> aggregateWindow(every: 5m, fn: max, createEmpty: false) |> map(fn: (r) => ({r with _field: r._field + "_max"})),
])
    |> to(bucket: "safecity_rollup")
FLUX
echo "safecity: DBRP mappings (autogen -> safecity, rollup -> safecity_rollup) and the 5-minute roll-up task created"
