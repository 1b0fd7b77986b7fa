#!/usr/bin/env bash
# Instructions per call of every dispatch case, counted by callgrind in the
# primary and in the secondary (another executable), so the figure does not
# swing with the host the way time does.
#
#   bench/dispatch-instructions.sh [BUILD_DIR] [> table]
#
# For each case, both programs run under valgrind --tool=callgrind with
# --toggle-collect=dispatch_warm_<case>_*, which counts only the case's loops
# (and what it calls), for N1 and then N2 calls; instructions/call is
# (Ir(N2) - Ir(N1)) / (N2 - N1), so what does not scale with the call count
# (the loop's prologue, lazy binding of the first call) cancels out.
set -euo pipefail

BUILD=${1:-build}
BIN=$BUILD/bench/mpops-bench-dispatch
N1=${N1:-10000}
N2=${N2:-20000}
CASES=(direct raw_fnptr_local raw_fnptr_shared mpops_id mpops_cached raw_burst_local mpops_port dpdk_port_array by_name dlsym)

if ! command -v valgrind >/dev/null; then
	echo "valgrind is not installed (apt-get install valgrind)" >&2
	exit 1
fi
if [ ! -x "$BIN" ]; then
	echo "$BIN not found: build first (ninja -C $BUILD)" >&2
	exit 1
fi

TMP=$(mktemp -d /tmp/mpops-dispatch-cg.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# Ir collected in a callgrind output file (0 if the case did not run there).
ir() {
	[ -f "$1" ] || { echo 0; return; }
	awk '/^summary:/ { print $2; found = 1 } END { if (!found) print 0 }' "$1"
}

# Run case $1 with $2 calls; callgrind files $TMP/p.$1.$2 and $TMP/s.$1.$2.
count() {
	local c=$1 n=$2 tog="--toggle-collect=dispatch_warm_${1}_*"
	valgrind --tool=callgrind --callgrind-out-file="$TMP/p.$c.$n" "$tog" \
		"$BIN" --case "$c" --runs 1 --calls "$n" --warmup 0 --no-cold --cpu -1 \
		--runtime-dir "$TMP" \
		--secondary-wrapper "valgrind --tool=callgrind --callgrind-out-file=$TMP/s.$c.$n $tog" \
		>"$TMP/log.$c.$n" 2>&1 || {
		echo "$c: the run under callgrind failed:" >&2
		grep -v '^==' "$TMP/log.$c.$n" >&2 || true
		exit 1
	}
}

per_call() {
	awk -v a="$1" -v b="$2" -v n1="$N1" -v n2="$N2" \
		'BEGIN { if (b == 0) print "-"; else printf "%.1f", (b - a) / (n2 - n1) }'
}

echo "instructions per call (callgrind: runs of $N1 and $N2 calls, difference / $((N2 - N1)); loop included)"
printf '%-18s %10s %10s\n' case primary secondary
for c in "${CASES[@]}"; do
	count "$c" "$N1"
	count "$c" "$N2"
	printf '%-18s %10s %10s\n' "$c" \
		"$(per_call "$(ir "$TMP/p.$c.$N1")" "$(ir "$TMP/p.$c.$N2")")" \
		"$(per_call "$(ir "$TMP/s.$c.$N1")" "$(ir "$TMP/s.$c.$N2")")"
done
echo "(- : not run there; raw_fnptr_shared is not called in the secondary)"
