#!/bin/sh
# SPDX-License-Identifier: MIT
# Vireo's block layer (io_uring, threads, qcow2) against host fio on the same file.
#   bench/block.sh [BUILD_DIR] [--time S] [--size MiB] [--dir DIR] [--only 4k] [--qd N]
#                  [--pattern both|per-io|batched] [--reps N] [--loop] [--compare OLD_BUILD_DIR]
#                  [--uring-only] [--syscalls] [--keep] [--no-fio] [--help]
# Two submission patterns, each with fio and blk-bench driven alike: per-I/O (fio's defaults)
# and batched (the device's pattern); `x fio` compares within a pattern (see bench/block.md).
# BUILD_DIR (default: build) gets bench/blk-bench built if missing; the rest is bench/block.py.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=build
case "${1:-}" in
"" | -*) ;;
*)
	build=$1
	shift
	;;
esac
if [ ! -x "$build/bench/blk-bench" ]; then
	ninja -C "$build" bench/blk-bench >/dev/null
fi
exec python3 "$here/block.py" --build "$build" "$@"
