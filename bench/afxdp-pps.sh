#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# AF_XDP packet rate: our driver as primary and as secondary against DPDK's
# net_af_xdp (dpdk-testpmd, one process, no hugepages), on the same veth
# pair in a network namespace of this script's own, interleaved round by
# round; then instructions per packet, counted by callgrind.
#
#   bench/afxdp-pps.sh [BUILD_DIR] [--rounds N] [--seconds S] [--no-callgrind]
#
# --rounds 0: instructions only; CG_DIRS=rx in the environment: rx only.
#
# rx: a generator (tests' xsk-peer: libxdp's socket, copy mode) sends 64-byte
#     frames from the peer end as fast as it can; the receiver (rxonly) on
#     queue 0 counts. Rate = what the receiver counted / S.
# tx: the sender (txonly, 64 bytes) on queue 0; rate = its own per-second
#     tx figures (median), for ours and for testpmd alike.
# DPDK's secondary is not run: in 22.11 (and today) net_af_xdp gives
#     secondaries rte_eth_pkt_burst_dummy, so it receives and sends 0
#     (measured: ../shared/anchors/afxdp.md, 0 of 235,712).
# Instructions per packet: each receiver and sender under callgrind for S1
#     and S2 seconds; (Ir(S2) - Ir(S1)) / (packets(S2) - packets(S1)) over the
#     whole process (ours: mpops-fwd; DPDK: dpdk-testpmd), which cancels
#     start-up.
# Net of empty polls (rx): under callgrind the receiver still finds the
#     ring empty on many polls (the generator shares the two CPUs with it),
#     and how many moves the whole-process figure. As bench/pps-instructions.sh
#     does for virtio: each receiver's empty poll is costed on its own (under
#     callgrind for S1 and S2 seconds with no generator: (Ir(S2) - Ir(S1)) /
#     (polls(S2) - polls(S1)), every poll empty), the empty polls of each rx
#     run are counted (ours: mpops-fwd's rx_empty; DPDK: its calls of
#     recvfrom(), which net_af_xdp makes once per empty poll and never
#     otherwise, checked against testpmd's --record-burst-stats, whose share
#     of empty bursts is a whole percent), and the "net" column takes them
#     out. pkts/burst: packets per poll that found some, in the S1 and the S2
#     run: the difference assumes the two alike; where the generator ran
#     at another speed in one (the rates are bimodal), they are not, and
#     the figure mixes two regimes (run again).
#
# Output: a table on stdout and BUILD_DIR/bench/afxdp-pps.json. Every
# process is ended by its pid; the namespace and DPDK's runtime directories
# are removed.
set -euo pipefail

BUILD=build
ROUNDS=5
SECS=3
CG=1
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift ;;
	--seconds) SECS=$2; shift ;;
	--no-callgrind) CG=0 ;;
	-h|--help) sed -n '4,42p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) BUILD=$1 ;;
	esac
	shift
done
cd "$(dirname "$0")/.."
FWD=$PWD/$BUILD/app/mpops-fwd
PEER=$PWD/$BUILD/tests/xsk-peer
TESTPMD=${TESTPMD:-/usr/bin/dpdk-testpmd}
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces, AF_XDP)" >&2; exit 1; }
for f in "$FWD" "$PEER"; do
	[ -x "$f" ] || { echo "build first: $f (needs libbpf-dev libxdp-dev)" >&2; exit 1; }
done
[ -x "$TESTPMD" ] || { echo "$TESTPMD missing: apt-get install dpdk-dev" >&2; exit 1; }
[ $CG = 0 ] || command -v valgrind >/dev/null || { echo "valgrind missing" >&2; exit 1; }

NS=mpxb$$
TMP=$(mktemp -d /tmp/mpops-afxdp-pps-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns del $NS 2>/dev/null || true
	[ -n "${KEEP:-}" ] || rm -rf "$TMP"
	rm -rf /var/run/dpdk/$NS*
}
trap cleanup EXIT
in_ns() { ip netns exec $NS "$@"; }

ip netns add $NS
in_ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n $NS link add vxa type veth peer name vxb
ip -n $NS link set vxa up
ip -n $NS link set vxb up

# Start "$@" in the background in the namespace; its pid in $BG (ip execs
# the program, so the pid is the program's).
bg() {
	local out=$1; shift
	ip netns exec $NS "$@" >"$out" 2>&1 &
	BG=$!
	PIDS+=("$BG")
}
stop() { kill -"${2:-INT}" "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
wait_for() {	# file, text, seconds
	for _ in $(seq $((${3:-20} * 10))); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no '$2' in $1:" >&2; cat "$1" >&2; return 1
}
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%.0f\n", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2); else print 0 }'; }

OUR_ARGS=iface=vxa,queues=1,mode=native,ring_size=2048
PMD_ARGS=(-l 0,1 --no-pci --no-huge -m 512 --file-prefix "$NS" --vdev
	net_af_xdp0,iface=vxa,start_queue=0,queue_count=1 --)
PMD_OPTS=(--stats-period 1 --total-num-mbufs 16384 --nb-cores 1 --txpkts=64 --record-burst-stats)

# One measurement: $1 = ours-primary|ours-secondary|dpdk, $2 = rx|tx,
# $3 = a prefix for the command (valgrind) or "". Prints "pps packets", and
# for rx "polls empty_lo empty_hi" after: every rx poll, and the empty ones
# (ours: exact, lo = hi; DPDK: the bounds its whole percent of empty bursts
# gives). NOGEN=1: rx without the generator (every poll empty).
measure() {
	local who=$1 dir=$2 pre=$3
	local out=$TMP/$who.$dir.out mode p s="" g n wrap=()
	[ -n "$pre" ] && read -r -a wrap <<<"$pre"
	mode=rxonly; [ "$dir" = tx ] && mode=txonly
	case $who in
	ours-primary)
		bg "$out" "${wrap[@]}" "$FWD" --runtime-dir "$TMP/rd" --af-xdp $OUR_ARGS \
			--forward-mode $mode --json --duration $((SECS + 2))
		p=$BG; wait_for "$out" forwarding 60 ;;
	ours-secondary)
		bg "$TMP/prim.out" "$FWD" --runtime-dir "$TMP/rd" --af-xdp $OUR_ARGS \
			--queues-claim none --forward-mode rxonly --idle-sleep 10000
		s=$BG; wait_for "$TMP/prim.out" forwarding
		bg "$out" "${wrap[@]}" "$FWD" --proc-type secondary --runtime-dir "$TMP/rd" \
			--forward-mode $mode --json --duration $((SECS + 2))
		p=$BG; wait_for "$out" forwarding 60 ;;
	dpdk)
		bg "$out" "${wrap[@]}" "$TESTPMD" "${PMD_ARGS[@]}" --forward-mode=$mode \
			--auto-start "${PMD_OPTS[@]}"
		p=$BG; wait_for "$out" "Port statistics" 60 ;;
	esac
	if [ "$dir" = rx ] && [ -z "${NOGEN:-}" ]; then
		sleep 1
		bg "$TMP/gen.out" "$PEER" send vxb 0 1000000000 100000000
		g=$BG
		sleep "$SECS"
		stop "$g" KILL
		sleep 0.5
	elif [ "$dir" = rx ]; then
		sleep "$SECS"
	else
		sleep $((SECS + 1))
	fi
	stop "$p" INT
	[ -z "$s" ] || stop "$s" TERM
	if [ "$who" = dpdk ]; then
		if [ "$dir" = rx ]; then
			n=$(grep -o 'RX-packets: *[0-9]*' "$out" | tail -1 | grep -o '[0-9]*$')
			# "RX-bursts : 3431293 [24% of 0 pkts + ...]": the percent is
			# truncated to a whole one.
			echo "$(awk -v n="$n" -v s="$SECS" 'BEGIN { printf "%.0f", n / s }') $n" \
				"$(grep 'RX-bursts :' "$out" | tail -1 | awk '{ b = $3; e = 0
				    if (match($0, /[0-9]+% of 0 pkts/)) e = substr($0, RSTART, RLENGTH) + 0
				    lo = int(b * e / 100); hi = int(b * (e + 1) / 100 + 1)
				    if (hi > b) hi = b; print b, lo, hi }')"
		else
			n=$(grep -o 'TX-packets: *[0-9]*' "$out" | tail -1 | grep -o '[0-9]*$')
			echo "$(grep -o 'Tx-pps: *[0-9]*' "$out" | grep -o '[0-9]*$' | awk '$1 > 0' | median) $n"
		fi
	else
		if [ "$dir" = rx ]; then
			n=$(grep -o '"rx_packets": [0-9]*' "$out" | head -1 | grep -o '[0-9]*$')
			b=$(grep -o '"rx_bursts": [0-9]*' "$out" | tail -1 | grep -o '[0-9]*$')
			e=$(grep -o '"rx_empty": [0-9]*' "$out" | tail -1 | grep -o '[0-9]*$')
			echo "$(awk -v n="$n" -v s="$SECS" 'BEGIN { printf "%.0f", n / s }') $n" \
				"$((b + e)) $e $e"
		else
			n=$(grep -o '"tx_packets": [0-9]*' "$out" | head -1 | grep -o '[0-9]*$')
			echo "$(grep -o 'own count rx [0-9]* tx [0-9]*' "$out" | awk '$6 > 0 { print $6 }' | median) $n"
		fi
	fi
}

WHO=(ours-primary ours-secondary dpdk)
declare -A R
for dir in rx tx; do for w in "${WHO[@]}"; do R[$w.$dir]=""; done; done
echo "AF_XDP on veth (copy mode, native XDP, 64-byte frames), $ROUNDS rounds of $SECS s, interleaved:"
for r in $(seq "$ROUNDS"); do
	for dir in rx tx; do
		for w in "${WHO[@]}"; do
			set -- $(measure "$w" "$dir" "")
			R[$w.$dir]="${R[$w.$dir]:-} $1"
			printf '  round %d %-3s %-15s %10s pps\n' "$r" "$dir" "$w" "$1"
		done
	done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b ? a / b : 0 }'; }
printf '\n%-4s %-15s %12s %12s %12s\n' dir who "median pps" "vs DPDK" "sec/prim"
declare -A M
for dir in rx tx; do
	for w in "${WHO[@]}"; do
		M[$w.$dir]=$(echo "${R[$w.$dir]}" | tr ' ' '\n' | { grep . || true; } | median)
	done
	for w in "${WHO[@]}"; do
		printf '%-4s %-15s %12s %12s %12s\n' "$dir" "$w" "${M[$w.$dir]}" \
			"$(ratio "${M[$w.$dir]}" "${M[dpdk.$dir]}")" \
			"$([ $w = ours-secondary ] && ratio "${M[$w.$dir]}" "${M[ours-primary.$dir]}" || echo -)"
	done
done
printf '%-4s %-15s %12s %12s\n' rx dpdk-secondary 0 "(burst functions are rte_eth_pkt_burst_dummy)"

# Per-round ratios, for the spread.
RATIOS=""
for dir in rx tx; do
	a=(${R[ours-primary.$dir]}); b=(${R[ours-secondary.$dir]}); d=(${R[dpdk.$dir]})
	for i in "${!a[@]}"; do
		RATIOS+="{\"dir\": \"$dir\", \"round\": $((i + 1)), \"primary_vs_dpdk\": $(ratio "${a[$i]}" "${d[$i]}"), \"secondary_vs_dpdk\": $(ratio "${b[$i]}" "${d[$i]}"), \"secondary_vs_primary\": $(ratio "${b[$i]}" "${a[$i]}")},"
	done
done

IPP=""
if [ $CG = 1 ]; then
	command -v callgrind_annotate >/dev/null || { echo "callgrind_annotate missing" >&2; exit 1; }
	# Calls of function $2 in callgrind file $1, from every caller.
	cg_calls() {
		callgrind_annotate --auto=no --threshold=100 --tree=caller "$1" 2>/dev/null |
		awk -v fn="$2" '/^ *[0-9,]+ +\(.*\) +< / { if (match($0, /\([0-9,]+x\)/)) {
				c = substr($0, RSTART + 1, RLENGTH - 3); gsub(",", "", c) } else c = 0
				calls += c; next }
			/^ *[0-9,]+ +\(.*\) +\* / { f = $0; sub(/ \[.*$/, "", f); sub(/^.*:/, "", f)
				if (f == fn) { print calls + 0; found = 1; exit } calls = 0; next }
			{ calls = 0 } END { if (!found) print 0 }'
	}
	# who dir secs -> "Ir packets polls empty", under callgrind.
	cgrun() {
		local f=$TMP/cg.$1.$2.$3${NOGEN:+.idle} pk e r lo hi
		SECS=$3 measure "$1" "$2" "valgrind --tool=callgrind --callgrind-out-file=$f" >"$TMP/m" || return 1
		cp "$TMP/m" "$f.m"	# with KEEP=1, beside the profile
		read -r _ pk r lo hi <"$TMP/m"
		e=${lo:-0}
		if [ "$1" = dpdk ] && [ "$2" = rx ]; then
			# net_af_xdp calls recvfrom() once per empty poll, and only
			# there (and a few times at start: they cancel between the
			# two runs): exact, where testpmd's whole percent only
			# brackets it.
			e=$(cg_calls "$f" recvfrom)
			if [ "$e" -lt $((lo - 16)) ] || [ "$e" -gt $((hi + 16)) ]; then
				echo "  note: DPDK's recvfrom() calls ($e) are not its empty bursts ($lo..$hi):" \
					"the middle of testpmd's bracket taken" >&2
				e=$(( (lo + hi) / 2 ))
			fi
		fi
		echo "$(awk '/^summary:/ { print $2 }' "$f") $pk ${r:-0} $e"
	}
	# An empty poll's instructions, per receiver: no generator, every poll
	# empty; (Ir(S2) - Ir(S1)) / (polls(S2) - polls(S1)).
	declare -A EMPTY
	for w in "${WHO[@]}"; do
		set -- $(NOGEN=1 cgrun "$w" rx 2) $(NOGEN=1 cgrun "$w" rx 5)
		EMPTY[$w]=$(awk -v i1="$1" -v p1="$3" -v i2="$5" -v p2="$7" \
			'BEGIN { printf "%.1f", (p2 > p1) ? (i2 - i1) / (p2 - p1) : 0 }')
	done
	echo
	echo "Instructions per packet (callgrind, whole process, (Ir(S2) - Ir(S1)) / (pk(S2) - pk(S1))):"
	echo "rx: empty/pkt the polls that found nothing, per packet; pkts/burst per poll that found"
	echo "some (S1 run/S2 run); net: without the empty polls (an empty poll costs ${EMPTY[ours-primary]} instructions in ours"
	echo "as primary, ${EMPTY[ours-secondary]} as secondary, ${EMPTY[dpdk]} in DPDK's, each measured with no generator)."
	printf '  %-3s %-15s %10s %9s %11s %8s  %s\n' dir who instr/pkt empty/pkt pkts/burst net packets
	for dir in ${CG_DIRS:-rx tx}; do
		for w in "${WHO[@]}"; do
			set -- $(cgrun "$w" "$dir" 4) $(cgrun "$w" "$dir" 10)
			ipp=$(awk -v i1="$1" -v p1="$2" -v i2="$5" -v p2="$6" \
				'BEGIN { printf "%.1f", (p2 > p1) ? (i2 - i1) / (p2 - p1) : 0 }')
			if [ "$dir" = rx ]; then
				read -r epp ppb net < <(awk -v i1="$1" -v p1="$2" -v r1="$3" -v e1="$4" \
					-v i2="$5" -v p2="$6" -v r2="$7" -v e2="$8" -v c="${EMPTY[$w]}" 'BEGIN {
					n = p2 - p1; e = e2 - e1; b1 = r1 - e1; b2 = r2 - e2
					if (n <= 0) { print "0 0 0"; exit }
					printf "%.3f %.1f/%.1f %.1f\n", e / n, (b1 > 0) ? p1 / b1 : 0,
						(b2 > 0) ? p2 / b2 : 0, (i2 - i1 - e * c) / n }')
			else
				epp=-; ppb=-; net=-
			fi
			printf '  %-3s %-15s %10s %9s %11s %8s  (%s vs %s packets)\n' "$dir" "$w" "$ipp" \
				"$epp" "$ppb" "$net" "$2" "$6"
			if [ "$dir" = rx ]; then
				IPP+="{\"dir\": \"$dir\", \"who\": \"$w\", \"instructions_per_packet\": $ipp, \"empty_polls_per_packet\": $epp, \"packets_per_burst\": [${ppb/\//, }], \"empty_poll_instructions\": ${EMPTY[$w]}, \"net_instructions_per_packet\": $net},"
			else
				IPP+="{\"dir\": \"$dir\", \"who\": \"$w\", \"instructions_per_packet\": $ipp},"
			fi
		done
	done
fi

{
	echo "{\"rounds\": $ROUNDS, \"seconds\": $SECS, \"median_pps\": {"
	first=1
	for k in "${!M[@]}"; do
		[ $first = 1 ] || echo ","
		first=0
		printf '"%s": %s' "$k" "${M[$k]}"
	done
	echo "}, \"rounds_pps\": {"
	first=1
	for k in "${!R[@]}"; do
		[ $first = 1 ] || echo ","
		first=0
		printf '"%s": [%s]' "$k" "$(echo ${R[$k]} | tr ' ' ',')"
	done
	echo "}, \"per_round\": [${RATIOS%,}], \"instructions\": [${IPP%,}]}"
} >"$BUILD/bench/afxdp-pps.json"
echo "JSON: $BUILD/bench/afxdp-pps.json"
if command -v gnuplot >/dev/null; then
	bench/afxdp-plot.sh "$BUILD/bench/afxdp-pps.json" "$BUILD/bench/afxdp-pps.png" &&
		echo "chart: $BUILD/bench/afxdp-pps.png"
fi
