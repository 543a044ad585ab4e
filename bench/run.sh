#!/bin/sh
# SPDX-License-Identifier: MIT
# Vireo benchmarks, side by side with QEMU microvm and a raw-KVM floor (`make bench`).
#   bench/run.sh [BUILD_DIR] [--runs N] [--linux [--linux-runs N]] [--help]
# BUILD_DIR (default: build) must hold src/cli/vireo, bench/kvm-floor and bench/bench-guest;
# the two bench targets are built there if missing. Everything else is in bench/bench.py.
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
if [ ! -x "$build/bench/kvm-floor" ] || [ ! -x "$build/bench/bench-guest" ]; then
	ninja -C "$build" bench/kvm-floor bench/bench-guest >/dev/null
fi
exec python3 "$here/bench.py" --build "$build" "$@"
