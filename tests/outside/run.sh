#!/usr/bin/env bash
# The outside project (tests/outside), built as a driver author would:
#  1. with mpops as a subproject (subprojects/mpops -> this repository):
#     built, its tests run (the audit of its shared types with
#     mpops-audit-types too, when libdw is there), and installed into a
#     temporary prefix, where mpops must have put its libraries, headers and
#     .pc files and no programs;
#  2. against that prefix through pkg-config (mpops.pc, mpops-vtnet.pc),
#     with no fallback: built and its tests run again.
# Everything it makes lives in one temporary directory, removed at exit.
#
#   run.sh MPOPS_SOURCE_DIR
set -euo pipefail

SRC=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d /tmp/mpops-outside.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

fail() {
	echo "outside: $*" >&2
	exit 1
}

step() {
	echo "== $*"
}

# Run a command quietly; show its output only when it fails.
quiet() {
	local log=$TMP/log
	"$@" >"$log" 2>&1 || { cat "$log" >&2; fail "failed: $*"; }
}

cp -r "$HERE" "$TMP/src"
mkdir -p "$TMP/src/subprojects"
ln -s "$SRC" "$TMP/src/subprojects/mpops"

step "as a subproject"
quiet meson setup "$TMP/sub" "$TMP/src" --prefix "$TMP/prefix" --libdir lib \
	--force-fallback-for=mpops,mpops-vtnet
quiet ninja -C "$TMP/sub"
# mpops-audit-types is the exception: a build tool for the project's own
# tests (find_program), built but not installed.
progs=$(find "$TMP/sub/subprojects" -type f -perm -u+x -name 'mpops-*' ! -name '*.so*' \
	! -name mpops-audit-types)
[ -z "$progs" ] || fail "the subproject built programs: $progs"
quiet meson test -C "$TMP/sub" --print-errorlogs
if pkg-config --exists libdw; then
	meson test -C "$TMP/sub" --list 2>/dev/null | grep -q audit_types ||
		fail "no audit_types test: find_program('mpops-audit-types') did not find the subproject's tool"
fi

step "installed into a prefix"
quiet meson install -C "$TMP/sub"
[ ! -e "$TMP/prefix/bin" ] || fail "the subproject installed programs: $(ls "$TMP/prefix/bin")"
for f in lib/pkgconfig/mpops.pc lib/pkgconfig/mpops-vtnet.pc include/mpops/vtnet.h \
	include/mpops/ops.h lib/libmpops.a lib/libmpops_vtnet.a; do
	[ -e "$TMP/prefix/$f" ] || fail "not installed: $f"
done
export PKG_CONFIG_PATH=$TMP/prefix/lib/pkgconfig
cflags=$(pkg-config --cflags mpops mpops-vtnet)
case "$cflags" in
*bsd* | *LIBBSD*) fail "mpops.pc gives consumers libbsd's cflags: $cflags" ;;
esac

step "through pkg-config"
export LD_LIBRARY_PATH=$TMP/prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
quiet meson setup "$TMP/pc" "$TMP/src" --wrap-mode=nofallback
quiet ninja -C "$TMP/pc"
quiet meson test -C "$TMP/pc" --print-errorlogs
echo "ok"
