#!/bin/sh
# Runs every fuzz target in BUILD for SECONDS each (default 30) from its seed corpus.
set -eu
BUILD=${1:-build-fuzz}
SECS=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
rc=0
for t in fuzz_kernel_image fuzz_virtq fuzz_qcow2; do
	corpus=$(mktemp -d)
	[ -d "$here/corpus/$t" ] && cp -r "$here/corpus/$t/." "$corpus/"
	echo "fuzz: $t for ${SECS}s"
	if "$BUILD/fuzz/$t" -max_total_time="$SECS" -print_final_stats=1 "$corpus" \
		> "$BUILD/$t.log" 2>&1; then
		grep -E "stat::number_of_executed_units" "$BUILD/$t.log" || true
	else
		echo "fuzz: $t FAILED, see $BUILD/$t.log"; tail -40 "$BUILD/$t.log"; rc=1
	fi
	rm -rf "$corpus"
done
exit $rc
