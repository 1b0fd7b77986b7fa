#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Charts of an mpops-bench-pps JSON file (gnuplot-nox; no other tool):
#
#   bench/pps-plot.sh RESULTS.json OUT_PREFIX
#
# writes OUT_PREFIX.png (Mpps per setting, both backends), OUT_PREFIX-ratio.png
# (ours / DPDK's, paired by round), OUT_PREFIX-kicks.png and
# OUT_PREFIX-scaling.png. The JSON has one case per line, so awk reads it.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
JSON=$1
OUT=$2
command -v gnuplot >/dev/null || { echo "gnuplot missing: apt-get install gnuplot-nox" >&2; exit 1; }
DIR=$(mktemp -d /tmp/mpops-pps-plot-XXXXXX)
trap 'rm -rf "$DIR"' EXIT

# One awk pass: every case line becomes a row of the data file it belongs to.
awk -v dir="$DIR" '
function get(k,   m) {
	if (match($0, "\"" k "\": (\"[^\"]*\"|[^,}]*)")) {
		m = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 4)
		gsub("\"", "", m)
		return m == "null" ? "-" : m
	}
	return "-"
}
/"group": / {
	g = get("group"); d = get("driver"); b = get("backend"); mo = get("mode")
	s = get("size"); mr = get("mergeable") == "true" ? "mrg" : "no-mrg"; r = get("role")
	if (g == "compare") {
		key = b SUBSEP mo " " s " " mr
		if (!(key in seen)) { seen[key] = 1; order[b, ++n[b]] = mo " " s " " mr }
		col = d == "mpops" ? (r == "primary" ? 1 : 2) : (r == "primary" ? 3 : 0)
		if (col) {
			med[key, col] = get("mpps_median"); lo[key, col] = get("mpps_min")
			hi[key, col] = get("mpps_max")
		}
		if (d == "mpops") {
			rc = r == "primary" ? 1 : 2
			rm[key, rc] = get("ratio_vs_dpdk"); rl[key, rc] = get("ratio_vs_dpdk_min")
			rh[key, rc] = get("ratio_vs_dpdk_max")
		}
	} else if (g == "kicks") {
		ev = get("event_idx"); kd = get("backend_kick_driven") == "true" ? "kick-driven" : "polling"
		lbl = (d == "mpops" ? "mpops" : "dpdk") " " mo " " kd (d == "mpops" ? (ev == "true" ? " evidx" : " no-evidx") : "")
		printf "\"%s\" %s %s\n", lbl, get("mpps_median"), get("kicks_per_packet") > (dir "/kicks.dat")
	} else if (g == "scaling") {
		printf "%s %s %s %s %s\n", get("secondaries"), get("mpps_median"), get("mpps_min"),
			get("mpps_max"), get("slowest_share") > (dir "/scaling-" mo ".dat")
	}
}
END {
	split("mpops-vhost dpdk-vhost", bs, " ")
	for (i = 1; i <= 2; i++) {
		b = bs[i]
		f = dir "/compare-" b ".dat"
		printf "" > f
		for (j = 1; j <= n[b]; j++) {
			key = b SUBSEP order[b, j]
			printf "\"%s\"", order[b, j] > f
			for (c = 1; c <= 3; c++)
				printf " %s %s %s", (key, c) in med ? med[key, c] : "-",
					(key, c) in lo ? lo[key, c] : "-", (key, c) in hi ? hi[key, c] : "-" > f
			printf "\n" > f
			printf "\"%s %s\"", b, order[b, j] > (dir "/ratio.dat")
			for (c = 1; c <= 2; c++)
				printf " %s %s %s", (key, c) in rm ? rm[key, c] : "-",
					(key, c) in rl ? rl[key, c] : "-", (key, c) in rh ? rh[key, c] : "-" > (dir "/ratio.dat")
			printf "\n" > (dir "/ratio.dat")
		}
	}
}' "$JSON"

# Only what the run has: the backends with compare cases, the scaling modes.
bes=""
for b in mpops-vhost dpdk-vhost; do [ -s "$DIR/compare-$b.dat" ] && bes="$bes $b"; done
scal=""
for m in txonly loopback; do [ -s "$DIR/scaling-$m.dat" ] && scal="$scal $m"; done
kicks=0
[ -s "$DIR/kicks.dat" ] && kicks=1
rm -f "$OUT".png "$OUT"-ratio.png "$OUT"-kicks.png "$OUT"-scaling.png
gnuplot -e "dir='$DIR'; out='$OUT'; backends='${bes# }'; scaling='${scal# }'; kicks=$kicks" \
	"$(dirname "$0")/plot-pps.gp"
ls "$OUT"*.png
