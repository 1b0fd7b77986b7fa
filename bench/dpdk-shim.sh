#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net_mpops (drivers/dpdk) against DPDK's own net_virtio_user, in the same
# dpdk-testpmd configuration against the same backend (mpops-vhost, busy
# polling: sink for txonly, source for rxonly), interleaved in one run.
#
#   bench/dpdk-shim.sh [BUILD_DIR] [--rounds N] [--seconds S] [--no-callgrind]
#
# Rates: testpmd's own per-second Tx-pps / Rx-pps (--stats-period=1), the
# median of each run's samples after the first two; runs alternate driver by
# driver and the order flips every round; ratio = net_mpops / virtio_user per
# round. Instructions per packet: testpmd under callgrind for two durations,
# (Ir(T2) - Ir(T1)) / (packets(T2) - packets(T1)), which cancels start-up and
# tear-down; per shared object too (Debian's DPDK carries no symbols for its
# static functions). Both frontends: testpmd --no-huge -m 256, lcores 0@1,1@1
# (the backend on CPU 0), 64-byte frames, 1 queue pair, 8192 mbufs.
#
# Every process started here is ended by its pid; the temporary directory
# and DPDK's runtime directories are removed.
set -euo pipefail

BUILD=build
ROUNDS=3
SECS=6
CG=1
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift ;;
	--seconds) SECS=$2; shift ;;
	--no-callgrind) CG=0 ;;
	-h|--help) sed -n '4,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) BUILD=$1 ;;
	esac
	shift
done
cd "$(dirname "$0")/.."
VHOST=$BUILD/drivers/virtio/backend/mpops-vhost
PMD=$BUILD/drivers/dpdk/librte_net_mpops.so
TESTPMD=${TESTPMD:-/usr/bin/dpdk-testpmd}
for f in "$VHOST" "$PMD" "$TESTPMD"; do
	[ -e "$f" ] || { echo "missing: $f (build first; apt-get install dpdk-dev)" >&2; exit 1; }
done
[ $CG = 0 ] || command -v valgrind >/dev/null || { echo "valgrind missing: apt-get install valgrind" >&2; exit 1; }

TMP=$(mktemp -d /tmp/mpops-shim-XXXXXX)
# DPDK's EAL loads a -d plugin only from a path with no world-writable
# directory in it (not from a build tree under /tmp): a copy under /run.
PMDDIR=$(mktemp -d /run/mpops-shim-XXXXXX)
cp "$PMD" "$PMDDIR/"
PMD=$PMDDIR/librte_net_mpops.so
# The copy finds mpops's libraries by path, not by its build-tree rpath.
export LD_LIBRARY_PATH=$PWD/$BUILD/lib:$PWD/$BUILD/drivers/virtio:$PWD/$BUILD/drivers/af_xdp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
PIDS=()
PREFIXES=()
cleanup() {
	[ -n "${KEEP:-}" ] && cp -r "$TMP" "$KEEP"
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	for f in "${PREFIXES[@]}"; do rm -rf "/var/run/dpdk/$f"; done
	rm -rf "$TMP" "$PMDDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

backend_start() {	# MODE
	rm -f "$TMP/v.sock"
	"$VHOST" --socket "$TMP/v.sock" --mode "$1" --size 64 --cpu 0 --quiet --duration 900 \
		>"$TMP/be.out" 2>&1 &
	BE_PID=$!
	PIDS+=("$BE_PID")
	for _ in $(seq 100); do [ -S "$TMP/v.sock" ] && return 0; sleep 0.05; done
	echo "mpops-vhost did not start" >&2; cat "$TMP/be.out" >&2; exit 1
}
backend_stop() { kill "$BE_PID"; wait "$BE_PID" 2>/dev/null || true; }

# The two frontends' testpmd options, up to "--".
front() {	# DRIVER PREFIX
	echo --no-pci --no-huge -m 256 --no-telemetry --file-prefix="$2" --lcores=0@1,1@1
	if [ "$1" = mpops ]; then
		echo -d "$PMD" --vdev "net_mpops0,driver=virtio,path=$TMP/v.sock,queues=1"
	else
		echo --vdev "net_virtio_user0,path=$TMP/v.sock,queues=1"
	fi
}

# testpmd for T seconds (SIGINT at the end: it prints its totals): OUT DRIVER MODE T [valgrind...]
testpmd_run() {
	local out=$1 drv=$2 mode=$3 t=$4 prefix=shim$$-$RANDOM
	shift 4
	PREFIXES+=("$prefix")
	# shellcheck disable=SC2046
	timeout -s INT -k 30 "$t" "$@" "$TESTPMD" $(front "$drv" "$prefix") -- --nb-cores=1 \
		--forward-mode="$mode" --txpkts=64 --total-num-mbufs=8192 --stats-period=1 \
		</dev/null >"$out" 2>&1 || true
	grep -q "Accumulated forward statistics" "$out" ||
		{ echo "testpmd ($drv $mode) failed:" >&2; tail -20 "$out" >&2; exit 1; }
}

# Median of the per-second samples of KEY (Tx-pps / Rx-pps) after the first two, in Mpps.
rate() {
	awk -v k="$2:" '$1 == k { n++; if (n > 2) print $2 }' "$1" | sort -n |
	awk '{ v[++m] = $1 } END { if (!m) { print "0"; exit }
		printf "%.3f", (m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2) / 1e6 }'
}
# From testpmd's totals: KEY (RX-packets, TX-packets).
tp_stat() {
	awk -v k="$2" '/Forward statistics for port/ { on = 1 }
		on { for (i = 1; i < NF; i++) if ($i == k || $i == k ":") {
			v = $(i + 1); if (v == ":") v = $(i + 2); print v + 0; exit } }' "$1"
}

# ---- rates, interleaved -----------------------------------------------------
declare -A R
echo "rates: $ROUNDS rounds of ${SECS}s per driver and mode, interleaved" >&2
for mode in txonly rxonly; do
	bmode=sink; key=Tx-pps
	[ $mode = rxonly ] && { bmode=source; key=Rx-pps; }
	backend_start $bmode
	for r in $(seq "$ROUNDS"); do
		order="mpops virtio_user"
		[ $((r % 2)) = 0 ] && order="virtio_user mpops"
		for d in $order; do
			testpmd_run "$TMP/$d.$mode.$r.out" $d $mode "$SECS"
			R[$d.$mode.$r]=$(rate "$TMP/$d.$mode.$r.out" $key)
		done
	done
	backend_stop
done

echo "Packet rate (Mpps, testpmd's per-second samples, median per run; 64-byte, 1 queue pair,"
echo "against mpops-vhost polling on CPU 0, testpmd on CPU 1, --no-huge):"
printf '%-7s %-5s %12s %12s %8s\n' mode round net_mpops virtio_user ratio
for mode in txonly rxonly; do
	for r in $(seq "$ROUNDS"); do
		a=${R[mpops.$mode.$r]}; b=${R[virtio_user.$mode.$r]}
		printf '%-7s %-5s %12s %12s %8s\n' $mode $r "$a" "$b" \
			"$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
	done
done
echo

[ $CG = 1 ] || exit 0

# ---- instructions per packet (callgrind) -----------------------------------
T1=6; T2=12
total_ir() { awk '/^summary:/ { print $2 }' "$1"; }
# Self cost per shared object: "object<TAB>Ir".
per_object() {
	callgrind_annotate --auto=no --threshold=100 --inclusive=no "$1" 2>/dev/null |
	sed -n '/file:function/,/^$/p' |
	awk '/^ *[0-9,]+ +\(/ && !/PROGRAM TOTALS/ { ir = $1; gsub(",", "", ir)
		obj = $0; sub(/^.*\[/, "", obj); sub(/\].*$/, "", obj); n = split(obj, o, "/")
		s[o[n]] += ir } END { for (k in s) print k "\t" s[k] }'
}
echo "callgrind: testpmd ${T1}s and ${T2}s per driver and mode (a few minutes)" >&2
echo "Instructions per packet (callgrind; testpmd's whole loop: its engine, the PMD, the pools):"
for mode in txonly rxonly; do
	bmode=sink; key=TX-packets
	[ $mode = rxonly ] && { bmode=source; key=RX-packets; }
	backend_start $bmode
	for d in mpops virtio_user; do
		for t in $T1 $T2; do
			f=$TMP/cg.$d.$mode.$t
			testpmd_run "$f.out" $d $mode $t valgrind --tool=callgrind --callgrind-out-file="$f.cg"
			per_object "$f.cg" >"$f.obj"
		done
		a=$TMP/cg.$d.$mode.$T1; b=$TMP/cg.$d.$mode.$T2
		n=$(( $(tp_stat "$b.out" $key) - $(tp_stat "$a.out" $key) ))
		# txonly: what testpmd offered (sent + dropped by a full ring), whose
		# building and freeing costs too.
		o=$n
		[ $mode = txonly ] && o=$(( $(tp_stat "$b.out" TX-total) - $(tp_stat "$a.out" TX-total) ))
		printf '== %-11s %-6s %7.1f instructions/packet (%d packets between the runs; %.1f per packet offered, %d offered); by object:\n' \
			$d $mode "$(awk -v x="$(total_ir "$a.cg")" -v y="$(total_ir "$b.cg")" -v n=$n \
			'BEGIN { print (y - x) / n }')" $n \
			"$(awk -v x="$(total_ir "$a.cg")" -v y="$(total_ir "$b.cg")" -v n=$o \
			'BEGIN { print (y - x) / n }')" $o
		awk -F'\t' 'FNR == NR { a[$1] = $2; next } { print $1 "\t" $2 - a[$1] }' "$a.obj" "$b.obj" |
		awk -F'\t' -v n=$n '{ d = $2 / n; if (d >= 1) printf "   %8.1f  %s\n", d, $1 }' | sort -rn
	done
	backend_stop
done
