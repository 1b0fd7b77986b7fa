#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Run one libFuzzer harness for a bounded time on a scratch copy of its
# seed corpus (the committed seeds stay as they are):
#
#   tests/fuzz/fuzz-run.sh FUZZER SEED_DIR SECONDS [libFuzzer options...]
#
# Exit 0 when it found nothing. On a crash, leak or timeout: the end of the
# fuzzer's output, the failing input gzipped in base64 (save it with
# base64 -d | gunzip > input, replay it with FUZZER input), exit 1.
# KEEP=DIR keeps the grown corpus and any artifact in DIR; otherwise every
# file made here is removed.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '4,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
fuzzer=$1 seeds=$2 secs=$3
shift 3
work=${KEEP:-}
if [ -z "$work" ]; then
	work=$(mktemp -d "${TMPDIR:-/tmp}/mpops-fuzz-XXXXXX")
	trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/corpus"
cp -n "$seeds"/* "$work/corpus/" 2>/dev/null || true
rc=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
	"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$work/" "$@" "$work/corpus" >"$work/log" 2>&1 || rc=$?
if [ $rc -ne 0 ]; then
	tail -80 "$work/log"
	for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
		[ -e "$a" ] || continue
		echo "failing input $(basename "$a") (gzip, base64):"
		gzip -c "$a" | base64
	done
	exit 1
fi
grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|stat::new_units_added" "$work/log" || true
