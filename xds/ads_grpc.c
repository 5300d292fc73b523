/* The ADS client's gRPC binding: one StreamAggregatedResources or DeltaAggregatedResources call
 * on an xds_loop, kept open with exponential backoff and full jitter, and the initial-fetch
 * timer. The protocol itself is ads.c's. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "xds/ads_impl.h"
#include "xds/grpc.h"

#define SOTW_METHOD                                                                                \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define DELTA_METHOD                                                                               \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
#define SDS_METHOD "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
#define KEEPALIVE_MS 30000

static void start_stream(xds_ads *a);

uint64_t xds_ads_backoff_ms(unsigned attempt, uint64_t rnd)
{
    uint64_t ceil = attempt >= 16 ? BACKOFF_CAP_MS : (uint64_t)BACKOFF_BASE_MS << attempt;
    if (ceil > BACKOFF_CAP_MS) ceil = BACKOFF_CAP_MS;
    return rnd % (ceil + 1); /* full jitter: uniform in [0, ceil] */
}

static uint64_t next_random(xds_ads *a)
{
    /* xorshift64*: jitter only needs to decorrelate proxies, not to be unpredictable. */
    uint64_t x = a->rng ? a->rng : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    a->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void on_fetch_timer(xds_loop *loop, void *arg)
{
    (void)loop;
    xds_ads *a = arg;
    a->fetch_timer = NULL;
    a->fetch_timer_at = 0;
    xds_ads_on_timer(a);
    xds_ads_timer_changed(a);
}

void xds_ads_timer_changed(xds_ads *a)
{
    if (!a->loop) return;
    uint64_t next = xds_ads_next_deadline(a);
    if (next == a->fetch_timer_at) return;
    xds_loop_timer_cancel(a->loop, a->fetch_timer);
    a->fetch_timer = NULL;
    a->fetch_timer_at = next;
    if (!next) return;
    uint64_t now = a->cfg.now_ms ? a->cfg.now_ms() : xds_loop_now_ms();
    a->fetch_timer = xds_loop_timer(a->loop, next > now ? next - now : 0, on_fetch_timer, a);
}

static void on_retry_timer(xds_loop *loop, void *arg)
{
    (void)loop;
    xds_ads *a = arg;
    a->retry_timer = NULL;
    start_stream(a);
}

static void schedule_retry(xds_ads *a)
{
    uint64_t ms = xds_ads_backoff_ms(a->attempt, next_random(a));
    if (a->attempt < 64) a->attempt++;
    atomic_fetch_add_explicit(&a->stats.stream_reconnects, 1, memory_order_relaxed);
    a->retry_timer = xds_loop_timer(a->loop, ms, on_retry_timer, a);
}

static int send_msg(void *arg, const uint8_t *msg, size_t len)
{
    xds_ads *a = arg;
    return a->call ? xds_grpc_call_send(a->call, msg, len) : -EPIPE;
}

static void stream_ended(xds_ads *a)
{
    /* A stream that stayed up long enough to get a response resets the backoff (Envoy). */
    if (a->got_response) a->attempt = 0;
    xds_ads_stream_closed(a);
    xds_ads_timer_changed(a);
    schedule_retry(a);
}

static void on_message(xds_grpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    xds_ads *a = user;
    if (xds_ads_on_message(a, msg, len) == 0) return;
    /* Undecodable response: reset the stream, keep serving, reconnect. */
    xds_ads_warn("xds: malformed response from %s (%zu bytes); resetting stream", a->cfg.target,
                 len);
    xds_grpc_call_cancel(call);
    a->call = NULL;
    stream_ended(a);
}

static void on_close(xds_grpc_call *call, int status, const char *message, void *user)
{
    (void)call;
    xds_ads *a = user;
    a->call = NULL;
    /* a response over the size limit (or malformed framing) ends the call in the gRPC layer,
     * before the client sees it: count it as the malformed response it is */
    if (status == XDS_GRPC_RESOURCE_EXHAUSTED || status == XDS_GRPC_INTERNAL)
        atomic_fetch_add_explicit(&a->stats.rx_malformed, 1, memory_order_relaxed);
    xds_ads_warn("xds: stream to %s closed: %s %s", a->cfg.target, xds_grpc_status_name(status),
                 message ? message : "");
    stream_ended(a);
}

static void on_headers(xds_grpc_call *call, const struct xds_grpc_md *md, size_t n, void *user)
{
    (void)call, (void)md, (void)n;
    xds_ads_stream_up(user);
}

/* Envoy counts the stream as connected once it is established, not when the server first
 * answers: a resumed delta stream may get nothing for a long time. */
static void on_ready(xds_grpc_call *call, void *user)
{
    (void)call;
    xds_ads_stream_up(user);
}

static const struct xds_grpc_call_cbs call_cbs = {
    .on_headers = on_headers,
    .on_ready = on_ready,
    .on_message = on_message,
    .on_close = on_close,
};

static void start_stream(xds_ads *a)
{
    const char *method = a->cfg.sds_only ? SDS_METHOD : a->cfg.delta ? DELTA_METHOD : SOTW_METHOD;
    a->call = xds_grpc_call_start(a->grpc, method, NULL, 0, &call_cbs, a);
    if (!a->call) {
        schedule_retry(a);
        return;
    }
    xds_ads_stream_open(a, send_msg, a);
    xds_ads_timer_changed(a);
}

int xds_ads_start(xds_ads *a, xds_loop *loop)
{
    struct xds_grpc_client_opts o = {
        .target = a->cfg.target,
        .token_file = a->cfg.token_file[0] ? a->cfg.token_file : NULL,
        .max_recv_msg = a->cfg.max_msg,
        .keepalive_ms = KEEPALIVE_MS,
    };
    a->loop = loop;
    a->grpc = xds_grpc_client_new(loop, &o);
    if (!a->grpc) {
        a->loop = NULL;
        return -EINVAL;
    }
    start_stream(a);
    return 0;
}

void xds_ads_stop(xds_ads *a)
{
    if (!a->loop) return;
    xds_loop_timer_cancel(a->loop, a->retry_timer);
    xds_loop_timer_cancel(a->loop, a->fetch_timer);
    a->retry_timer = a->fetch_timer = NULL;
    a->fetch_timer_at = 0;
    if (a->call) xds_grpc_call_cancel(a->call);
    a->call = NULL;
    xds_ads_stream_closed(a);
    xds_grpc_client_free(a->grpc);
    a->grpc = NULL;
    a->loop = NULL;
}
