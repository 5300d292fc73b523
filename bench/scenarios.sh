# The load scenarios bench/run.sh runs against every system, sourced. Adding one is a word in
# SCENARIOS and an entry in each table below. Each runs bench/loadgen once per system per round.
#   SCEN_ARGS   loadgen arguments (besides --url, --duration, --warmup, --json)
#   SCEN_PORT   which listener of the system it uses: http, tcp (the L4 / tcp_proxy path), or
#               tls (an mTLS system's hop 2, its mTLS port: loadgen is the client-side sidecar)
#   SCEN_SECS   measured seconds in the quick set, the full set, and the mtls-tail set (a slice)
#   SCEN_WORK   what the proxies' CPU time is divided by: req (per 1,000 requests), gb (per 10^9
#               bytes read by the client), conn (per 1,000 connections)
#   SCEN_RSS    1: sample the proxies' resident memory in the middle of the run
#   SCEN_LABEL  for the report
#   SCEN_ON     which systems it runs on: all (default), plain (not the mTLS systems) or mtls
#               (only them; direct neither)
# The mTLS set (bench/run.sh BUILD mtls, or RS_BENCH_MTLS=1) runs MTLS_SCENARIOS on direct and the
# mTLS systems: scenarios 1-3 through the mesh hop pair, and tlsconn, full mTLS handshakes per
# second straight to hop 2 (one request per connection, no session resumption; bench/README.md).
# shellcheck shell=bash disable=SC2034 # the tables are read by run.sh

SCENARIOS=(rate1k rate10k max bulk newconn)
MTLS_SCENARIOS=(rate1k rate10k max tlsconn)
TAIL_SCENARIOS=(rate1k rate10k) # the mtls-tail set: short slices, many rounds
declare -A SCEN_ARGS=(
    [rate1k]="--rate 1000 -c 4"
    [rate10k]="--rate 10000 -c 64 --threads 2"
    [max]="--max -c 64 --threads 2"
    [bulk]="--bulk -c 4 --threads 2"
    [newconn]="--new-conn -c 16 --threads 2"
    [tlsconn]="--new-conn -c 16 --threads 2"
)
declare -A SCEN_PORT=([rate1k]=http [rate10k]=http [max]=http [bulk]=tcp [newconn]=http [tlsconn]=tls)
declare -A SCEN_SECS_QUICK=([rate1k]=2 [rate10k]=1 [max]=1 [bulk]=1 [newconn]=1 [tlsconn]=2)
declare -A SCEN_SECS_FULL=([rate1k]=10 [rate10k]=10 [max]=5 [bulk]=5 [newconn]=5 [tlsconn]=5)
declare -A SCEN_SECS_TAIL=([rate1k]=2 [rate10k]=1)
declare -A SCEN_WORK=([rate1k]=req [rate10k]=req [max]=req [bulk]=gb [newconn]=conn [tlsconn]=conn)
declare -A SCEN_RSS=([rate10k]=1)
declare -A SCEN_LABEL=(
    [rate1k]="1 KiB, 1,000 rps over 4 connections, open loop"
    [rate10k]="1 KiB, 10,000 rps over 64 connections, open loop"
    [max]="1 KiB, maximum throughput, closed loop, 64 connections"
    [bulk]="L4 bulk transfer (tcp_proxy / mode tcp / stream), 4 connections, 16 MiB GETs"
    [newconn]="1 KiB, a new connection per request, closed loop, 16 at a time"
    [tlsconn]="mTLS: a new connection (full TLS 1.3 handshake) per request to hop 2, closed loop, 16 at a time"
)
declare -A SCEN_ON=([bulk]=plain [newconn]=plain [tlsconn]=mtls)
# scen_runs_on SCENARIO SYSTEM
scen_runs_on() {
    case ${SCEN_ON[$1]:-all} in
    plain) ! sys_is_mtls "$2" ;;
    mtls) sys_is_mtls "$2" ;;
    *) true ;;
    esac
}
