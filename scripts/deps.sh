#!/usr/bin/env bash
# Installs what Ringside needs to build, run and test, idempotently and quietly when nothing is
# missing: Debian packages through apt-get, and Envoy's .proto files from the npm package
# @grpc/grpc-js-xds (pinned) into third_party/npm.
set -euo pipefail
cd "$(dirname "$0")/.."

GRPC_JS_XDS_VERSION=1.14.1
PKGS=(build-essential cmake pkg-config clang llvm lld libclang-rt-14-dev git
      liburing-dev android-libboringssl-dev libnghttp2-dev nghttp2-client
      libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev
      libbpf-dev bpftool libyaml-dev libjansson-dev node-llhttp libpcre2-dev
      curl python3 procps iproute2 psmisc iptables
      wrk haproxy nginx-light libnginx-mod-stream)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Where a command may come from more than one package (Node.js from NodeSource bundles npm;
# gnuplot comes as -nox, -qt or -x11), the command's presence is what counts.
command -v npm >/dev/null || missing+=(nodejs npm)
command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # nginx and haproxy are benchmark peers, started by the tests themselves.
    systemctl disable --now nginx haproxy >/dev/null 2>&1 || true
fi

npm_dir=third_party/npm
stamp="$npm_dir/.grpc-js-xds-$GRPC_JS_XDS_VERSION"
if [ ! -f "$stamp" ]; then
    echo "deps: fetching @grpc/grpc-js-xds@$GRPC_JS_XDS_VERSION (Envoy API .proto files)"
    mkdir -p "$npm_dir"
    npm install --prefix "$npm_dir" --no-audit --no-fund --ignore-scripts --loglevel=error \
        "@grpc/grpc-js-xds@$GRPC_JS_XDS_VERSION" >/dev/null
    touch "$stamp"
fi
