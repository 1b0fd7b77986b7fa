#!/usr/bin/env bash
# One vtnet guest test for meson (suite 'qemu'): build the guest with the
# driver's test programs and guest-vtnet.sh, boot it, pass only on PASS.
#
#   guest-vtnet-test.sh legacy|modern uio|vfio hub|vhost BUILDDIR OUTDIR
#
# hub: two NICs on a QEMU hub. vhost: one NIC on mpops-vhost (kick-driven
# loopback) on this host, whose own counts are checked after the guest ends.
# vfio adds QEMU's vIOMMU. Exit 77 (skipped) when QEMU is missing and this
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
vpid=''
# shellcheck disable=SC2317  # called by the trap
cleanup() {
	if [ -n "$vpid" ]; then
		kill -TERM "$vpid" 2>/dev/null || true
		wait "$vpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
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
if [ "$scenario" = vhost ]; then
	sock=$tmp/vhost.sock
	"$build/drivers/virtio/backend/mpops-vhost" --socket "$sock" --kick-driven --quiet \
		>"$tmp/vhost.json" 2>"$tmp/vhost.err" &
	vpid=$!
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	[ -S "$sock" ] || { cat "$tmp/vhost.err"; echo "mpops-vhost did not listen"; exit 1; }
	run+=(--vhost-user "$sock")
fi

start=$SECONDS
rc=0
"$here/run-guest.sh" "${run[@]}" --log "$tmp/serial.log" || rc=$?
echo "guest-vtnet-test: guest ran for $((SECONDS - start)) s, status $rc"
[ $rc -eq 0 ] || exit $rc

if [ "$scenario" = vhost ]; then
	kill -TERM "$vpid"
	wait "$vpid" || true
	vpid=''
	cat "$tmp/vhost.err" >&2
	echo "mpops-vhost: $(cat "$tmp/vhost.json")"
	# Every packet the guest's secondary sent reached the backend and came
	# back, and it took kicks on the tx queue (the secondary's own notify:
	# the backend sleeps until kicked).
	json=$(tail -n 1 "$tmp/vhost.json")
	num() { sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p" <<<"$json"; }
	rx=$(num received_packets) tx=$(num sent_packets)
	kicks=$(sed -n 's/.*"kicks": \[[0-9]*, \([0-9]*\).*/\1/p' <<<"$json")
	[ "$rx" = $count ] || { echo "mpops-vhost received $rx packets, the guest sent $count"; exit 1; }
	[ "$tx" = $count ] || { echo "mpops-vhost sent back $tx packets, not $count"; exit 1; }
	# The secondary's own count of its tx notifications, from the console.
	guest_kicks=$(tr -d '\r' <"$tmp/serial.log" | sed -n 's/^guest-vtnet: vhost: .*tx_kicks=\([0-9]*\).*/\1/p')
	[ -n "$guest_kicks" ] && [ "$guest_kicks" -gt 0 ] ||
		{ echo "the guest's secondary counted no tx kicks ('$guest_kicks')"; exit 1; }
	# Each of them reached the backend; QEMU itself adds one when it starts
	# the backend's queues.
	[ "${kicks:-0}" -ge "$guest_kicks" ] && [ "${kicks:-0}" -le $((guest_kicks + 1)) ] ||
		{ echo "mpops-vhost counted $kicks tx kicks, the guest's secondary sent $guest_kicks"; exit 1; }
	echo "guest-vtnet-test: mpops-vhost received $rx, sent $tx; $kicks kicks on the tx queue for the secondary's $guest_kicks"
fi
