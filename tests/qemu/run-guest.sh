#!/usr/bin/env bash
# Boot the guest built by build-guest.sh under QEMU (TCG) and report its result.
#
#   run-guest.sh [options] [-- QEMU-ARGS...]
#
#   --guest DIR        vmlinuz and initrd.img from build-guest.sh --out DIR
#   --kernel F, --initrd F   or name them one by one
#   --nics MODE        two virtio-net-pci NICs on one QEMU hub: legacy (0.9.5 only,
#                      1af4:1000), modern (1.x only, 1af4:1041) or transitional
#                      (both, 1af4:1000); default: no NICs
#   --mac MAC          the first NIC's MAC (default 52:54:00:12:34:56; the second
#                      NIC's last byte is one more)
#   --iommu            QEMU's intel-iommu before the NICs, intel_iommu=on in the guest,
#                      iommu_platform=on,ats=on on modern NICs
#   --vhost-user SOCK  a NIC on a vhost-user backend listening on SOCK instead of the
#                      hub NICs (repeatable; guest memory becomes a shared memfd)
#   --append STR       more kernel command line (e.g. mpops.mac=...)
#   --pcie             put each NIC behind its own PCIe root port (bus 1, 2, ...):
#                      a PCI Express device, with function-level reset
#   --smp N            guest CPUs (default 1; TCG runs one host thread each)
#   --timeout SEC      kill QEMU after SEC seconds (default 120)
#   --log FILE         keep the serial console output in FILE
#   --quiet            do not copy the console to stdout
#
# Exit status: 0 only if the guest printed "MPOPS-GUEST-RESULT: PASS"; 1 if it
# printed FAIL or no result, 124 on timeout, 2 on bad usage. QEMU never outlives
# this script. Only hubport and vhost-user netdevs: the guest has no way off the host.
set -euo pipefail
shopt -s inherit_errexit	# errors inside $(...) stop the script too

GUEST='' KERNEL='' INITRD='' NICS='' IOMMU=0 APPEND='' TIMEOUT=120 LOG='' QUIET=0 SMP=1 PCIE=0
MAC=52:54:00:12:34:56
VHOST=()
EXTRA=()

usage() {
	sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
die() { echo "run-guest: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
	case $1 in
	--guest|--kernel|--initrd|--nics|--mac|--vhost-user|--append|--timeout|--log|--smp)
		[ $# -ge 2 ] || usage ;;&
	--guest) GUEST=$2; shift 2 ;;
	--kernel) KERNEL=$2; shift 2 ;;
	--initrd) INITRD=$2; shift 2 ;;
	--nics) NICS=$2; shift 2 ;;
	--mac) MAC=$2; shift 2 ;;
	--iommu) IOMMU=1; shift ;;
	--pcie) PCIE=1; shift ;;
	--vhost-user) VHOST+=("$2"); shift 2 ;;
	--append) APPEND="$APPEND $2"; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--smp) SMP=$2; shift 2 ;;
	--log) LOG=$2; shift 2 ;;
	--quiet) QUIET=1; shift ;;
	--) shift; EXTRA=("$@"); break ;;
	-h|--help) usage ;;
	*) echo "run-guest: unknown argument: $1" >&2; usage ;;
	esac
done

[ -n "$GUEST" ] && KERNEL=${KERNEL:-$GUEST/vmlinuz} INITRD=${INITRD:-$GUEST/initrd.img}
[ -f "$KERNEL" ] || die "no kernel (--guest DIR or --kernel FILE): '$KERNEL'"
[ -f "$INITRD" ] || die "no initrd (--guest DIR or --initrd FILE): '$INITRD'"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout: not a number of seconds: $TIMEOUT"
[[ $SMP =~ ^[1-8]$ ]] || die "--smp: 1 to 8 CPUs, not $SMP"
[[ $MAC =~ ^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] || die "--mac: not a MAC: $MAC"
command -v qemu-system-x86_64 >/dev/null ||
	die "no qemu-system-x86_64 (build-guest.sh installs it)"

# The NIC's virtio interfaces. romfile= empty: no option ROM, nothing for it to boot.
case $NICS in
legacy) nic_opts=disable-legacy=off,disable-modern=on ;;
modern) nic_opts=disable-legacy=on,disable-modern=off ;;
transitional) nic_opts=disable-legacy=off,disable-modern=off ;;
'') nic_opts= ;;
*) die "--nics: legacy, modern or transitional, not '$NICS'" ;;
esac
[ ${#VHOST[@]} -gt 0 ] && [ -z "$NICS" ] && NICS=modern nic_opts=disable-legacy=on,disable-modern=off
nic_opts="$nic_opts,romfile="
if [ $IOMMU = 1 ] && [ "$NICS" != legacy ]; then
	# Legacy virtio has no VIRTIO_F_ACCESS_PLATFORM: its DMA bypasses the vIOMMU.
	nic_opts="$nic_opts,iommu_platform=on,ats=on"
fi

# The MAC of NIC i: the given one with i added to its last byte.
nic_mac() {
	printf '%s:%02x' "${MAC%:*}" $(((0x${MAC##*:} + $1) & 0xff))
}

args=(-machine q35 -accel tcg -m 512 -smp "$SMP"
	-nodefaults -no-user-config -display none -monitor none -net none -no-reboot
	-kernel "$KERNEL" -initrd "$INITRD")
append="console=ttyS0 quiet panic=-1"
if [ $IOMMU = 1 ]; then
	args+=(-device 'intel-iommu,aw-bits=48')
	append="$append intel_iommu=on"
fi
if [ ${#VHOST[@]} -gt 0 ]; then
	# vhost-user needs the guest's memory in a file the backend can map.
	args+=(-object 'memory-backend-memfd,id=mem,size=512M,share=on' -numa 'node,memdev=mem')
	for i in "${!VHOST[@]}"; do
		args+=(-chardev "socket,id=c$i,path=${VHOST[$i]}"
			-netdev "vhost-user,id=n$i,chardev=c$i"
			-device "virtio-net-pci,netdev=n$i,mac=$(nic_mac "$i"),$nic_opts")
	done
elif [ -n "$NICS" ]; then
	for i in 0 1; do
		bus=''
		if [ $PCIE = 1 ]; then
			args+=(-device "pcie-root-port,id=rp$i,bus=pcie.0,chassis=$((i + 1)),slot=$((i + 1))")
			bus=",bus=rp$i"
		fi
		args+=(-netdev "hubport,id=n$i,hubid=0"
			-device "virtio-net-pci,netdev=n$i,mac=$(nic_mac "$i"),$nic_opts$bus")
	done
fi

# ---------------------------------------------------------------- run

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/mpops-guest.XXXXXX")
serial=${LOG:-$tmpdir/serial.log}
: >"$serial"
qpid='' tpid=''
# shellcheck disable=SC2317  # called by the trap
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$qpid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$qpid" 2>/dev/null || true
	fi
	if [ -n "$qpid" ]; then
		wait "$qpid" 2>/dev/null || true
	fi
	if [ -n "$tpid" ]; then
		kill "$tpid" 2>/dev/null || true
		wait "$tpid" 2>/dev/null || true
	fi
	rm -rf "$tmpdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

args+=(-serial "file:$serial" -append "$append$APPEND" "${EXTRA[@]}")
qemu-system-x86_64 "${args[@]}" </dev/null >"$tmpdir/qemu.out" 2>&1 &
qpid=$!
if [ $QUIET = 0 ]; then
	tail -n +1 -f --pid="$qpid" "$serial" &
	tpid=$!
fi

timed_out=0
deadline=$((SECONDS + TIMEOUT))
while kill -0 "$qpid" 2>/dev/null; do
	if [ $SECONDS -ge $deadline ]; then
		timed_out=1
		break
	fi
	sleep 0.2
done
if [ $timed_out = 1 ]; then
	echo "run-guest: timeout after ${TIMEOUT}s, killing QEMU (pid $qpid)" >&2
	exit 124	# cleanup kills it
fi
qrc=0
wait "$qpid" || qrc=$?
qpid=
# tail ends by itself within a second of QEMU, having copied the last lines.
if [ -n "$tpid" ]; then
	wait "$tpid" 2>/dev/null || true
	tpid=
fi
# A hub with no host netdev is what we want: say nothing about it.
grep -v 'warning: hub [0-9]* is not connected to host network' "$tmpdir/qemu.out" |
	sed 's/^/qemu: /' >&2 || true
result=$(tr -d '\r' <"$serial" | sed -n 's/^.*MPOPS-GUEST-RESULT: //p' | tail -n 1)
case $result in
PASS) exit 0 ;;
'') echo "run-guest: no result line (QEMU exit status $qrc)" >&2; exit 1 ;;
*) echo "run-guest: $result" >&2; exit 1 ;;
esac
