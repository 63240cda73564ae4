#!/bin/bash
# --workers 2 vs --ray (a local cluster the build starts) vs --ray auto (a cluster already running)
# on the Malta build, alternating the modes; then one z18 pair. Run it on a quiet machine.
# One JSON line per build, then one JSON object of per-mode means and ratios on the last line.
# Usage: bash bench/ray_vs_pool.sh [ROUNDS]   (data from $GEOSEEK_DATA or ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_USAGE_STATS_ENABLED=0
ROUNDS=${1:-3}
P=${GEOSEEK_DATA:-../shared/data}/osm/malta-2018-08.osm.pbf
BIN=.venv/bin
LOG=$(mktemp)
run() { rm -rf "/tmp/rvp-$1"; $BIN/geoseek build osm "$P" --out "/tmp/rvp-$1" "${@:2}" --json 2>/dev/null | tail -1 |
  python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'mode': '$1', 'tiles_per_s': round(d['tiles_per_s'],1), 'seconds': round(d['seconds'],2), 'engine': d['engine']}))" | tee -a "$LOG"; rm -rf "/tmp/rvp-$1"; }
for r in $(seq "$ROUNDS"); do run w2 --workers 2; run ray --ray; done
$BIN/ray start --head --num-cpus 2 --node-ip-address 127.0.0.1 --include-dashboard false >/dev/null 2>&1; sleep 5
for r in $(seq "$ROUNDS"); do run w2auto --workers 2; run rayauto --ray auto; done
$BIN/ray stop >/dev/null 2>&1; sleep 3
run z18w2 --workers 2 --zoom 18; run z18ray --ray --zoom 18
$BIN/python - "$LOG" <<'PY'
import json, sys
from statistics import mean
rows = [json.loads(l) for l in open(sys.argv[1])]
m = {k: mean(r["tiles_per_s"] for r in rows if r["mode"] == k) for k in {r["mode"] for r in rows}}
from geoseek.runtime import describe_runtime
print(json.dumps({"bench": "ray_vs_pool", "tiles_per_s": m, "ray_vs_w2": m["ray"] / m["w2"],
                  "ray_auto_vs_w2": m["rayauto"] / m["w2auto"], "z18_ray_vs_w2": m["z18ray"] / m["z18w2"],
                  "cpu": describe_runtime()}, default=str))
PY
rm -f "$LOG"
