#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Instructions per packet, counted by callgrind (this VM has no hardware
# counters for perf): a figure that does not swing with where the host puts
# the two vCPUs, unlike packets per second.
#
#   bench/pps-instructions.sh [BUILD_DIR] [--quick] [--no-dpdk]
#
# Ours: the benchmark's worker (bench/pps_worker.c) moves N1 and then N2
# packets under callgrind against mpops-vhost (sink for tx, source for rx,
# running natively on the other CPU); (Ir(N2) - Ir(N1)) / (N2 - N1) cancels
# set-up and tear-down. Per function too, the same difference. As primary
# and as secondary (the secondary under callgrind, its primary natively).
#
# DPDK: dpdk-testpmd with net_virtio_user (txonly / rxonly) under callgrind
# for two durations, packets from its own totals; same subtraction. The
# Debian build carries no symbols for its static functions, so its cost is
# given per shared object (testpmd's engine, the virtio PMD, libc...).
#
# Receiving, a frontend slowed down by callgrind still finds the ring empty
# now and then (the backend is not always ahead), and those polls cost
# instructions too. So each driver's empty poll is costed on its own
# (against a backend that never sends), the empty polls of each rx run are
# counted (our worker's counter; testpmd's --record-burst-stats), and the
# "net" column takes them out: the cost of the packets alone.
#
# Every process started here is ended by its pid; the temporary directory
# and DPDK's runtime directories are removed.
set -euo pipefail

BUILD=build
QUICK=0
DPDK=1
for a in "$@"; do
	case "$a" in
	--quick) QUICK=1 ;;
	--no-dpdk) DPDK=0 ;;
	-h|--help) sed -n '4,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) BUILD=$a ;;
	esac
done
cd "$(dirname "$0")/.."
WORKER=$BUILD/bench/mpops-bench-pps-worker
VHOST=$BUILD/drivers/virtio/backend/mpops-vhost
TESTPMD=${TESTPMD:-/usr/bin/dpdk-testpmd}
for t in valgrind callgrind_annotate; do
	command -v $t >/dev/null || { echo "$t missing: apt-get install valgrind" >&2; exit 1; }
done
[ -x "$WORKER" ] && [ -x "$VHOST" ] || { echo "build first: $WORKER, $VHOST" >&2; exit 1; }
if [ $DPDK = 1 ] && [ ! -x "$TESTPMD" ]; then
	echo "note: $TESTPMD missing (apt-get install dpdk-dev): DPDK's figures skipped" >&2
	DPDK=0
fi

if [ $QUICK = 1 ]; then N1=50000; N2=250000; T1=5; T2=9
else N1=100000; N2=600000; T1=6; T2=14; fi

TMP=$(mktemp -d /tmp/mpops-pps-cg-XXXXXX)
PIDS=()
PREFIXES=()
eal_dir() { if [ "$(id -u)" = 0 ]; then echo /var/run/dpdk/$1; else echo "${XDG_RUNTIME_DIR:-/tmp}/dpdk/$1"; fi; }
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	for f in "${PREFIXES[@]}"; do rm -rf "$(eal_dir "$f")"; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start mpops-vhost in MODE on CPU 0; sets BE_PID.
backend_start() {
	rm -f "$TMP/v.sock"
	"$VHOST" --socket "$TMP/v.sock" --mode "$1" --size 64 --cpu 0 --quiet --duration 900 \
		>"$TMP/be.out" 2>&1 &
	BE_PID=$!
	PIDS+=("$BE_PID")
	for _ in $(seq 100); do [ -S "$TMP/v.sock" ] && return 0; sleep 0.05; done
	echo "mpops-vhost did not start" >&2; cat "$TMP/be.out" >&2; exit 1
}
backend_stop() { kill "$BE_PID"; wait "$BE_PID" 2>/dev/null || true; }

total_ir() { awk '/^summary:/ { print $2 }' "$1"; }

# Self cost per function (inlined helpers summed into their function), as
# "name<TAB>object<TAB>Ir", one line each.
per_function() {
	callgrind_annotate --auto=no --threshold=100 --inclusive=no "$1" 2>/dev/null |
	sed -n '/file:function/,/^$/p' |
	awk '/^ *[0-9,]+ +\(/ && !/PROGRAM TOTALS/ {
		ir = $1; gsub(",", "", ir)
		fn = $0; sub(/^ *[0-9,]+ +\([^)]*\) +/, "", fn)
		obj = fn; sub(/^.*\[/, "", obj); sub(/\].*$/, "", obj); n = split(obj, o, "/"); obj = o[n]
		sub(/ \[.*$/, "", fn); sub(/^.*:/, "", fn)
		s[fn "\t" obj] += ir }
	     END { for (k in s) print k "\t" s[k] }'
}
# Inclusive cost of the functions named in $2 (a regex).
inclusive() {
	callgrind_annotate --auto=no --threshold=100 --inclusive=yes "$1" 2>/dev/null |
	sed -n '/file:function/,/^$/p' |
	awk -v re="$2" '/^ *[0-9,]+ +\(/ { fn = $0; sub(/^ *[0-9,]+ +\([^)]*\) +/, "", fn)
		sub(/ \[.*$/, "", fn); sub(/^.*:/, "", fn)
		if (fn ~ re) { ir = $1; gsub(",", "", ir); if (!(fn in s)) s[fn] = ir } }
	     END { for (k in s) print k "\t" s[k] }'
}
# The difference of two per-function tables, per packet: "Ir/pkt function [object]".
diff_table() {
	awk -F'\t' -v n="$3" 'FNR == NR { a[$1 "\t" $2] = $3; next } { b[$1 "\t" $2] = $3 }
		END { for (k in b) { d = (b[k] - a[k]) / n; split(k, f, "\t")
			if (d >= 0.5) printf "%10.1f  %s [%s]\n", d, f[1], f[2] } }' "$1" "$2" | sort -rn
}

# ---- our driver -----------------------------------------------------------

# Run the worker under callgrind: ROLE FILE MERGEABLE then the loop options.
ours_run() {
	local role=$1 f=$2 mrg=$3 hold
	shift 3
	if [ "$role" = primary ]; then
		valgrind --tool=callgrind --callgrind-out-file="$f.cg" "$WORKER" primary \
			--rundir "$TMP" --region cg --socket "$TMP/v.sock" --mergeable "$mrg" \
			--cpu 1 --timeout 900 "$@" >"$f.out" 2>&1
	else
		"$WORKER" primary --rundir "$TMP" --region cg --socket "$TMP/v.sock" \
			--mergeable "$mrg" --cpu 1 --hold >"$f.hold" 2>&1 &
		hold=$!
		PIDS+=("$hold")
		for _ in $(seq 200); do grep -q ready "$f.hold" && break; sleep 0.05; done
		valgrind --tool=callgrind --callgrind-out-file="$f.cg" "$WORKER" secondary \
			--rundir "$TMP" --region cg --cpu 1 --timeout 900 "$@" >"$f.out" 2>&1
		kill "$hold"
		wait "$hold" 2>/dev/null || true
	fi
	grep -q "^result packets=" "$f.out" || { echo "worker failed:" >&2; cat "$f.out" >&2; exit 1; }
}
field() { sed -n "s/.*[ ]$2=\([0-9.]*\).*/\1/p" "$1" | head -1; }

# The cost of one rx poll that finds nothing (backend: sink, never sends).
ours_empty_poll() {
	local p f
	backend_start sink
	for p in $N1 $N2; do
		f=$TMP/ours.empty.$p
		ours_run primary "$f" on --mode rxonly --polls $p
	done
	backend_stop
	EMPTY_OURS=$(awk -v x="$(total_ir "$TMP/ours.empty.$N1.cg")" \
		-v y="$(total_ir "$TMP/ours.empty.$N2.cg")" -v n=$((N2 - N1)) \
		'BEGIN { printf "%.1f", (y - x) / n }')
}

ours() {	# ROLE MODE MERGEABLE BACKEND_MODE
	local role=$1 mode=$2 mrg=$3 bmode=$4 n f
	backend_start "$bmode"
	for n in $N1 $N2; do
		f=$TMP/ours.$role.$mode.$mrg.$n
		ours_run "$role" "$f" "$mrg" --mode "$mode" --count $n
		per_function "$f.cg" >"$f.fn"
	done
	backend_stop
	local a=$TMP/ours.$role.$mode.$mrg.$N1 b=$TMP/ours.$role.$mode.$mrg.$N2
	local e ipp net
	e=$(( $(field "$b.out" rx_empty) - $(field "$a.out" rx_empty) ))
	[ $e -lt 0 ] && e=0
	ipp=$(awk -v x="$(total_ir "$a.cg")" -v y="$(total_ir "$b.cg")" -v n=$((N2 - N1)) \
		'BEGIN { printf "%.1f", (y - x) / n }')
	net=$(awk -v i="$ipp" -v e=$e -v c="$EMPTY_OURS" -v n=$((N2 - N1)) \
		'BEGIN { printf "%.1f", i - e * c / n }')
	RES+=("$(printf '%-16s %-9s %-8s %-3s %9s %9.3f %9s' mpops "$role" "$mode" "$mrg" "$ipp" \
		"$(awk -v e=$e -v n=$((N2 - N1)) 'BEGIN { print e / n }')" "$net")")
	if [ "$role" = primary ]; then
		{
			echo "== mpops $mode, mergeable $mrg, primary: $ipp instructions/packet," \
				"$net without the empty polls =="
			echo "   self cost per packet, by function (difference of the two runs):"
			diff_table "$a.fn" "$b.fn" $((N2 - N1)) | head -16 | sed 's/^/   /'
			echo "   inclusive, per packet:"
			local re='^vtnet_(tx|rx)_burst$|^mpops_pkt_(alloc|alloc_bulk|free|free_bulk)$|^tx_cleanup|^tx_free_chain|^vq_rx_fill$|^rx_take'
			paste <(inclusive "$a.cg" "$re" | sort) <(inclusive "$b.cg" "$re" | sort) |
			awk -F'\t' -v n=$((N2 - N1)) '$1 == $3 { printf "%10.1f  %s\n", ($4 - $2) / n, $1 }' |
			sort -rn | sed 's/^/   /'
			echo
		} >>"$TMP/detail"
	fi
}

# ---- DPDK's net_virtio_user in testpmd -------------------------------------

# testpmd under callgrind for T seconds: FILE MODE MERGEABLE(0|1) T
testpmd_run() {
	local f=$1 mode=$2 m=$3 t=$4 prefix=mppscg$$-$RANDOM
	PREFIXES+=("$prefix")
	# SIGINT at the end: testpmd prints its totals and exits.
	timeout -s INT -k 30 "$t" valgrind --tool=callgrind --callgrind-out-file="$f.cg" \
		"$TESTPMD" --no-pci --no-huge -m 256 --no-telemetry --file-prefix=$prefix \
		--lcores=0@1,1@1 --vdev "net_virtio_user0,path=$TMP/v.sock,queues=1,mrg_rxbuf=$m" \
		-- --nb-cores=1 --forward-mode="$mode" --txpkts=64 --total-num-mbufs=8192 \
		--stats-period=1 --record-burst-stats </dev/null >"$f.out" 2>&1 || true
	rm -rf "$(eal_dir $prefix)"
	[ -s "$f.cg" ] && grep -q "Accumulated forward statistics" "$f.out" ||
		{ echo "testpmd failed:" >&2; tail -20 "$f.out" >&2; exit 1; }
}
# From testpmd's totals: KEY (RX-packets, TX-packets, TX-dropped, RX-bursts).
tp_stat() {
	awk -v k="$2" '/Forward statistics for port/ { on = 1 }
		on { for (i = 1; i < NF; i++) if ($i == k || $i == k ":") {
			v = $(i + 1); if (v == ":") v = $(i + 2); print v + 0; exit } }' "$1"
}

dpdk_empty_poll() {
	local t f
	backend_start sink
	for t in $T1 $T2; do
		testpmd_run "$TMP/dpdk.empty.$t" rxonly 1 "$t"
	done
	backend_stop
	EMPTY_DPDK=$(awk -v x="$(total_ir "$TMP/dpdk.empty.$T1.cg")" \
		-v y="$(total_ir "$TMP/dpdk.empty.$T2.cg")" \
		-v n=$(( $(tp_stat "$TMP/dpdk.empty.$T2.out" RX-bursts) - $(tp_stat "$TMP/dpdk.empty.$T1.out" RX-bursts) )) \
		'BEGIN { printf "%.1f", (y - x) / n }')
}

dpdk() {	# MODE MERGEABLE BACKEND_MODE
	local mode=$1 mrg=$2 bmode=$3 t f key
	local m=1
	[ "$mrg" = off ] && m=0
	backend_start "$bmode"
	for t in $T1 $T2; do
		f=$TMP/dpdk.$mode.$mrg.$t
		testpmd_run "$f" "$mode" $m "$t"
		per_function "$f.cg" >"$f.fn"
	done
	backend_stop
	local a=$TMP/dpdk.$mode.$mrg.$T1 b=$TMP/dpdk.$mode.$mrg.$T2
	key=RX-packets
	[ "$mode" = txonly ] && key=TX-packets
	local n=$(( $(tp_stat "$b.out" $key) - $(tp_stat "$a.out" $key) ))
	local drops=$(( $(tp_stat "$b.out" TX-dropped) - $(tp_stat "$a.out" TX-dropped) ))
	local e=0 ipp net
	if [ "$mode" = rxonly ]; then
		# Every non-empty burst is a full one of 32 but the last.
		e=$(( $(tp_stat "$b.out" RX-bursts) - $(tp_stat "$a.out" RX-bursts) - (n + 31) / 32 ))
		[ $e -lt 0 ] && e=0
	fi
	ipp=$(awk -v x="$(total_ir "$a.cg")" -v y="$(total_ir "$b.cg")" -v n=$n \
		'BEGIN { printf "%.1f", (y - x) / n }')
	net=$(awk -v i="$ipp" -v e=$e -v c="$EMPTY_DPDK" -v n=$n 'BEGIN { printf "%.1f", i - e * c / n }')
	RES+=("$(printf '%-16s %-9s %-8s %-3s %9s %9.3f %9s' dpdk_virtio_user primary "$mode" "$mrg" \
		"$ipp" "$(awk -v e=$e -v n=$n 'BEGIN { print e / n }')" "$net")")
	{
		echo "== dpdk_virtio_user $mode, mergeable $mrg: $ipp instructions/packet, $net without" \
			"the empty polls ($n packets between the runs; $drops more dropped by a full" \
			"tx ring, their cost included) =="
		echo "   self cost per packet, by shared object (no symbols in Debian's build):"
		awk -F'\t' 'FNR == NR { a[$2] += $3; next } { b[$2] += $3 }
			END { for (k in b) print k "\t" b[k] - a[k] }' "$a.fn" "$b.fn" |
		awk -F'\t' -v n=$n '{ d = $2 / n; if (d >= 0.5) printf "%10.1f  %s\n", d, $1 }' |
		sort -rn | sed 's/^/   /'
		echo
	} >>"$TMP/detail"
}

RES=()
echo "callgrind: ours $N1 and $N2 packets; DPDK ${T1}s and ${T2}s runs (a few minutes)" >&2
EMPTY_DPDK=0
ours_empty_poll
ours primary txonly on sink
ours secondary txonly on sink
ours primary rxonly on source
ours secondary rxonly on source
ours primary rxonly off source
if [ $DPDK = 1 ]; then
	dpdk_empty_poll
	dpdk txonly on sink
	dpdk rxonly on source
	dpdk rxonly off source
fi

echo "Instructions per packet (callgrind; 64-byte frames; against mpops-vhost): the"
echo "frontend's whole loop (build or free the packets, the driver, the pool)."
echo "empty/pkt: rx polls that found nothing, per packet; net: instructions/packet"
if [ $DPDK = 1 ]; then
	echo "without them (an empty poll costs $EMPTY_OURS instructions in ours, $EMPTY_DPDK in DPDK's)."
else
	echo "without them (an empty poll costs $EMPTY_OURS instructions in ours)."
fi
echo
printf '%-16s %-9s %-8s %-3s %9s %9s %9s\n' driver role mode mrg instr/pkt empty/pkt net
for r in "${RES[@]}"; do echo "$r"; done
echo
cat "$TMP/detail"
