#!/usr/bin/env bash
# Build a small guest for QEMU: Debian's kernel and an initramfs of busybox-static,
# the uio/vfio modules and our statically linked test programs.
#
#   build-guest.sh [--out DIR] [--add PROG]... [--script FILE]
#
#   --out DIR      where vmlinuz and initrd.img go (default: $CACHE/out)
#   --add PROG     a statically linked program, copied to the guest's /bin (repeatable)
#   --script FILE  the test script, copied to the guest's /run-test.sh
#
# Everything downloaded or built is cached in $MPOPS_GUEST_CACHE (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/mpops-guest): the kernel package, its unpacked tree,
# and the base initramfs (busybox, modules, /init). A warm run only packs the programs
# and the script into a small second cpio archive appended to the base one.
# Nothing is installed into /boot or /lib/modules of the host.
#
# The guest's /init mounts proc, sysfs and devtmpfs, loads the modules, runs the test
# script (or the one named by mpops.script= on the kernel command line) and prints
#   MPOPS-GUEST-RESULT: PASS            (the script exited 0)
#   MPOPS-GUEST-RESULT: FAIL <reason>   (otherwise)
# on the serial console, then powers off. Kernel parameters mpops.KEY=VALUE reach the
# script as MPOPS_KEY=VALUE (KEY upper-cased); a script may write a one-line reason
# for its failure to $MPOPS_REASON_FILE.
set -euo pipefail
shopt -s inherit_errexit	# errors inside $(...) stop the script too

PKGS=(qemu-system-x86 busybox-static cpio kmod)
# Loaded in this order (after their dependencies from modules.dep) at boot.
MODULES=(uio uio_pci_generic irqbypass vfio vfio_iommu_type1 vfio_pci_core vfio_pci)

CACHE=${MPOPS_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mpops-guest}
OUT=
ADD=()
SCRIPT=

die() { echo "build-guest: $*" >&2; exit 1; }
log() { echo "build-guest: $*" >&2; }

usage() {
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
	--add) [ $# -ge 2 ] || usage; ADD+=("$2"); shift 2 ;;
	--script) [ $# -ge 2 ] || usage; SCRIPT=$2; shift 2 ;;
	-h|--help) usage ;;
	*) echo "build-guest: unknown argument: $1" >&2; usage ;;
	esac
done
OUT=${OUT:-$CACHE/out}
for f in "${ADD[@]}" ${SCRIPT:+"$SCRIPT"}; do
	[ -f "$f" ] || die "no such file: $f"
done

# ---------------------------------------------------------------- host packages

apt_updated=0
apt_update() {
	[ $apt_updated = 1 ] && return 0
	log "apt-get update"
	apt-get update -qq
	apt_updated=1
}

install_missing() {
	local missing=() p
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] ||
		die "missing packages; as root: apt-get install --no-install-recommends ${missing[*]}"
	apt_update
	log "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- kernel

# "PKG VERSION" of the image package linux-image-amd64 points at, e.g.
# "linux-image-6.1.0-56-amd64 6.1.192-2". Each apt-cache call parses the package
# lists (over a second here: apt's binary cache is off), so the answer is kept until
# the lists change.
kernel_package() {
	local stamp memo=$CACHE/kernel-package line pkg ver
	stamp=$( (stat -c '%n %Y %s' /var/lib/apt/lists/*Packages* 2>/dev/null || true) | sha256sum)
	if [ -f "$memo" ] && [ "$(head -n 1 "$memo")" = "$stamp" ]; then
		sed -n 2p "$memo"
		return 0
	fi
	line=$(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
		sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*\)\( (= \([^)]*\))\)\{0,1\}.*$/\1 \3/p' |
		head -n 1)
	pkg=${line%% *} ver=${line#* }
	[ -n "$pkg" ] || return 0
	if [ -z "$ver" ]; then
		ver=$(apt-cache show --no-all-versions "$pkg" | sed -n 's/^Version: //p' | head -n 1)
		[ -n "$ver" ] || return 0
	fi
	printf '%s\n%s %s\n' "$stamp" "$pkg" "$ver" >"$memo"
	echo "$pkg $ver"
}

# Downloads the kernel package into $CACHE/debs unless it is there; prints its path.
fetch_kernel_deb() {
	local line pkg ver deb
	line=$(kernel_package)
	if [ -z "$line" ]; then
		apt_update
		line=$(kernel_package)
	fi
	[ -n "$line" ] || die "apt-cache knows no linux-image-amd64"
	pkg=${line%% *} ver=${line#* }
	# apt-get download names the file pkg_version_arch.deb, an epoch's ':' as %3a.
	deb=$CACHE/debs/${pkg}_${ver//:/%3a}_amd64.deb
	if [ ! -f "$deb" ]; then
		log "downloading $pkg $ver"
		# Into a folder of its own first, so an interrupted download is never taken
		# for a whole one.
		rm -rf "$CACHE/debs/partial"
		mkdir -p "$CACHE/debs/partial"
		if ! (cd "$CACHE/debs/partial" && apt-get download -qq "$pkg=$ver" 2>/dev/null); then
			apt_update
			(cd "$CACHE/debs/partial" && apt-get download -qq "$pkg=$ver") ||
				die "apt-get download $pkg=$ver failed"
		fi
		mv "$CACHE/debs/partial/$(basename "$deb")" "$deb" ||
			die "apt-get download did not leave $(basename "$deb")"
		rmdir "$CACHE/debs/partial"
	fi
	echo "$deb"
}

# Unpacks the package into $CACHE/kernel/NAME (once) and runs depmod there; prints
# the tree's path.
unpack_kernel() {
	local deb=$1 tree tmp kver
	tree=$CACHE/kernel/$(basename "$deb" .deb)
	if [ ! -f "$tree/.done" ]; then
		log "unpacking $(basename "$deb")"
		rm -rf "$tree" "$tree.tmp"
		tmp=$tree.tmp
		mkdir -p "$tmp"
		if ! dpkg-deb -x "$deb" "$tmp"; then
			rm -rf "$deb" "$tmp"
			die "$(basename "$deb") is damaged; removed, the next run downloads it again"
		fi
		kver=$(ls "$tmp/lib/modules" 2>/dev/null | head -n 1)
		[ -n "$kver" ] || die "$deb has no lib/modules"
		depmod -b "$tmp" "$kver"
		touch "$tmp/.done"
		mv "$tmp" "$tree"
	fi
	echo "$tree"
}

# ---------------------------------------------------------------- base initramfs

# Module files (relative to lib/modules/KVER) to load, dependencies first, each once.
module_load_order() {
	local moddir=$1 m want path deps d
	declare -A seen=()
	for m in "${MODULES[@]}"; do
		want=${m//-/_}
		# modules.dep: "kernel/.../name.ko: dep1.ko dep2.ko", transitive; modprobe
		# loads the listed dependencies last to first.
		path=$(awk -F: -v w="$want" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko.*$/, "", n);
			gsub(/-/, "_", n); if (n == w) { print $1; exit } }' "$moddir/modules.dep")
		[ -n "$path" ] || die "module $m not in $moddir/modules.dep"
		deps=$(awk -F': *' -v p="$path" '$1 == p { print $2 }' "$moddir/modules.dep")
		for d in $(echo "$deps" | tr ' ' '\n' | tac) "$path"; do
			[ -n "${seen[$d]:-}" ] && continue
			seen[$d]=1
			echo "$d"
		done
	done
}

write_init() {
	cat >"$1" <<'EOF'
#!/bin/sh
# mpops guest init: mount, load modules, run the test, report, power off.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
[ -e /proc/self/fd/1 ] || exec </dev/console >/dev/console 2>&1
mkdir -p /tmp
mount -t tmpfs tmpfs /tmp

result() {
	echo
	echo "MPOPS-GUEST-RESULT: $*"
	poweroff -f
	sleep 10
}

for m in $(cat /etc/mpops-modules); do
	insmod "/lib/modules/$(uname -r)/$m" || result "FAIL insmod $m"
done

# mpops.KEY=VALUE on the kernel command line -> MPOPS_KEY=VALUE.
script=/run-test.sh
for arg in $(cat /proc/cmdline); do
	case $arg in
	mpops.script=*) script=${arg#*=} ;;
	mpops.*=*)
		key=${arg%%=*}
		key=$(echo "${key#mpops.}" | tr a-z.- A-Z__)
		export "MPOPS_$key=${arg#*=}"
		;;
	esac
done
export MPOPS_REASON_FILE=/tmp/mpops-reason

[ -f "$script" ] || result "FAIL no test script $script"
echo "mpops-guest: running $script on $(uname -r)"
sh "$script"
rc=$?
[ $rc -eq 0 ] && result PASS
reason=$(head -n 1 "$MPOPS_REASON_FILE" 2>/dev/null)
result "FAIL ${reason:-$script exited with status $rc}"
EOF
	chmod 755 "$1"
}

# Packs DIR into a gzip'd newc cpio archive owned by root.
pack() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0) | gzip -n -6 >"$2"
}

# Builds $CACHE/base-KEY.cpio.gz unless it is there; prints its path. The key covers
# everything that goes in: kernel, busybox, and this script (module list, /init).
build_base() {
	local tree=$1 kver moddir busybox key base stage m
	kver=$(ls "$tree/lib/modules" | head -n 1)
	moddir=$tree/lib/modules/$kver
	busybox=$(dpkg -L busybox-static | grep '/bin/busybox$' | head -n 1)
	[ -x "$busybox" ] || die "busybox-static installed but no bin/busybox"
	key=$( { basename "$tree"; sha256sum <"$busybox"; sha256sum <"$0"; } |
		sha256sum | cut -c1-16)
	base=$CACHE/base-$key.cpio.gz
	if [ ! -f "$base" ]; then
		log "building base initramfs for $kver"
		stage=$(mktemp -d "$CACHE/stage.XXXXXX")
		mkdir -p "$stage"/{bin,dev,etc,proc,sys,tmp,lib/modules/"$kver"}
		cp "$busybox" "$stage/bin/busybox"
		for m in $("$busybox" --list); do
			[ "$m" = busybox ] || ln -s busybox "$stage/bin/$m"
		done
		# Kernel output before devtmpfs is mounted needs a console node; only root
		# can make one, and /init reopens the console anyway.
		mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
		: >"$stage/etc/mpops-modules"
		for m in $(module_load_order "$moddir"); do
			mkdir -p "$stage/lib/modules/$kver/$(dirname "$m")"
			case $m in
			*.ko) cp "$moddir/$m" "$stage/lib/modules/$kver/$m" ;;
			*.ko.xz) xz -dc "$moddir/$m" >"$stage/lib/modules/$kver/${m%.xz}"; m=${m%.xz} ;;
			*.ko.zst) zstd -qdc "$moddir/$m" >"$stage/lib/modules/$kver/${m%.zst}"; m=${m%.zst} ;;
			*) die "unknown module format: $m" ;;
			esac
			echo "$m" >>"$stage/etc/mpops-modules"
		done
		write_init "$stage/init"
		pack "$stage" "$base.tmp"
		rm -rf "$stage"
		mv "$base.tmp" "$base"
	fi
	# Older bases are never used again.
	find "$CACHE" -maxdepth 1 -name 'base-*.cpio.gz' ! -path "$base" -delete
	echo "$base"
}

# ---------------------------------------------------------------- main

install_missing
mkdir -p "$CACHE" "$OUT"
# One builder at a time per cache.
exec 9>"$CACHE/.lock"
flock 9
# Left by a builder that was killed; with the lock held, nobody else's.
rm -rf "$CACHE"/stage.* "$CACHE"/base-*.tmp "$CACHE"/kernel/*.tmp

deb=$(fetch_kernel_deb)
tree=$(unpack_kernel "$deb")
base=$(build_base "$tree")
# A kernel that linux-image-amd64 no longer points at is not needed (~500 MB each).
find "$CACHE/debs" -maxdepth 1 -name '*.deb' ! -path "$deb" -delete
find "$CACHE/kernel" -mindepth 1 -maxdepth 1 ! -path "$tree" -exec rm -rf {} +

# The per-run part: programs and script, appended as a second archive (the kernel
# unpacks concatenated archives in order).
stage=$(mktemp -d "$CACHE/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
for f in "${ADD[@]}"; do
	install -m 755 "$f" "$stage/bin/$(basename "$f")"
done
[ -n "$SCRIPT" ] && install -m 755 "$SCRIPT" "$stage/run-test.sh"
pack "$stage" "$stage.cpio.gz"
cat "$base" "$stage.cpio.gz" >"$OUT/initrd.img.tmp"
rm -f "$stage.cpio.gz"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
cp "$tree"/boot/vmlinuz-* "$OUT/vmlinuz.tmp"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"

echo "kernel: $OUT/vmlinuz"
echo "initrd: $OUT/initrd.img"
