#!/usr/bin/env bash
# One guest test for meson (suite 'qemu'): build the guest with guest_pci_probe and
# guest-probe.sh, boot it with two NICs of one kind on a QEMU hub, and pass only if
# the guest says PASS.
#
#   guest-test.sh legacy|modern PROBE OUTDIR
#
# Exit 77 (skipped) when QEMU is missing and this user cannot install it.
set -euo pipefail
shopt -s inherit_errexit	# errors inside $(...) stop the script too
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 3 ] || { sed -n '6p' "$0" | sed 's/^# //' >&2; exit 2; }
mode=$1 probe=$2 out=$3
mac=52:54:00:12:34:56

if [ "$(id -u)" -ne 0 ]; then
	for tool in qemu-system-x86_64 busybox cpio /usr/sbin/depmod; do
		command -v "$tool" >/dev/null || {
			echo "guest-test: skipped: no $tool, and only root may install it"
			exit 77
		}
	done
fi

start=$SECONDS
"$here/build-guest.sh" --out "$out" --add "$probe" --script "$here/guest-probe.sh"
echo "guest-test: guest built in $((SECONDS - start)) s"
start=$SECONDS
rc=0
"$here/run-guest.sh" --guest "$out" --nics "$mode" --mac "$mac" \
	--append "mpops.mac=$mac mpops.transport=$mode" --timeout 120 || rc=$?
echo "guest-test: guest ran for $((SECONDS - start)) s, status $rc"
exit $rc
