#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Chart of a bench/afxdp-pps.sh JSON file (gnuplot-nox, jq):
#
#   bench/afxdp-plot.sh RESULTS.json OUT.png
#
# Packets per second of each receiver and sender, rx and tx: the median of
# the rounds as a bar, every round as a point.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '4,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
for t in gnuplot jq; do
	command -v $t >/dev/null || { echo "$t missing: apt-get install gnuplot-nox jq" >&2; exit 1; }
done
DIR=$(mktemp -d /tmp/mpops-afxdp-plot-XXXXXX)
trap 'rm -rf "$DIR"' EXIT
x=0
for dir in rx tx; do
	for who in ours-primary ours-secondary dpdk; do
		jq -r --arg k "$who.$dir" --arg l "$dir $who" --argjson x $x \
			'"\($x) \"\($l)\" \(.median_pps[$k] / 1e6)"' "$1" >>"$DIR/bars"
		jq -r --arg k "$who.$dir" --argjson x $x \
			'.rounds_pps[$k][] | "\($x) \(. / 1e6)"' "$1" >>"$DIR/points"
		x=$((x + 1))
	done
	x=$((x + 1))
done
gnuplot <<GP
set terminal pngcairo size 900,480 font ",10" noenhanced
set output "$2"
set title "AF_XDP on veth, 64-byte frames: mpops afxdp (primary, secondary) and DPDK net_af_xdp\n(DPDK's secondary: 0, its burst functions are dummies)"
set ylabel "Mpps (bar: median; points: rounds)"
set style fill solid 0.6
set boxwidth 0.7
set yrange [0:*]
set xtics rotate by -25 nomirror
set key off
plot "$DIR/bars" using 1:3:xtic(2) with boxes lc rgb "#4a7ebb", \
     "$DIR/points" using 1:2 with points pt 7 ps 0.8 lc rgb "#222222"
GP
