#!/usr/bin/env bash
# Ringside's ADS client, delta (DeltaAggregatedResources), against a third-party ADS server (grpc-js with
# Envoy's .proto files): see tests/data/xds/basic.sh for what is asserted.
source "$(dirname "$0")/lib.sh"
API=DELTA_GRPC
source "$RS_SRC/tests/data/xds/basic.sh"
