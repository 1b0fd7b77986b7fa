#!/bin/sh
# Runs in the guest (busybox sh): the vtnet driver on QEMU's virtio-net-pci,
# from a primary and from secondaries that are other executables.
#
# Kernel command line (as mpops.KEY=VALUE):
#   mpops.access=uio|vfio      the driver the NICs are bound to
#   mpops.transport=legacy|modern   the interface the probe must pick
#   mpops.scenario=hub|vhost   hub: two NICs on a QEMU hub, packets cross from
#                              one to the other, then the origin's bug and the
#                              error paths; vhost: one NIC on a vhost-user
#                              backend on the host (mpops-vhost, kick-driven)
#   mpops.count=N              packets per direction (default 2000)
#   mpops.nic0=, mpops.nic1=   the NICs' PCI addresses (default 0000:00:01.0, 0000:00:02.0)
run=/tmp/run
count=${MPOPS_COUNT:-2000}
access=${MPOPS_ACCESS:-uio}
scenario=${MPOPS_SCENARIO:-hub}
primary_pid=''

fail() {
	echo "$*" >"$MPOPS_REASON_FILE"
	echo "guest-vtnet: FAIL: $*"
	stop_primary
	exit 1
}
say() { echo "guest-vtnet: $*"; }

stop_primary() {
	if [ -n "$primary_pid" ]; then
		kill "$primary_pid" 2>/dev/null
		wait "$primary_pid" 2>/dev/null
		primary_pid=''
	fi
}

# bind ADDR DRIVER: through driver_override, as the kernel documents.
bind() {
	dev=/sys/bus/pci/devices/$1
	[ -e "$dev/driver" ] && echo "$1" >"$dev/driver/unbind"
	echo "$2" >"$dev/driver_override"
	echo "$1" >/sys/bus/pci/drivers_probe
	drv=$(basename "$(readlink "$dev/driver")")
	[ "$drv" = "$2" ] || fail "$1 did not bind to $2 (bound to '$drv')"
}

unbind() {
	dev=/sys/bus/pci/devices/$1
	[ -e "$dev/driver" ] && echo "$1" >"$dev/driver/unbind"
	echo "" >"$dev/driver_override"
}

# start_primary PROG PORTS TARGETS: start it and wait for "ready".
start_primary() {
	# Emptied here, not by the background job's redirection: that may come
	# after the loop below read the previous primary's "ready".
	: >/tmp/primary.out
	VT_PRIMARY_LOG=1 "$1" $run r "$2" "$3" 1 1 >>/tmp/primary.out 2>&1 &
	primary_pid=$!
	i=0
	while ! grep -q '^ready' /tmp/primary.out; do
		if ! kill -0 $primary_pid 2>/dev/null; then
			cat /tmp/primary.out
			wait $primary_pid
			primary_pid=''
			fail "$1 exited before it was ready: $(grep -E 'log:|port=|region=' /tmp/primary.out | tail -n 1)"
		fi
		i=$((i + 1))
		[ $i -lt 300 ] || fail "$1 not ready within 30 s"
		sleep 0.1
	done
	cat /tmp/primary.out
}

# wait_for FILE PATTERN SECONDS WHAT: until PATTERN is in FILE, or fail.
wait_for() {
	n=0
	until grep -q "$2" "$1"; do
		n=$((n + 1))
		[ $n -lt $(($3 * 10)) ] || fail "$4 within $3 s"
		sleep 0.1
	done
}

# get FILE KEY: a key=value from a peer's output.
get() { sed -n "s/.*\<$2=\([^ ]*\).*/\1/p" "$1" | tail -n 1; }

hugepages() {
	echo 64 >/proc/sys/vm/nr_hugepages
	[ "$(cat /proc/sys/vm/nr_hugepages)" -ge 16 ] || fail "no hugepages in the guest"
}

nic0=${MPOPS_NIC0:-0000:00:01.0}
nic1=${MPOPS_NIC1:-0000:00:02.0}
[ "$access" = vfio ] && drv=vfio-pci || drv=uio_pci_generic
want_iface="legacy (virtio 0.9.5)"
[ "$MPOPS_TRANSPORT" = modern ] && want_iface="modern (virtio 1.x)"
mkdir -p $run
hugepages
# The test programs, under the names the checks below use.
for p in vt-primary vt-peer vt-primary-origin vt-peer-origin; do
	[ -x /bin/$p ] || fail "no /bin/$p in the guest"
done

# cross TX_PORT RX_PORT: a secondary receives on one port while another
# secondary sends COUNT packets on the other; the counts must match.
cross() {
	vt-peer rx $run r "$2" 0 "$count" >/tmp/rx.out 2>&1 &
	rxpid=$!
	sleep 1
	vt-peer tx $run r "$1" 0 "$count" >/tmp/tx.out 2>&1
	txrc=$?
	wait $rxpid
	rxrc=$?
	cat /tmp/tx.out /tmp/rx.out
	[ $txrc -eq 0 ] || fail "tx secondary on $1 exited with $txrc: $(grep -E 'log:|claim=' /tmp/tx.out | tail -n 1)"
	[ $rxrc -eq 0 ] || fail "rx secondary on $2 exited with $rxrc, received $(get /tmp/rx.out received) of $count"
	sent=$(get /tmp/tx.out sent)
	got=$(get /tmp/rx.out received)
	kicks=$(get /tmp/tx.out tx_kicks)
	[ "$sent" = "$count" ] || fail "$1: sent $sent, not $count"
	[ "$got" = "$count" ] || fail "$2: received $got of the $count $1 sent"
	[ "${kicks:-0}" -gt 0 ] || fail "$1: the tx secondary never notified the device"
	say "$1 -> $2: $sent sent, $got received, $kicks tx kicks from the secondary"
}

# held_round K: one round between the two secondaries that hold their
# claims (hold-tx on a, hold-rx on b): exactly COUNT sent and received.
held_round() {
	kill -USR1 $hold_rx
	sleep 0.5
	kill -USR1 $hold_tx
	wait_for /tmp/hold-tx.out "^round=$1 " 15 "the sender did not finish round $1"
	wait_for /tmp/hold-rx.out "^round=$1 " 15 "the receiver did not finish round $1"
	s=$(grep "^round=$1 " /tmp/hold-tx.out | sed 's/.*sent=\([0-9]*\).*/\1/')
	g=$(grep "^round=$1 " /tmp/hold-rx.out | sed 's/.*received=\([0-9]*\).*/\1/')
	[ "$s" = "$count" ] || fail "round $1: the sender that holds a sent $s of $count"
	[ "$g" = "$count" ] || fail "round $1: the receiver that holds b received $g of $count"
	say "round $1 between the holding secondaries: $s sent, $g received"
}

case $scenario in
hub)
	bind $nic0 $drv
	bind $nic1 $drv
	start_primary vt-primary a,b "pci:$nic0,pci:$nic1"
	grep -q "through $drv, $want_iface interface" /tmp/primary.out ||
		fail "the probe did not pick the $want_iface interface through $drv"
	cross a b
	cross b a

	# A secondary that cannot map the BAR its notify needs gets a clear
	# error when it claims a queue, and the port still works for others.
	if [ "$MPOPS_TRANSPORT" = modern ] && [ "$access" = uio ]; then
		res=/sys/bus/pci/devices/$nic0/resource4
		mount --bind /dev/null $res || fail "cannot hide $res"
		vt-peer tx $run r a 0 10 >/tmp/bar.out 2>&1
		rc=$?
		umount $res
		cat /tmp/bar.out
		[ $rc -ne 0 ] || fail "a secondary without BAR4 transmitted"
		grep -q 'claim=-95' /tmp/bar.out || fail "no -EOPNOTSUPP at claim without BAR4"
		grep -q 'cannot reach PCI device' /tmp/bar.out || fail "no log line for the unmappable BAR"
		cross a b
	fi
	# A secondary without port I/O privilege (CAP_SYS_RAWIO) cannot notify
	# a legacy device: a clear error at its claim.
	if [ "$MPOPS_TRANSPORT" = legacy ] && [ "$access" = uio ]; then
		VT_PEER_DROP_RAWIO=1 vt-peer tx $run r a 0 10 >/tmp/rawio.out 2>&1
		rc=$?
		cat /tmp/rawio.out
		[ $rc -eq 1 ] && grep -q 'claim=-1$' /tmp/rawio.out ||
			fail "a secondary without CAP_SYS_RAWIO was not refused with -EPERM"
		grep -q "no I/O port access for this process" /tmp/rawio.out ||
			fail "no log line for the secondary without port I/O"
	fi

	stop_primary

	# The origin's bug: the raw ops pointer the primary stored is not valid
	# in a secondary, which dies on its first notify.
	start_primary vt-primary-origin a,b "pci:$nic0,pci:$nic1"
	vt-peer-origin tx $run r a 0 100 >/tmp/origin.out 2>&1
	rc=$?
	cat /tmp/origin.out
	stop_primary
	[ $rc -eq 139 ] || fail "the origin's secondary exited with $rc, not SIGSEGV (139)"
	say "origin: the raw-pointer secondary died of SIGSEGV on its first notify"

	# A device bound to no usable driver: a clear error at create.
	unbind $nic1
	VT_PRIMARY_LOG=1 vt-primary $run r b "pci:$nic1" 1 1 >/tmp/unbound.out 2>&1
	rc=$?
	cat /tmp/unbound.out
	[ $rc -eq 1 ] && grep -q 'port=-19' /tmp/unbound.out || fail "unbound device: not -ENODEV"
	grep -q "is bound to no driver: bind it to uio_pci_generic or vfio-pci" /tmp/unbound.out ||
		fail "unbound device: no log line that says what to do"

	# The interface the device does not have, asked for by name.
	bind $nic1 $drv
	if [ "$MPOPS_TRANSPORT" = modern ]; then
		other=pci-legacy want="is modern only (1af4:1041): use transport pci-modern or pci"
	else
		other=pci-modern want="has no virtio 1.x capabilities: use transport pci-legacy or pci"
	fi
	VT_PRIMARY_LOG=1 vt-primary $run r b "$other:$nic1" 1 1 >/tmp/iface.out 2>&1
	rc=$?
	cat /tmp/iface.out
	[ $rc -eq 1 ] && grep -q 'port=-19' /tmp/iface.out || fail "$other on a $MPOPS_TRANSPORT device: not -ENODEV"
	grep -q "$want" /tmp/iface.out || fail "$other on a $MPOPS_TRANSPORT device: no log line"

	# A PCI function that is not a virtio-net device (the SATA controller).
	sata=0000:00:1f.2
	bind $sata uio_pci_generic
	VT_PRIMARY_LOG=1 vt-primary $run r b "pci:$sata" 1 1 >/tmp/notnet.out 2>&1
	rc=$?
	cat /tmp/notnet.out
	unbind $sata
	[ $rc -eq 1 ] && grep -q 'port=-19' /tmp/notnet.out || fail "a SATA controller as a NIC: not -ENODEV"
	grep -q "not a virtio-net device" /tmp/notnet.out || fail "a SATA controller as a NIC: no log line"

	# vfio: a device whose IOMMU group is not viable (the SATA controller
	# shares group 3 with the SMBus controller, bound to another driver).
	if [ "$access" = vfio ]; then
		smbus=0000:00:1f.3
		bind $smbus uio_pci_generic
		bind $sata vfio-pci
		VT_PRIMARY_LOG=1 vt-primary $run r b "pci:$sata" 1 1 >/tmp/viable.out 2>&1
		rc=$?
		cat /tmp/viable.out
		unbind $sata
		unbind $smbus
		[ $rc -eq 1 ] && grep -q 'port=-16' /tmp/viable.out || fail "a group that is not viable: not -EBUSY"
		grep -q "is not viable: bind every device in it to vfio-pci" /tmp/viable.out ||
			fail "a group that is not viable: no log line"
	fi

	# Unbound after the primary started: a new secondary is refused.
	start_primary vt-primary a,b "pci:$nic0,pci:$nic1"
	if [ "$access" = uio ]; then
		unbind $nic1
		vt-peer tx $run r b 0 10 >/tmp/gone.out 2>&1
		rc=$?
		cat /tmp/gone.out
		[ $rc -ne 0 ] && grep -q 'claim=-19' /tmp/gone.out ||
			fail "a secondary on an unbound device was not refused with -ENODEV"
		grep -q "not to uio_pci_generic" /tmp/gone.out || fail "no log line for the unbound device"
		bind $nic1 $drv
	fi

	# The device reset under the driver (a function-level reset by the
	# kernel): the primary notices, the link goes down, bursts stop; a stop
	# and start of the port brings it back. Two secondaries hold their
	# claims throughout (a sender on a, a receiver on b) and move packets
	# again afterwards in the same processes.
	VT_PEER_ROUND=tx vt-peer serve $run r a 0 "$count" >/tmp/hold-tx.out 2>&1 &
	hold_tx=$!
	VT_PEER_ROUND=rx vt-peer serve $run r b 0 "$count" >/tmp/hold-rx.out 2>&1 &
	hold_rx=$!
	wait_for /tmp/hold-tx.out "^holding" 10 "the sender did not claim a"
	wait_for /tmp/hold-rx.out "^holding" 10 "the receiver did not claim b"
	# A stop and start first: the error paths above unbound and bound b
	# again, which left its bus mastering off (a QEMU hub then holds a's
	# packets back too).
	kill -USR1 $primary_pid
	wait_for /tmp/primary.out "^restarted" 10 "the primary did not restart its ports"
	grep -q "^restarted rc=0" /tmp/primary.out || fail "restart: $(grep restarted /tmp/primary.out)"
	held_round 1
	[ -e /sys/bus/pci/devices/$nic0/reset ] || fail "$nic0 has no reset method (run with --pcie)"
	echo 1 >/sys/bus/pci/devices/$nic0/reset || fail "the kernel could not reset $nic0"
	# (During the reset itself the device may not answer at all: either
	# line is right.)
	wait_for /tmp/primary.out "PCI device $nic0 .*link down, bursts stopped" 5 \
		"the primary did not notice the reset of $nic0"
	grep "link down, bursts stopped" /tmp/primary.out
	kill -USR1 $primary_pid
	n=0
	until [ "$(grep -c '^restarted' /tmp/primary.out)" -ge 2 ]; do
		n=$((n + 1))
		[ $n -lt 100 ] || fail "the primary did not restart its ports after the reset within 10 s"
		sleep 0.1
	done
	[ "$(grep -c '^restarted rc=0' /tmp/primary.out)" -eq 2 ] ||
		fail "restart after the reset: $(grep restarted /tmp/primary.out | tail -n 1)"
	held_round 2
	kill $hold_tx $hold_rx
	wait $hold_tx || fail "the sender that held a across the reset exited with $?"
	wait $hold_rx || fail "the receiver that held b across the reset exited with $?"
	cross a b
	say "reset of $nic0 noticed; after a stop and start packets cross again, also between the secondaries that kept their claims"
	stop_primary
	;;
vhost)
	bind $nic0 $drv
	start_primary vt-primary a "pci:$nic0"
	grep -q "through $drv, $want_iface interface" /tmp/primary.out ||
		fail "the probe did not pick the $want_iface interface through $drv"
	vt-peer loop $run r a 0 "$count" >/tmp/loop.out 2>&1
	rc=$?
	cat /tmp/loop.out
	[ $rc -eq 0 ] || fail "loop secondary exited with $rc: received $(get /tmp/loop.out received) of $count"
	say "vhost: sent=$(get /tmp/loop.out sent) received=$(get /tmp/loop.out received) tx_kicks=$(get /tmp/loop.out tx_kicks) rx_kicks=$(get /tmp/loop.out rx_kicks)"

	# The backend dies on the host (the test kills it on this line): QEMU
	# takes the NIC's link down, and the primary notices.
	say "waiting for the backend to go"
	wait_for /tmp/primary.out "vtnet a: link down" 30 "the primary did not notice the backend's death"
	say "backend gone: the primary took the link down"
	stop_primary
	;;
*)
	fail "unknown scenario '$scenario'"
	;;
esac
say PASS
