#!/usr/bin/env bash
# `make bench`: the benchmark suite. Today that is the quick one-hop comparison (bench/quick.sh:
# Ringside vs direct, HAProxy and NGINX; about 3 minutes); see bench/README.md.
#
#   bench/run.sh [BUILD_DIR]     (default: build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/quick.sh" "${1:-build}"
