#!/bin/sh
# SPDX-License-Identifier: MIT
# Vireo benchmarks, side by side with QEMU microvm and a raw-KVM floor (`make bench`).
#   bench/run.sh [BUILD_DIR] [--runs N] [--touch] [--linux [--linux-runs N]] [--help]
# BUILD_DIR (default: build) must hold src/cli/vireo; the bench targets (kvm-floor, bench-guest*,
# bench-spawn) are built there if missing. Everything else is in bench/bench.py (--help).
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
for t in kvm-floor bench-guest bench-guest-touch bench-spawn; do
	if [ ! -x "$build/bench/$t" ]; then
		ninja -C "$build" bench/kvm-floor bench/bench-guest bench/bench-guest-touch \
			bench/bench-spawn >/dev/null
		break
	fi
done
exec python3 "$here/bench.py" --build "$build" "$@"
