#!/usr/bin/env bash
# One vtnet guest test for meson (suite 'qemu'): build the guest with the
# driver's test programs and guest-vtnet.sh, boot it, pass only on PASS.
#
#   guest-vtnet-test.sh legacy|modern uio|vfio hub|vhost BUILDDIR OUTDIR
#
# hub: two NICs on a QEMU hub, behind PCIe root ports. vhost: one NIC on a
# vhost-user backend on this host, mpops-vhost (kick-driven loopback), or
# for a modern NIC behind the vIOMMU testpmd's vhost PMD with IOTLB support;
# the backend's own counts are checked after the guest ends, and it is
# killed while the guest watches its link go down. vfio adds QEMU's vIOMMU. Exit 77 (skipped) when QEMU is missing and this
# user cannot install it.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 5 ] || { sed -n '5p' "$0" | sed 's/^# //' >&2; exit 2; }
iface=$1 access=$2 scenario=$3 build=$4 out=$5
count=2000

if [ "$(id -u)" -ne 0 ]; then
	for tool in qemu-system-x86_64 busybox cpio /usr/sbin/depmod; do
		command -v "$tool" >/dev/null || {
			echo "guest-vtnet-test: skipped: no $tool, and only root may install it"
			exit 77
		}
	done
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mpops-gvt.XXXXXX")
vpid='' wpid='' backend=none pmd_prefix="mpops-gvt$$"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
	if [ -n "$wpid" ]; then
		kill "$wpid" 2>/dev/null || true
		wait "$wpid" 2>/dev/null || true
	fi
	if [ -n "$vpid" ]; then
		kill -TERM "$vpid" 2>/dev/null || true
		wait "$vpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
	# What testpmd's EAL left behind for its --file-prefix.
	if [ "$backend" = testpmd ]; then
		if [ "$(id -u)" -eq 0 ]; then
			rm -rf "/var/run/dpdk/$pmd_prefix"
		else
			rm -rf "${XDG_RUNTIME_DIR:-/tmp}/dpdk/$pmd_prefix"
		fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The programs keep their test names in the guest.
progs=()
for p in vt-primary vt-peer vt-primary-origin vt-peer-origin; do
	cp "$build/tests/qemu/guest-$p" "$tmp/$p"
	progs+=(--add "$tmp/$p")
done
start=$SECONDS
"$here/build-guest.sh" --out "$out" "${progs[@]}" --script "$here/guest-vtnet.sh"
echo "guest-vtnet-test: guest built in $((SECONDS - start)) s"

run=(--guest "$out" --nics "$iface" --smp 2 --timeout 300
	--append "mpops.access=$access mpops.transport=$iface mpops.scenario=$scenario mpops.count=$count")
# Hub NICs behind PCIe root ports (buses 1 and 2): they then have a
# function-level reset, which the test uses.
[ "$scenario" = hub ] && run+=(--pcie --append "mpops.nic0=0000:01:00.0 mpops.nic1=0000:02:00.0")
[ "$access" = vfio ] && run+=(--iommu)
# The vhost-user backend: mpops-vhost, kick-driven, so that it serves the tx
# queue only when the guest's secondary kicks it. A modern NIC behind the
# vIOMMU needs a backend with IOTLB support, which mpops-vhost lacks: there,
# testpmd's vhost PMD (iommu-support=1), in io mode (a loopback).
if [ "$scenario" = vhost ]; then
	sock=$tmp/vhost.sock
	if [ "$iface" = modern ] && [ "$access" = vfio ]; then
		backend=testpmd
		command -v dpdk-testpmd >/dev/null || { echo "guest-vtnet-test: skipped: no dpdk-testpmd"; exit 77; }
		mkfifo "$tmp/pmd.in"
		timeout -k 5 280 dpdk-testpmd --no-pci --no-huge -m 256 --no-telemetry \
			--file-prefix "$pmd_prefix" --lcores 0@0,1@0 \
			--vdev "net_vhost0,iface=$sock,client=0,iommu-support=1" -- \
			--nb-cores=1 --forward-mode=io --auto-start --total-num-mbufs=8192 \
			<"$tmp/pmd.in" >"$tmp/pmd.out" 2>&1 &
		vpid=$!
		exec 7>"$tmp/pmd.in"	# testpmd runs until its stdin closes
	else
		backend=mpops-vhost
		"$build/drivers/virtio/backend/mpops-vhost" --socket "$sock" --kick-driven --quiet \
			>"$tmp/vhost.json" 2>"$tmp/vhost.err" &
		vpid=$!
	fi
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
	[ -S "$sock" ] || { cat "$tmp"/*.err "$tmp"/*.out 2>/dev/null; echo "$backend did not listen"; exit 1; }
	run+=(--vhost-user "$sock")
	# When the guest says so, the backend dies (SIGINT: testpmd prints its
	# totals; SIGTERM: mpops-vhost its JSON).
	(
		until grep -q "waiting for the backend to go" "$tmp/serial.log" 2>/dev/null; do
			sleep 0.2
		done
		kill -s "$([ $backend = testpmd ] && echo INT || echo TERM)" "$vpid"
	) &
	wpid=$!
fi

start=$SECONDS
rc=0
"$here/run-guest.sh" "${run[@]}" --log "$tmp/serial.log" || rc=$?
echo "guest-vtnet-test: guest ran for $((SECONDS - start)) s, status $rc"
[ $rc -eq 0 ] || exit $rc

[ "$backend" = none ] && exit 0
# The backend was ended by the watcher; collect what it counted.
wait "$wpid" 2>/dev/null || true
wpid=''
wait "$vpid" || true
vpid=''
exec 7>&- 2>/dev/null || true
loop_line=$(tr -d '\r' <"$tmp/serial.log" | sed -n 's/^guest-vtnet: vhost: //p')
guest_kicks=$(sed -n 's/.*tx_kicks=\([0-9]*\).*/\1/p' <<<"$loop_line")
if [ $backend = testpmd ]; then
	cat "$tmp/pmd.out" | grep -E "RX-packets|TX-packets" || true
	rx=$(sed -n 's/^ *RX-packets: *\([0-9]*\).*/\1/p' "$tmp/pmd.out" | head -n 1)
	tx=$(sed -n 's/^ *TX-packets: *\([0-9]*\).*/\1/p' "$tmp/pmd.out" | head -n 1)
	[ "$rx" = $count ] || { echo "testpmd received $rx packets, the guest sent $count"; exit 1; }
	[ "$tx" = $count ] || { echo "testpmd sent back $tx packets, not $count"; exit 1; }
	echo "guest-vtnet-test: testpmd's vhost received $rx, sent $tx"
	exit 0
fi
cat "$tmp/vhost.err" >&2
json=$(tail -n 1 "$tmp/vhost.json")
echo "mpops-vhost: $json"
# Every packet the guest's secondary sent reached the backend and came back,
# and every kick of the secondary's (counted by its driver) reached the
# backend, which sleeps until kicked; QEMU adds one when it starts the queues.
num() { sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p" <<<"$json"; }
rx=$(num received_packets) tx=$(num sent_packets)
kicks=$(sed -n 's/.*"kicks": \[[0-9]*, \([0-9]*\).*/\1/p' <<<"$json")
[ "$rx" = $count ] || { echo "mpops-vhost received $rx packets, the guest sent $count"; exit 1; }
[ "$tx" = $count ] || { echo "mpops-vhost sent back $tx packets, not $count"; exit 1; }
[ -n "$guest_kicks" ] && [ "$guest_kicks" -gt 0 ] ||
	{ echo "the guest's secondary counted no tx kicks ('$guest_kicks')"; exit 1; }
[ "${kicks:-0}" -ge "$guest_kicks" ] && [ "${kicks:-0}" -le $((guest_kicks + 1)) ] ||
	{ echo "mpops-vhost counted $kicks tx kicks, the guest's secondary sent $guest_kicks"; exit 1; }
echo "guest-vtnet-test: mpops-vhost received $rx, sent $tx; $kicks kicks on the tx queue for the secondary's $guest_kicks"
