#!/bin/sh
# Runs in the guest (busybox sh): probe a virtio-net device through uio_pci_generic and
# check what was read against what QEMU was given on the kernel command line:
#   mpops.mac=MAC        the first NIC's MAC
#   mpops.transport=T    legacy or modern: the interface the probe must have used
fail() {
	echo "$*" >"$MPOPS_REASON_FILE"
	echo "guest-probe: FAIL: $*"
	exit 1
}

out=/tmp/probe.out
guest_pci_probe >$out 2>&1
rc=$?
cat $out
[ $rc -eq 0 ] || fail "guest_pci_probe exited with status $rc: $(grep guest_pci_probe: $out | head -n 1)"

get() { sed -n "s/^$1=//p" $out | head -n 1; }
mac=$(get mac)
transport=$(get transport)
[ -n "$MPOPS_MAC" ] || fail "no mpops.mac= on the kernel command line"
[ "$mac" = "$MPOPS_MAC" ] || fail "MAC $mac, QEMU was given $MPOPS_MAC"
if [ -n "$MPOPS_TRANSPORT" ] && [ "$transport" != "$MPOPS_TRANSPORT" ]; then
	fail "transport $transport, expected $MPOPS_TRANSPORT"
fi
# VIRTIO_NET_F_MAC (bit 5) must be offered, or the MAC above means nothing.
features=$(get features)
[ $((features & 0x20)) -ne 0 ] || fail "features $features lack VIRTIO_NET_F_MAC"
echo "guest-probe: PASS: $transport device, MAC $mac"
