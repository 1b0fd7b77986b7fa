#!/usr/bin/env bash
# Chart of a dispatch benchmark report: ns per call of every case, primary
# and secondary side by side, warm and cold.
#
#   bench/plot-dispatch.sh REPORT.json OUT.png
#
# REPORT.json is what `mpops-bench-dispatch --json` writes. Needs jq and
# gnuplot (Debian: jq, gnuplot-nox); the drawing is bench/plot-dispatch.gp.
set -euo pipefail

if [ $# -ne 2 ]; then
	sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
json=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
for tool in jq gnuplot; do
	command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/mpops-plot.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# One row per case: name, then median, p10, p90 (ns) for primary and
# secondary; "-" where a process did not measure it.
table() {
	jq -r --arg cold "$1" '
	  def row($r; $n): ($r.cases[] | select(.name == $n)) // {};
	  def cell($c): if ($c.ns_median // null) == null then "- - -"
	                else "\($c.ns_median) \($c.ns_p10) \($c.ns_p90)" end;
	  (.reports[] | select(.role == "primary")) as $p
	  | ((.reports[] | select(.role == "secondary")) // {cases: []}) as $s
	  | $p.cases[] | .name
	  | select(if $cold == "1" then endswith("_cold") else (endswith("_cold") | not) end)
	  | "\(sub("_cold$"; "")) \(cell(row($p; .))) \(cell(row($s; .)))"' "$json"
}
table 0 >"$tmp/warm.dat"
table 1 >"$tmp/cold.dat"

# The subtitle: the machine and the run's size.
sub=$(jq -r '"\(.machine.cpu), \(.machine.nproc) CPUs, \(.machine.kernel | split(" ")[1]), \(.machine.compiler); median of \(.config.runs) runs, bars p10-p90"' "$json")

term=png
gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo && term=pngcairo
hascold=0
[ -s "$tmp/cold.dat" ] && hascold=1
hassec=$(jq '[.reports[] | select(.role == "secondary")] | length' "$json")
gnuplot -e "warm='$tmp/warm.dat'; cold='$tmp/cold.dat'; out='$out'; term='$term'; sub='$sub'; hascold=$hascold; hassec=$hassec" \
	"$here/plot-dispatch.gp"
echo "wrote $out"
