/* envoy.filters.network.http_connection_manager for HTTP/1.1: a downstream session parses
 * requests, routes each through the compiled route table, and proxies it to a pooled keep-alive
 * upstream connection; the response streams back. Bodies move as ring-buffer references (chunked
 * framing is re-encoded around them), and each direction stops reading while the other side's
 * queue is over the buffer limit.
 *
 * One request is in flight per downstream connection: after a request the parser pauses, so a
 * pipelined request waits (its bytes held by reference) until the response before it is done.
 * Objects are never freed inside their own callbacks: sessions and upstream connections are
 * marked dead and freed after the batch (rs_worker_defer_free). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sidecar/authz.h"
#include "sidecar/blk.h"
#include "sidecar/headers.h"
#include "sidecar/http1.h"
#include "sidecar/log.h"
#include "sidecar/path.h"
#include "sidecar/router.h"
#include "sidecar/server.h"
#include "sidecar/tls.h"

struct rs_upstream {
    struct rs_upstream *next; /* idle list */
    struct rs_worker *w;
    struct rs_conn *c;
    struct rs_cluster *cluster;
    struct rs_endpoint host;
    struct rs_host_ref href; /* its host in the cluster's host set, for /clusters counters */
    struct stream *st;       /* the stream using it; NULL while idle */
    struct rs_h1_parser parser;
    struct rs_timer idle; /* lazy: armed while pooled, checks idle_since_ms when it fires */
    uint64_t idle_since_ms;
    uint32_t requests;
    uint64_t alpn_hash; /* the ALPN names its TLS handshake offered (istio.alpn), 0: none */
    bool connected, dead, reusable, in_pool;
};

struct str_ref {
    uint32_t off, len; /* into the stream's arena; len 0 = absent */
};

struct stream {
    struct hsess *s;
    struct rs_upstream *up;
    const struct rs_route *route;
    const struct rs_route_cluster *rc;
    struct rs_cluster *cluster;
    struct rs_snapshot *snap; /* set when the session moved to a newer snapshot mid-stream: the
                                 route and cluster above belong to this one */
    uint64_t start_us, start_mono_us, start_ms, upstream_start_us;
    uint64_t timeout_ms, idle_timeout_ms, last_active_ms;
    uint64_t route_deadline_ms; /* the route timeout, from the end of the request; 0 = none */
    struct rs_timer rq_timer;   /* request_timeout: the whole request must arrive in time */
    int status;
    uint32_t flags;
    bool host_open; /* counted in the host's rq_active, not yet in a result counter */
    bool counted_upstream, req_complete, resp_started, resp_complete, head_request, req_chunked,
        rechunk, in_1xx, http10;
    uint64_t req_body, resp_body;
    char *arena;
    uint32_t arena_len, arena_cap;
    struct str_ref method, path, orig_path, authority, ua, xff, rid, ust;
    /* the request headers its connection manager's logs name (cfg->log_hdrs, same order) */
    const char *const *log_names;
    uint32_t nlog;
    struct str_ref logh[RS_HCM_LOG_HDRS_MAX];
    const char *details;
};

struct pend {
    int32_t bid;
    const char *p;
    uint32_t len;
};

struct hsess {
    struct rs_session link;
    struct rs_worker *w;
    struct rs_filter_chain *fc;
    const struct rs_hcm_cfg *cfg;
    struct rs_conn *down;
    struct rs_h1_parser parser;
    struct stream *st;
    struct pend *pend;
    uint32_t npend, pend_cap;
    uint64_t pend_bytes;
    int32_t cur_bid; /* the buffer being parsed, for zero-copy body forwarding */
    bool paused, closing, dead, down_eof;
    bool idle_wait; /* between requests since idle_since_ms (the idle timeout runs) */
    struct rs_timer idle, hdr_timer, max_duration;
    /* The stream's idle and route deadlines (stream_idle_timeout, route timeout) are lazy timers
     * of the session: they stay armed from one request to the next and check the stream's
     * deadlines when they fire. */
    struct rs_timer st_idle, st_route;
    uint64_t start_ms, idle_since_ms;
    struct sockaddr_storage peer, local;
    char peer_ip[48];
    char peer_str[56], local_str[56]; /* "ip:port", for %DOWNSTREAM_*_ADDRESS% */
    bool peer_internal;
    bool redirected; /* local is the original destination (SO_ORIGINAL_DST) */
};

static const struct rs_conn_handler down_handler, up_handler;

static void snapshot_unref_cb(void *p)
{
    rs_snapshot_unref(p);
}
static const struct rs_h1_callbacks req_cb, resp_cb;

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- small helpers ------------------------------------------------------------------------- */

static struct str_ref arena_add(struct stream *st, const char *p, size_t n)
{
    struct str_ref r = {0, 0};
    if (!p || n == 0 || n > 8192) return r;
    if (st->arena_len + n > st->arena_cap) {
        uint32_t cap = st->arena_cap ? st->arena_cap * 2 : 512;
        while (cap < st->arena_len + n) cap *= 2;
        char *np = realloc(st->arena, cap);
        if (!np) return r;
        st->arena = np;
        st->arena_cap = cap;
    }
    memcpy(st->arena + st->arena_len, p, n);
    r.off = st->arena_len;
    r.len = (uint32_t)n;
    st->arena_len += (uint32_t)n;
    return r;
}

/* Streams are recycled through a small per-worker cache, with their arena: a keep-alive
 * connection opens one per request. Idle connections hold none. */
#define STREAM_CACHE 32
#define ARENA_KEEP 512

static __thread struct stream *stream_cache[STREAM_CACHE];
static __thread uint32_t nstream_cache;

static struct stream *stream_get(void)
{
    if (!nstream_cache) return calloc(1, sizeof(struct stream));
    struct stream *st = stream_cache[--nstream_cache];
    char *arena = st->arena;
    uint32_t cap = st->arena_cap;
    memset(st, 0, sizeof *st);
    st->arena = arena;
    st->arena_cap = cap;
    return st;
}

static void stream_put(struct stream *st)
{
    if (nstream_cache == STREAM_CACHE || st->arena_cap > ARENA_KEEP) {
        free(st->arena);
        free(st);
        return;
    }
    stream_cache[nstream_cache++] = st;
}

/* ---- stream end, access log, stats --------------------------------------------------------- */

static const char *log_header(void *ctx, const char *name, size_t *len)
{
    struct stream *st = ctx;
    struct str_ref r = {0, 0};
    if (strcmp(name, ":method") == 0)
        r = st->method;
    else if (strcmp(name, ":path") == 0)
        r = st->path;
    else if (strcmp(name, ":authority") == 0 || strcmp(name, "host") == 0)
        r = st->authority;
    else if (strcmp(name, "user-agent") == 0)
        r = st->ua;
    else if (strcmp(name, "x-forwarded-for") == 0)
        r = st->xff;
    else if (strcmp(name, "x-request-id") == 0)
        r = st->rid;
    else if (strcmp(name, "x-envoy-original-path") == 0)
        r = st->orig_path;
    else if (strcmp(name, ":scheme") == 0) {
        bool tls = st->s->down && rs_tls_is_tls(st->s->down);
        *len = tls ? 5 : 4;
        return tls ? "https" : "http";
    } else {
        for (uint32_t i = 0; i < st->nlog; i++)
            if (strcmp(name, st->log_names[i]) == 0) r = st->logh[i];
    }
    if (!r.len) return NULL;
    *len = r.len;
    return st->arena + r.off;
}

static const char *log_resp_header(void *ctx, const char *name, size_t *len)
{
    struct stream *st = ctx;
    if (strcmp(name, "x-envoy-upstream-service-time") != 0 || !st->ust.len) return NULL;
    *len = st->ust.len;
    return st->arena + st->ust.off;
}

static void count_status(struct rs_stats_shard *sh, int code, rs_stat_id c1, rs_stat_id c2,
                         rs_stat_id c3, rs_stat_id c4, rs_stat_id c5)
{
    switch (code / 100) {
    case 1:
        rs_stat_inc(sh, c1);
        break;
    case 2:
        rs_stat_inc(sh, c2);
        break;
    case 3:
        rs_stat_inc(sh, c3);
        break;
    case 4:
        rs_stat_inc(sh, c4);
        break;
    default:
        rs_stat_inc(sh, c5);
        break;
    }
}

static void up_release(struct rs_upstream *u, bool reuse);

/* Closes the request's account on its upstream host: rq_active down, one result counter up. */
static void host_rq_done(struct stream *st, enum rs_host_stat result)
{
    if (!st->host_open || !st->up) return;
    st->host_open = false;
    int shard = st->s->w->id + 1;
    rs_host_stat_add(&st->up->href, shard, RS_HS_RQ_ACTIVE, -1);
    rs_host_stat_add(&st->up->href, shard, result, 1);
}

/* Ends the stream: stats, access log, upstream connection back to the pool or closed. */
static void stream_end(struct stream *st)
{
    struct hsess *s = st->s;
    struct rs_worker *w = s->w;
    struct rs_stats_shard *sh = w->stats;
    const struct rs_hcm_stats *hs = &s->cfg->st;
    rs_timer_cancel(&w->loop, &st->rq_timer);
    uint64_t now_us = rs_now_us();
    uint64_t dur_us = now_us - st->start_mono_us;
    rs_stat_dec(sh, hs->downstream_rq_active);
    if (st->status) { /* as Envoy: a stream reset before any response is neither completed nor
                       * counted in a status class (downstream_rq_rx_reset counts it) */
        rs_stat_inc(sh, hs->downstream_rq_completed);
        count_status(sh, st->status, hs->downstream_rq_1xx, hs->downstream_rq_2xx,
                     hs->downstream_rq_3xx, hs->downstream_rq_4xx, hs->downstream_rq_5xx);
    }
    rs_hist_record(sh, hs->downstream_rq_time, dur_us);
    if (st->counted_upstream) {
        const struct rs_cluster_stats *cs = &st->cluster->st;
        rs_stat_dec(sh, cs->upstream_rq_active);
        if (st->resp_started) {
            rs_stat_inc(sh, cs->upstream_rq_completed);
            count_status(sh, st->status, cs->upstream_rq_1xx, cs->upstream_rq_2xx,
                         cs->upstream_rq_3xx, cs->upstream_rq_4xx, cs->upstream_rq_5xx);
            rs_hist_record(sh, cs->upstream_rq_time, now_us - st->upstream_start_us);
        }
        __atomic_sub_fetch(&st->cluster->active_rq, 1, __ATOMIC_RELAXED);
    }
    if (s->cfg->nlogs) {
        struct rs_access_info info = {
            .start_time_us = (int64_t)st->start_us,
            .duration_us = (int64_t)dur_us,
            .request_duration_us = -1,
            .response_duration_us = -1,
            .response_code = (uint32_t)st->status,
            .response_flags = st->flags,
            .upstream_request_attempt_count = st->up || st->counted_upstream ? 1 : 0,
            .bytes_received = st->req_body,
            .bytes_sent = st->resp_body,
            .connection_id = s->down ? s->down->id : 0,
            .has_connection_id = true,
            .downstream_remote = (struct sockaddr *)&s->peer,
            .downstream_local = (struct sockaddr *)&s->local,
            .protocol = {st->http10 ? "HTTP/1.0" : "HTTP/1.1", 8},
            .upstream_cluster = {st->cluster ? st->cluster->name : NULL,
                                 st->cluster ? strlen(st->cluster->name) : 0},
            .response_code_details = {st->details, st->details ? strlen(st->details) : 0},
            .route_name = {st->route && st->route->name ? st->route->name : NULL,
                           st->route && st->route->name ? strlen(st->route->name) : 0},
            .req_header = log_header,
            .resp_header = log_resp_header,
            .header_ctx = st,
        };
        rs_access_info_tls(&info, s->down);
        if (st->counted_upstream && st->up) {
            info.upstream_host.ptr = st->up->host.name;
            info.upstream_host.len = strlen(st->up->host.name);
        }
        rs_worker_access_log(w, s->link.snap, s->cfg->logs, s->cfg->nlogs, &info);
    }
    host_rq_done(st, st->resp_started && st->status < 500 ? RS_HS_RQ_SUCCESS : RS_HS_RQ_ERROR);
    if (st->up) {
        struct rs_upstream *u = st->up;
        u->st = NULL;
        st->up = NULL;
        up_release(u, u->reusable && st->req_complete && st->resp_complete);
    }
    s->st = NULL;
    if (st->snap) rs_worker_defer_free(w, snapshot_unref_cb, st->snap);
    stream_put(st);
}

/* ---- sessions ------------------------------------------------------------------------------ */

static void sess_free(void *p)
{
    struct hsess *s = p;
    rs_h1_free(&s->parser);
    free(s->pend);
    free(s);
}

static void sess_destroy(struct hsess *s, bool local)
{
    if (s->dead) return;
    s->dead = true;
    struct rs_worker *w = s->w;
    struct rs_stats_shard *sh = w->stats;
    if (s->st) {
        if (!s->st->resp_complete) s->st->flags |= local ? 0 : RS_RF_DC;
        if (!s->st->status) s->st->status = 0;
        if (s->st->up) s->st->up->reusable = false;
        stream_end(s->st);
    }
    for (uint32_t i = 0; i < s->npend; i++)
        if (s->pend[i].bid >= 0) rs_buf_unref(&w->loop, (uint32_t)s->pend[i].bid);
    s->npend = 0;
    rs_timer_cancel(&w->loop, &s->idle);
    rs_timer_cancel(&w->loop, &s->hdr_timer);
    rs_timer_cancel(&w->loop, &s->max_duration);
    rs_timer_cancel(&w->loop, &s->st_idle);
    rs_timer_cancel(&w->loop, &s->st_route);
    const struct rs_hcm_stats *hs = &s->cfg->st;
    rs_stat_dec(sh, hs->downstream_cx_active);
    rs_stat_inc(sh, hs->downstream_cx_destroy);
    rs_stat_inc(sh, local ? hs->downstream_cx_destroy_local : hs->downstream_cx_destroy_remote);
    rs_hist_record(sh, hs->downstream_cx_length_ms, (w->loop.now_ms - s->start_ms) * 1000);
    if (s->down) {
        if (local)
            rs_conn_close_after_flush(s->down);
        else
            rs_conn_close(s->down);
        s->down = NULL;
    }
    rs_worker_downstream_closed(w, &s->link, s->start_ms);
    rs_worker_session_del(w, &s->link);
    rs_worker_defer_free(w, sess_free, s);
}

static void on_route_timeout(struct rs_loop *loop, struct rs_timer *t);
static void on_stream_idle(struct rs_loop *loop, struct rs_timer *t);
static void on_request_timeout(struct rs_loop *loop, struct rs_timer *t);

/* Starts the session's stream and counts the request. */
static struct stream *stream_open(struct hsess *s)
{
    struct rs_worker *w = s->w;
    struct stream *st = stream_get();
    if (!st) return NULL;
    st->s = s;
    st->start_us = wall_us();
    st->start_mono_us = rs_now_us();
    st->start_ms = w->loop.now_ms;
    st->rq_timer.cb = on_request_timeout;
    st->last_active_ms = w->loop.now_ms;
    st->idle_timeout_ms = s->cfg->stream_idle_timeout_ms;
    if (st->idle_timeout_ms) rs_timer_arm_by(&w->loop, &s->st_idle, st->idle_timeout_ms);
    if (s->cfg->request_timeout_ms)
        rs_timer_arm(&w->loop, &st->rq_timer, s->cfg->request_timeout_ms);
    s->st = st;
    rs_stat_inc(w->stats, s->cfg->st.downstream_rq_total);
    rs_stat_inc(w->stats, s->cfg->st.downstream_rq_http1_total);
    rs_stat_inc(w->stats, s->cfg->st.downstream_rq_active);
    return st;
}

/* Writes a locally generated response (Envoy's local reply: text/plain body, and the connection
 * closes after it when the request was not read to its end). */
static void local_reply_at(struct hsess *s, int code, uint32_t flags, const char *body,
                           const char *details, const char *location, size_t location_len);

static void local_reply(struct hsess *s, int code, uint32_t flags, const char *body,
                        const char *details)
{
    local_reply_at(s, code, flags, body, details, NULL, 0);
}

/* As local_reply, with a Location header (redirects). */
static void local_reply_at(struct hsess *s, int code, uint32_t flags, const char *body,
                           const char *details, const char *location, size_t location_len)
{
    /* A reply before the request head was complete (codec error, header timeout) still ends a
     * request: Envoy opens the stream at the message's first byte, so such requests are counted
     * in downstream_rq_<code> and written to the access log like any other. */
    struct stream *st = s->st ? s->st : stream_open(s);
    if (st && st->resp_started) {
        /* the response head already went out: all we can do is reset */
        st->flags |= flags;
        sess_destroy(s, true);
        return;
    }
    if (!st || !st->req_complete) s->closing = true;
    struct rs_obuf b = {0};
    char line[64], num[20];
    rs_obuf_put(&b, line, rs_h1_status_line(line, sizeof line, code, st && st->http10));
    size_t blen = body ? strlen(body) : 0;
    rs_obuf_hdr(&b, "content-length", 14, num, rs_h1_u64(num, blen));
    if (blen) rs_obuf_hdr(&b, "content-type", 12, "text/plain", 10);
    rs_obuf_hdr(&b, "date", 4, s->w->date, s->w->date_len);
    rs_obuf_hdr(&b, "server", 6, s->cfg->server_name, strlen(s->cfg->server_name));
    if (location) rs_obuf_hdr(&b, "location", 8, location, location_len);
    if (s->closing) rs_obuf_hdr(&b, "connection", 10, "close", 5);
    rs_obuf_put(&b, "\r\n", 2);
    rs_obuf_put(&b, body, blen);
    if (rs_obuf_send(&b, s->down) != 0) {
        sess_destroy(s, true);
        return;
    }
    if (st) {
        st->status = code;
        st->flags |= flags;
        st->details = details;
        st->resp_started = st->resp_complete = true;
        st->resp_body = blen;
        if (st->up) st->up->reusable = false;
        stream_end(st);
    }
}

/* The connection is idle from now: the idle timeout (lazy: bytes arriving only clear idle_wait).
 */
static void arm_idle(struct hsess *s)
{
    if (!s->cfg->idle_timeout_ms) return;
    s->idle_wait = true;
    s->idle_since_ms = s->w->loop.now_ms;
    rs_timer_arm_by(&s->w->loop, &s->idle, s->cfg->idle_timeout_ms);
}

static void update_down_read(struct hsess *s)
{
    if (s->dead || !s->down || s->down_eof) return;
    bool full = s->pend_bytes > s->link.l->per_connection_buffer_limit ||
                (s->st && s->st->up &&
                 rs_conn_queued(s->st->up->c) > s->link.l->per_connection_buffer_limit);
    if (full)
        rs_conn_read_stop(s->down);
    else
        rs_conn_read_start(s->down);
}

static void parse_error(struct hsess *s, enum rs_h1_status err);

static bool pend_push(struct hsess *s, int32_t bid, const char *p, size_t len)
{
    if (s->npend == s->pend_cap) {
        uint32_t cap = s->pend_cap ? s->pend_cap * 2 : 4;
        struct pend *np = realloc(s->pend, cap * sizeof *np);
        if (!np) return false;
        s->pend = np;
        s->pend_cap = cap;
    }
    if (bid >= 0)
        rs_buf_ref(&s->w->loop, (uint32_t)bid);
    else {
        char *copy = malloc(len);
        if (!copy) return false;
        memcpy(copy, p, len);
        p = copy; /* transports without ring buffers (none yet) */
    }
    s->pend[s->npend++] = (struct pend){bid, p, (uint32_t)len};
    s->pend_bytes += len;
    return true;
}

/* Parses bytes; returns the number consumed (the rest must be kept for later). */
static size_t parse(struct hsess *s, int32_t bid, const char *data, size_t len)
{
    if (!s->st && !rs_timer_armed(&s->hdr_timer) && s->cfg->request_headers_timeout_ms)
        rs_timer_arm(&s->w->loop, &s->hdr_timer, s->cfg->request_headers_timeout_ms);
    s->idle_wait = false;
    s->cur_bid = bid;
    size_t consumed = 0;
    enum rs_h1_status r = rs_h1_execute(&s->parser, data, len, &consumed);
    s->cur_bid = -1;
    if (s->dead) return len;
    if (r == RS_H1_PAUSED) {
        s->paused = true;
        return consumed;
    }
    if (r != RS_H1_OK) {
        parse_error(s, r);
        return len;
    }
    return len;
}

/* After a response: resume parsing held bytes (pipelined requests), or close. */
static void pump(struct hsess *s)
{
    if (s->dead || s->st) return;
    if (s->closing) {
        sess_destroy(s, true);
        return;
    }
    if (s->paused) {
        s->paused = false;
        rs_h1_resume(&s->parser);
        uint32_t i = 0;
        for (; i < s->npend && !s->dead; i++) {
            struct pend *p = &s->pend[i];
            size_t used = parse(s, p->bid, p->p, p->len);
            if (s->dead) return;
            s->pend_bytes -= used;
            if (used < p->len) {
                p->p += used;
                p->len -= (uint32_t)used;
                break;
            }
            if (p->bid >= 0)
                rs_buf_unref(&s->w->loop, (uint32_t)p->bid);
            else
                free((void *)p->p);
        }
        if (i) { /* s->pend is NULL until the first push: NULL + 0 is still undefined */
            memmove(s->pend, s->pend + i, (s->npend - i) * sizeof *s->pend);
            s->npend -= i;
        }
    }
    if (s->dead) return;
    if (!s->st && !s->paused) {
        if (s->down_eof) {
            sess_destroy(s, false);
            return;
        }
        rs_h1_trim(&s->parser);
        arm_idle(s);
    }
    update_down_read(s);
}

static void parse_error(struct hsess *s, enum rs_h1_status err)
{
    const struct rs_hcm_stats *hs = &s->cfg->st;
    rs_stat_inc(s->w->stats, hs->downstream_cx_protocol_error);
    rs_debug("http %s: bad request from %s: %s", s->cfg->stat_prefix, s->peer_ip,
             rs_h1_reason(&s->parser));
    s->closing = true;
    if (s->st && s->st->up) s->st->up->reusable = false;
    switch (err) {
    case RS_H1_ERR_HEADERS_TOO_LARGE:
        rs_stat_inc(s->w->stats, hs->rq_header_too_large);
        local_reply(s, 431, RS_RF_DPE, "Request Header Fields Too Large", "codec_error");
        break;
    case RS_H1_ERR_BODY_TOO_LARGE:
        rs_stat_inc(s->w->stats, hs->downstream_rq_too_large);
        local_reply(s, 413, 0, "Payload Too Large", "request_payload_too_large");
        break;
    case RS_H1_ERR_NO_MEMORY:
        sess_destroy(s, true);
        return;
    default:
        local_reply(s, 400, RS_RF_DPE, "Bad Request", "codec_error");
    }
    if (!s->dead && !s->st) sess_destroy(s, true);
}

/* ---- downstream connection events ---------------------------------------------------------- */

static void down_data(struct rs_conn *c, int32_t bid, const char *data, size_t len)
{
    struct hsess *s = c->owner;
    if (s->paused || s->npend) {
        if (!pend_push(s, bid, data, len))
            sess_destroy(s, true);
        else
            update_down_read(s);
        return;
    }
    size_t used = parse(s, bid, data, len);
    if (!s->dead && used < len && !pend_push(s, bid, data + used, len - used))
        sess_destroy(s, true);
    if (!s->dead) pump(s);
}

static void down_eof(struct rs_conn *c)
{
    struct hsess *s = c->owner;
    s->down_eof = true;
    if (!s->st && !s->paused) {
        if (!s->dead) {
            enum rs_h1_status r = rs_h1_finish(&s->parser);
            (void)r; /* a truncated request at close is just a closed connection */
        }
        sess_destroy(s, false);
        return;
    }
    if (s->st && !s->st->req_complete) {
        /* the client went away in the middle of its request: a downstream reset */
        s->st->flags |= RS_RF_DC;
        rs_stat_inc(s->w->stats, s->cfg->st.downstream_rq_rx_reset);
        sess_destroy(s, false);
        return;
    }
    /* the client half-closed after its request: answer it, then close */
    s->closing = true;
}

static void down_error(struct rs_conn *c, int err)
{
    (void)err;
    sess_destroy(c->owner, false);
}

static void down_drained(struct rs_conn *c)
{
    struct hsess *s = c->owner;
    if (s->st && s->st->up && !s->st->up->dead) rs_conn_read_start(s->st->up->c);
}

static void on_idle_timeout(struct rs_loop *loop, struct rs_timer *t)
{
    struct hsess *s = (struct hsess *)((char *)t - offsetof(struct hsess, idle));
    if (s->st || !s->idle_wait) return; /* busy: arm_idle arms it again */
    uint64_t idle = loop->now_ms - s->idle_since_ms;
    if (idle < s->cfg->idle_timeout_ms) {
        rs_timer_arm(loop, t, s->cfg->idle_timeout_ms - idle);
        return;
    }
    rs_stat_inc(s->w->stats, s->cfg->st.downstream_cx_idle_timeout);
    sess_destroy(s, true);
}

/* common_http_protocol_options.max_connection_duration: drain the connection (close it after
 * the request in flight, or now when idle). */
static void on_max_duration(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    struct hsess *s = (struct hsess *)((char *)t - offsetof(struct hsess, max_duration));
    rs_stat_inc(s->w->stats, s->cfg->st.downstream_cx_max_duration_reached);
    s->closing = true;
    if (!s->st) sess_destroy(s, true);
}

static void on_header_timeout(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    struct hsess *s = (struct hsess *)((char *)t - offsetof(struct hsess, hdr_timer));
    if (s->st) return;
    rs_stat_inc(s->w->stats, s->cfg->st.downstream_rq_header_timeout);
    s->closing = true;
    local_reply(s, 408, 0, "request header timeout", "request_header_timeout");
    if (!s->dead) sess_destroy(s, true);
}

/* ---- upstream connections ------------------------------------------------------------------ */

static void up_free(void *p)
{
    struct rs_upstream *u = p;
    rs_host_ref_release(&u->href);
    rs_h1_free(&u->parser);
    rs_cluster_unref(u->cluster);
    free(u);
}

static void up_destroy(struct rs_upstream *u)
{
    if (u->dead) return;
    u->dead = true;
    struct rs_worker *w = u->w;
    struct rs_stats_shard *sh = w->stats;
    const struct rs_cluster_stats *cs = &u->cluster->st;
    if (u->in_pool) {
        struct rs_worker_cluster *wc = rs_worker_cluster(w, u->cluster);
        for (struct rs_upstream **pp = &wc->idle; *pp; pp = &(*pp)->next)
            if (*pp == u) {
                *pp = u->next;
                wc->nidle--;
                break;
            }
        u->in_pool = false;
    }
    rs_timer_cancel(&w->loop, &u->idle);
    if (u->connected) {
        rs_host_stat_add(&u->href, w->id + 1, RS_HS_CX_ACTIVE, -1);
        rs_stat_dec(sh, cs->upstream_cx_active);
        rs_stat_inc(sh, cs->upstream_cx_destroy);
    }
    __atomic_sub_fetch(&u->cluster->active_cx, 1, __ATOMIC_RELAXED);
    rs_conn_close(u->c);
    rs_worker_defer_free(w, up_free, u);
}

static void on_up_idle(struct rs_loop *loop, struct rs_timer *t)
{
    struct rs_upstream *u = (struct rs_upstream *)((char *)t - offsetof(struct rs_upstream, idle));
    if (!u->in_pool) return; /* in use: up_release arms it again */
    uint64_t idle = loop->now_ms - u->idle_since_ms;
    if (idle < u->cluster->idle_timeout_ms) {
        rs_timer_arm(loop, t, u->cluster->idle_timeout_ms - idle);
        return;
    }
    rs_stat_inc(u->w->stats, u->cluster->st.upstream_cx_idle_timeout);
    up_destroy(u);
}

static void up_release(struct rs_upstream *u, bool reuse)
{
    if (u->dead) return;
    uint32_t maxrq = u->cluster->max_requests_per_cx;
    if (!reuse || (maxrq && u->requests >= maxrq) || u->w->draining ||
        __atomic_load_n(&u->cluster->removed, __ATOMIC_ACQUIRE)) {
        up_destroy(u);
        return;
    }
    rs_h1_reset(&u->parser);
    rs_h1_trim(&u->parser);
    struct rs_worker_cluster *wc = rs_worker_cluster(u->w, u->cluster);
    u->next = wc->idle;
    wc->idle = u;
    wc->nidle++;
    u->in_pool = true;
    rs_conn_read_start(u->c); /* notice the server closing an idle connection */
    u->idle_since_ms = u->w->loop.now_ms;
    if (u->cluster->idle_timeout_ms)
        rs_timer_arm_by(&u->w->loop, &u->idle, u->cluster->idle_timeout_ms);
}

void rs_hcm_pool_close(struct rs_worker *w, struct rs_cluster *c)
{
    struct rs_worker_cluster *wc = rs_worker_cluster(w, c);
    while (wc->idle) up_destroy(wc->idle);
}

/* Fails the stream bound to an upstream that broke before or during the response. */
static void up_failed(struct rs_upstream *u, uint32_t flag, const char *reason)
{
    struct stream *st = u->st;
    if (st) host_rq_done(st, RS_HS_RQ_ERROR);
    up_destroy(u);
    if (!st) return;
    struct hsess *s = st->s;
    st->up = NULL;
    if (st->resp_started) {
        st->flags |= flag;
        sess_destroy(s, true);
        return;
    }
    char body[160];
    snprintf(body, sizeof body,
             "upstream connect error or disconnect/reset before headers. reset reason: %s", reason);
    local_reply(s, 503, flag, body, "upstream_reset_before_response_started");
    pump(s);
}

static void up_data(struct rs_conn *c, int32_t bid, const char *data, size_t len)
{
    struct rs_upstream *u = c->owner;
    if (!u->st) {
        /* bytes on an idle connection: the server broke protocol; never reuse it */
        rs_stat_inc(u->w->stats, u->cluster->st.upstream_cx_protocol_error);
        up_destroy(u);
        return;
    }
    struct hsess *s = u->st->s;
    s->cur_bid = bid;
    size_t consumed = 0;
    enum rs_h1_status r = rs_h1_execute(&u->parser, data, len, &consumed);
    s->cur_bid = -1;
    if (u->dead) {
        if (!s->dead) pump(s);
        return;
    }
    if (r == RS_H1_PAUSED) {
        if (consumed < len) u->reusable = false; /* bytes after the response: protocol error */
        if (u->st && u->st->resp_complete) stream_end(u->st);
    } else if (r != RS_H1_OK) {
        rs_stat_inc(u->w->stats, u->cluster->st.upstream_cx_protocol_error);
        up_failed(u, RS_RF_UPE, "protocol error");
        return;
    }
    if (!s->dead) pump(s);
}

static void up_eof(struct rs_conn *c)
{
    struct rs_upstream *u = c->owner;
    if (!u->st) {
        up_destroy(u);
        return;
    }
    struct hsess *s = u->st->s;
    u->reusable = false;
    if (u->st->resp_started && rs_h1_finish(&u->parser) == RS_H1_OK && u->st->resp_complete) {
        stream_end(u->st);
        if (!s->dead) pump(s);
        return; /* a body delimited by close ended */
    }
    rs_stat_inc(u->w->stats, u->cluster->st.upstream_cx_destroy_remote);
    up_failed(u, RS_RF_UC, "connection termination");
}

static void up_error(struct rs_conn *c, int err)
{
    struct rs_upstream *u = c->owner;
    if (rs_tls_is_tls(c) && !rs_tls_handshake_done(c)) {
        /* Envoy raises Connected only after the TLS handshake: a failed one is a failed
         * connect (UF), with the transport's reason */
        rs_stat_inc(u->w->stats, u->cluster->st.upstream_cx_connect_fail);
        rs_host_stat_add(&u->href, u->w->id + 1, RS_HS_CX_CONNECT_FAIL, 1);
        if (err == -ETIMEDOUT) rs_stat_inc(u->w->stats, u->cluster->st.upstream_cx_connect_timeout);
        rs_debug("cluster %s: TLS handshake with %s failed: %s", u->cluster->name, u->host.name,
                 strerror(-err));
        up_failed(u, RS_RF_UF,
                  err == -EACCES ? "connection failure, transport failure reason: TLS_error: "
                                   "CERTIFICATE_VERIFY_FAILED"
                  : err == -ETIMEDOUT
                      ? "connection failure, transport failure reason: TLS handshake timeout"
                      : "connection failure, transport failure reason: TLS_error");
        return;
    }
    rs_stat_inc(u->w->stats, u->cluster->st.upstream_rq_rx_reset);
    up_failed(u, RS_RF_UC, "connection termination");
}

static void up_drained(struct rs_conn *c)
{
    struct rs_upstream *u = c->owner;
    if (u->st && !u->st->s->dead) update_down_read(u->st->s);
}

static void up_connected(struct rs_conn *c, int err)
{
    struct rs_upstream *u = c->owner;
    struct rs_stats_shard *sh = u->w->stats;
    const struct rs_cluster_stats *cs = &u->cluster->st;
    if (err) {
        rs_stat_inc(sh, cs->upstream_cx_connect_fail);
        rs_host_stat_add(&u->href, u->w->id + 1, RS_HS_CX_CONNECT_FAIL, 1);
        if (err == -ETIMEDOUT) rs_stat_inc(sh, cs->upstream_cx_connect_timeout);
        rs_debug("cluster %s: connect to %s failed: %s", u->cluster->name, u->host.name,
                 strerror(-err));
        up_failed(u, RS_RF_UF, err == -ETIMEDOUT ? "connection timeout" : "connection failure");
        return;
    }
    u->connected = true;
    rs_host_stat_add(&u->href, u->w->id + 1, RS_HS_CX_ACTIVE, 1);
    rs_stat_inc(sh, cs->upstream_cx_active);
    if (u->st)
        rs_hist_record(sh, cs->upstream_cx_connect_ms, rs_now_us() - u->st->upstream_start_us);
    rs_conn_read_start(c);
}

/* A pooled connection to this host, or a new one. */
static struct rs_upstream *up_acquire(struct hsess *s, struct rs_cluster *cl,
                                      const struct rs_endpoint *ep, const struct rs_host_ref *href)
{
    struct rs_worker *w = s->w;
    struct rs_worker_cluster *wc = rs_worker_cluster(w, cl);
    for (struct rs_upstream **pp = &wc->idle; *pp; pp = &(*pp)->next) {
        struct rs_upstream *u = *pp;
        /* Envoy keys pools by transport socket options too: a connection whose handshake
         * offered other ALPN names may have reached another chain of the server */
        if (u->host.addrlen == ep->addrlen && memcmp(&u->host.addr, &ep->addr, ep->addrlen) == 0 &&
            u->alpn_hash == s->cfg->upstream_alpn_hash) {
            *pp = u->next;
            wc->nidle--;
            u->in_pool = false;
            u->next = NULL;
            return u;
        }
    }
    if (__atomic_load_n(&cl->active_cx, __ATOMIC_RELAXED) >= cl->max_connections) {
        rs_stat_inc(w->stats, cl->st.upstream_cx_overflow);
        return NULL;
    }
    int fd = rs_upstream_socket(cl, ep->addr.ss_family);
    if (fd < 0) return NULL;
    struct rs_upstream *u = calloc(1, sizeof *u);
    if (!u) {
        close(fd);
        return NULL;
    }
    u->w = w;
    u->cluster = cl;
    rs_cluster_ref(cl);
    u->host = *ep;
    u->alpn_hash = s->cfg->upstream_alpn_hash;
    u->idle.cb = on_up_idle;
    u->c = rs_conn_new(&w->loop, fd, &up_handler, u);
    if (!u->c) {
        rs_cluster_unref(cl);
        free(u);
        return NULL;
    }
    rs_conn_count_bytes(u->c, w->stats, cl->st.upstream_cx_rx_bytes_total,
                        cl->st.upstream_cx_tx_bytes_total);
    if (href->hs) rs_host_ref_take(&u->href, href->hs, href->idx);
    rs_host_stat_add(&u->href, w->id + 1, RS_HS_CX_TOTAL, 1);
    __atomic_add_fetch(&cl->active_cx, 1, __ATOMIC_RELAXED);
    struct rs_h1_limits lim = {.max_header_bytes = 60 * 1024, .max_headers = 100};
    rs_h1_init(&u->parser, RS_H1_RESPONSE, &lim, &resp_cb, u);
    rs_stat_inc(w->stats, cl->st.upstream_cx_total);
    struct rs_tls_ctx *tls = rs_cluster_host_tls(cl, ep);
    if (tls) {
        /* TLS from the cluster's transport socket: the ClientHello leaves when the connect
         * completes; the request written meanwhile is held and encrypted after the handshake */
        struct rs_tls_opts o = {.handshake_timeout_ms = cl->connect_timeout_ms,
                                .alpn = (const char *const *)s->cfg->upstream_alpn,
                                .n_alpn = s->cfg->n_upstream_alpn,
                                .shard = cl->ssl_stats ? w->stats : NULL,
                                .stats = cl->ssl};
        if (rs_tls_attach(u->c, tls, &o) != 0) {
            up_destroy(u);
            return NULL;
        }
    }
    rs_conn_connect(u->c, (const struct sockaddr *)&ep->addr, ep->addrlen, cl->connect_timeout_ms);
    return u;
}

/* ---- response path ------------------------------------------------------------------------- */

/* Drops the upstream side of a stream that is being answered locally. */
static void stream_detach_upstream(struct stream *st)
{
    if (!st->up) return;
    host_rq_done(st, RS_HS_RQ_ERROR);
    struct rs_upstream *u = st->up;
    st->up = NULL;
    u->st = NULL;
    up_destroy(u);
}

/* Envoy's stream_idle_timeout: no bytes either way for that long. 408 before the response
 * started, a reset after. The timer is re-armed lazily: activity only stamps a time. */
static void on_stream_idle(struct rs_loop *loop, struct rs_timer *t)
{
    struct hsess *s = (struct hsess *)((char *)t - offsetof(struct hsess, st_idle));
    struct stream *st = s->st;
    if (!st || !st->idle_timeout_ms) return; /* stream_open arms it again */
    uint64_t idle = loop->now_ms - st->last_active_ms;
    if (idle < st->idle_timeout_ms) {
        rs_timer_arm(loop, t, st->idle_timeout_ms - idle);
        return;
    }
    rs_stat_inc(s->w->stats, s->cfg->st.downstream_rq_idle_timeout);
    stream_detach_upstream(st);
    local_reply(s, 408, RS_RF_SI, "stream timeout", "stream_idle_timeout");
    pump(s);
}

/* Envoy's request_timeout: the whole request (head and body) must arrive in time. */
static void on_request_timeout(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    struct stream *st = (struct stream *)((char *)t - offsetof(struct stream, rq_timer));
    struct hsess *s = st->s;
    rs_stat_inc(s->w->stats, s->cfg->st.downstream_rq_timeout);
    stream_detach_upstream(st);
    local_reply(s, 408, RS_RF_DT, "request timeout", "request_overall_timeout");
    pump(s);
}

static void on_route_timeout(struct rs_loop *loop, struct rs_timer *t)
{
    struct hsess *s = (struct hsess *)((char *)t - offsetof(struct hsess, st_route));
    struct stream *st = s->st;
    if (!st || !st->route_deadline_ms) return; /* req_complete arms it again */
    if (loop->now_ms < st->route_deadline_ms) {
        rs_timer_arm(loop, t, st->route_deadline_ms - loop->now_ms);
        return;
    }
    if (st->cluster) rs_stat_inc(s->w->stats, st->cluster->st.upstream_rq_timeout);
    if (st->up) {
        host_rq_done(st, RS_HS_RQ_TIMEOUT);
        struct rs_upstream *u = st->up;
        st->up = NULL;
        u->st = NULL;
        up_destroy(u);
    }
    local_reply(s, 504, RS_RF_UT, "upstream request timeout", "upstream_response_timeout");
    pump(s);
}

static int resp_head(void *ud, const struct rs_h1_head *h)
{
    struct rs_upstream *u = ud;
    struct stream *st = u->st;
    struct hsess *s = st->s;
    if (h->status < 200) {
        st->in_1xx = true; /* Envoy answers Expect: 100-continue itself; 1xx stay upstream */
        return 0;
    }
    u->reusable = h->keep_alive;
    st->status = h->status;
    st->details = "via_upstream"; /* Envoy's ResponseCodeDetails::ViaUpstream */
    st->last_active_ms = s->w->loop.now_ms;
    st->resp_started = true;
    char ust[20];
    size_t ustn = rs_h1_u64(ust, (rs_now_us() - st->upstream_start_us) / 1000);
    st->ust = arena_add(st, ust, ustn);
    bool body_allowed = !st->head_request && h->status != 204 && h->status != 304;
    bool framed = h->content_length >= 0 && !h->chunked;
    st->rechunk = body_allowed && !framed && !st->http10;
    if (body_allowed && !framed && st->http10) s->closing = true; /* close-delimited to 1.0 */

    const struct rs_header_edits *lv[4];
    size_t nlv = rs_route_response_edits(s->cfg->routes, st->route, st->rc, lv);
    struct rs_obuf b = {0};
    char line[64];
    rs_obuf_put(&b, line, rs_h1_status_line(line, sizeof line, h->status, st->http10));
    bool have_date = false;
    /* the Connection header's list is searched per header only when there is one */
    bool has_connection = rs_h1_find(h, "connection") != NULL;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct rs_h1_header *x = &h->headers[i];
        if (rs_h1_is_hop_by_hop(x->name, x->name_len) ||
            (has_connection && rs_h1_connection_lists(h, x->name, x->name_len)))
            continue;
        if (rs_h1_name_eq(x->name, x->name_len, "server") && !s->cfg->server_header_pass_through)
            continue;
        if (rs_h1_name_eq(x->name, x->name_len, "x-envoy-upstream-service-time")) continue;
        bool removed = false;
        for (size_t l = 0; l < nlv && !removed; l++)
            for (uint32_t k = 0; k < lv[l]->n_remove && !removed; k++)
                removed = rs_h1_name_eq(x->name, x->name_len, lv[l]->remove[k].name);
        for (size_t l = 0; l < nlv && !removed; l++)
            for (uint32_t k = 0; k < lv[l]->n_add && !removed; k++)
                removed = (lv[l]->add[k].action == RS_HDR_OVERWRITE_IF_EXISTS_OR_ADD ||
                           lv[l]->add[k].action == RS_HDR_OVERWRITE_IF_EXISTS) &&
                          rs_h1_name_eq(x->name, x->name_len, lv[l]->add[k].name);
        if (removed) continue;
        if (rs_h1_name_eq(x->name, x->name_len, "date")) have_date = true;
        rs_obuf_hdr(&b, x->name, x->name_len, x->value, x->value_len);
    }
    for (size_t l = 0; l < nlv; l++)
        for (uint32_t k = 0; k < lv[l]->n_add; k++) {
            const struct rs_header_add *a = &lv[l]->add[k];
            if (a->action == RS_HDR_ADD_IF_ABSENT && rs_h1_find(h, a->name)) continue;
            if (a->action == RS_HDR_OVERWRITE_IF_EXISTS && !rs_h1_find(h, a->name)) continue;
            char val[1024];
            const char *v = a->value;
            ssize_t vl = a->value_len;
            if (a->has_format) {
                struct rs_route_format_vars fv = {.protocol = "HTTP/1.1",
                                                  .upstream_remote_address = u->host.name};
                vl = rs_route_format_value(a, &fv, val, sizeof val);
                v = val;
                if (vl < 0) continue;
            }
            if (vl == 0 && !a->keep_empty_value) continue;
            rs_obuf_hdr(&b, a->name, a->name_len, v, (size_t)vl);
        }
    if (!have_date) rs_obuf_hdr(&b, "date", 4, s->w->date, s->w->date_len);
    if (!s->cfg->server_header_pass_through)
        rs_obuf_hdr(&b, "server", 6, s->cfg->server_name, strlen(s->cfg->server_name));
    rs_obuf_hdr(&b, "x-envoy-upstream-service-time", 29, ust, ustn);
    if (s->cfg->always_set_request_id_in_response && st->rid.len && !rs_h1_find(h, "x-request-id"))
        rs_obuf_hdr(&b, "x-request-id", 12, st->arena + st->rid.off, st->rid.len);
    if (st->rechunk) rs_obuf_hdr(&b, "transfer-encoding", 17, "chunked", 7);
    if (s->closing || s->w->draining) {
        s->closing = true;
        rs_obuf_hdr(&b, "connection", 10, "close", 5);
    } else if (st->http10) {
        rs_obuf_hdr(&b, "connection", 10, "keep-alive", 10);
    }
    rs_obuf_put(&b, "\r\n", 2);
    if (rs_obuf_send(&b, s->down) != 0) return -1;
    return st->head_request ? RS_H1_SKIP_BODY : 0;
}

static int resp_body(void *ud, const char *at, size_t len)
{
    struct rs_upstream *u = ud;
    struct stream *st = u->st;
    struct hsess *s = st->s;
    st->resp_body += len;
    st->last_active_ms = s->w->loop.now_ms;
    int ret = 0;
    if (st->rechunk) {
        char hdr[20];
        size_t n = rs_h1_chunk_header(hdr, len);
        ret |= rs_conn_write_copy(s->down, hdr, n);
    }
    ret |= rs_conn_write_buf(s->down, s->cur_bid, at, len);
    if (st->rechunk) ret |= rs_conn_write_static(s->down, "\r\n", 2);
    if (ret) return -1;
    if (rs_conn_queued(s->down) > s->link.l->per_connection_buffer_limit) rs_conn_read_stop(u->c);
    return 0;
}

static int resp_complete(void *ud)
{
    struct rs_upstream *u = ud;
    struct stream *st = u->st;
    if (st->in_1xx) {
        st->in_1xx = false;
        return 0;
    }
    struct hsess *s = st->s;
    if (st->rechunk && rs_conn_write_static(s->down, RS_H1_LAST_CHUNK, 5) != 0) return -1;
    st->resp_complete = true;
    u->requests++;
    if (!st->req_complete) {
        /* answered before the request ended: the rest of it cannot be read in step any more */
        u->reusable = false;
        s->closing = true;
    }
    /* the stream ends in up_data/up_eof once the parser has returned: releasing the connection
     * resets this very parser */
    return RS_H1_PAUSE;
}

static const struct rs_h1_callbacks resp_cb = {
    .on_head = resp_head,
    .on_body = resp_body,
    .on_complete = resp_complete,
};

/* ---- request path -------------------------------------------------------------------------- */

static bool route_header(void *ctx, const char *lname, size_t len, const char **value, size_t *vlen)
{
    const struct rs_hdrs *hs = ctx;
    int i = rs_hdrs_find(hs, lname, len);
    if (i < 0) return false;
    *value = hs->h[i].v;
    *vlen = hs->h[i].vl;
    return true;
}

static struct str_ref hdr_ref(struct stream *st, const struct rs_hdrs *hs, const char *name)
{
    int i = rs_hdrs_find(hs, name, strlen(name));
    return i < 0 ? (struct str_ref){0, 0} : arena_add(st, hs->h[i].v, hs->h[i].vl);
}

static __thread struct rs_hdrs *tls_hs; /* one per worker thread: too big for the stack */
static __thread char *tls_norm;         /* the normalized path of the request being routed */
static __thread size_t tls_norm_cap;
static __thread struct rs_obuf tls_xfcc; /* the x-forwarded-client-cert value being built */

void rs_hcm_thread_cleanup(void)
{
    while (nstream_cache) {
        struct stream *st = stream_cache[--nstream_cache];
        free(st->arena);
        free(st);
    }
    free(tls_hs);
    tls_hs = NULL;
    free(tls_norm);
    tls_norm = NULL;
    tls_norm_cap = 0;
    rs_obuf_free(&tls_xfcc);
    tls_xfcc = (struct rs_obuf){0};
}

static int forward(struct hsess *s, struct stream *st, const struct rs_h1_head *h,
                   struct rs_hdrs *hs, const char *path, size_t path_len, const char *authority,
                   size_t auth_len);

/* envoy.filters.http.rbac, after the route match (the route's RBACPerRoute replaces a filter's
 * rules; Envoy runs the HTTP filters before the router's 404 and direct responses). Answers 403
 * and returns true on a denial. */
static bool http_rbac_denied(struct hsess *s, const struct rs_route *r,
                             const struct rs_route_request *rq)
{
    const struct rs_hcm_cfg *cfg = s->cfg;
    struct rs_rbac_input in = {
        .http = true,
        .method = rq->method,
        .method_len = rq->method_len,
        .path = rq->path,
        .path_len = rq->path_len,
        .authority = rq->authority,
        .authority_len = rq->authority_len,
        .header = rq->header,
        .ctx = rq->ctx,
    };
    rs_authz_conn_input(&in, s->down, (struct sockaddr *)&s->peer, (struct sockaddr *)&s->local);
    /* remote_ip is the client as the HCM trusts x-forwarded-for (Envoy's
     * mutateRequestHeaders): with use_remote_address the peer unless xff_num_trusted_hops
     * names an earlier hop; without it, the entry xff_num_trusted_hops from the end */
    struct sockaddr_storage remote;
    const char *xff;
    size_t xlen;
    uint32_t hops = cfg->xff_num_trusted_hops;
    if ((!cfg->use_remote_address || hops > 0) &&
        rq->header(rq->ctx, "x-forwarded-for", 15, &xff, &xlen) &&
        rs_authz_xff_addr(xff, xlen, cfg->use_remote_address ? hops - 1 : hops, &remote))
        in.remote = (struct sockaddr *)&remote;
    for (uint32_t i = 0; i < cfg->nrbac; i++) {
        const struct rs_rbac_stage *stage = &cfg->rbac[i];
        const struct rs_rbac_filter *f = rs_route_filter_config(cfg->routes, r, stage->name);
        const char *policy;
        if (!rs_rbac_stage_denies(stage, f ? f : stage->f, s->w->stats, &in, &policy)) continue;
        char details[300];
        rs_rbac_denied_details(policy, details, sizeof details);
        rs_debug("http.%s: request %.*s %.*s from %s (principal \"%s\") denied by %s: %s",
                 cfg->stat_prefix, (int)rq->method_len, rq->method, (int)rq->path_len, rq->path,
                 s->peer_str, in.peer_principal ? in.peer_principal : "-", stage->name, details);
        local_reply(s, 403, 0, "RBAC: access denied", details); /* details used before return */
        return true;
    }
    return false;
}

/* x-forwarded-client-cert, as Envoy's ConnectionManagerUtility::mutateXfccRequestHeader: kept
 * as received (ALWAYS_FORWARD_ONLY; FORWARD_ONLY on mutual TLS), removed (SANITIZE, or no peer
 * certificate), or this hop's element By=...;Hash=...[;Cert="...";Chain="...";Subject="...";
 * URI=...;DNS=...] appended (APPEND_FORWARD) or set (SANITIZE_SET). The value is built in a
 * buffer of the worker's (Cert and Chain make it kilobytes), which H refers to until the next
 * request's: H is the worker's too, and the head is written out before then. */
static void xfcc_field(struct rs_obuf *v, const char *key, const char *val, const char *close)
{
    rs_obuf_str(v, key);
    rs_obuf_str(v, val ? val : "");
    rs_obuf_str(v, close);
}

static void xfcc(struct hsess *s, struct rs_hdrs *H)
{
    struct rs_obuf *v = &tls_xfcc;
    const struct rs_hcm_cfg *cfg = s->cfg;
    if (cfg->xfcc_mode == RS_XFCC_ALWAYS_FORWARD_ONLY) return;
    const char *hash = rs_tls_peer_cert_sha256(s->down);
    if (cfg->xfcc_mode == RS_XFCC_SANITIZE || !hash) {
        rs_hdrs_remove(H, "x-forwarded-client-cert", 23);
        return;
    }
    if (cfg->xfcc_mode == RS_XFCC_FORWARD_ONLY) return;
    v->len = 0;
    v->oom = false;
    int xi = rs_hdrs_find(H, "x-forwarded-client-cert", 23);
    if (cfg->xfcc_mode == RS_XFCC_APPEND_FORWARD && xi >= 0) { /* the earlier hops' elements */
        rs_obuf_put(v, H->h[xi].v, H->h[xi].vl);
        rs_obuf_put(v, ",", 1);
    }
    const struct rs_conn *d = s->down;
    const char *by = rs_tls_local_uri_san(d);
    if (by) xfcc_field(v, "By=", by, ";");
    xfcc_field(v, "Hash=", hash, "");
    uint8_t set = cfg->xfcc_set;
    if (set & RS_XFCC_CERT) xfcc_field(v, ";Cert=\"", rs_tls_peer_pem_urlenc(d, false), "\"");
    if (set & RS_XFCC_CHAIN) xfcc_field(v, ";Chain=\"", rs_tls_peer_pem_urlenc(d, true), "\"");
    if (set & RS_XFCC_SUBJECT) xfcc_field(v, ";Subject=\"", rs_tls_peer_subject(d), "\"");
    if (set & RS_XFCC_URI) xfcc_field(v, ";URI=", rs_tls_peer_uri_san(d), "");
    const char *dns = set & RS_XFCC_DNS ? rs_tls_peer_dns_san(d) : NULL;
    if (dns) xfcc_field(v, ";DNS=", dns, ""); /* Envoy writes DNS only when there is one */
    if (v->oom) return;                       /* no memory: left as received */
    rs_hdrs_remove(H, "x-forwarded-client-cert", 23);
    rs_hdrs_add(H, "x-forwarded-client-cert", 23, v->p, v->len);
}

static int req_head(void *ud, const struct rs_h1_head *h)
{
    struct hsess *s = ud;
    struct rs_worker *w = s->w;
    const struct rs_hcm_cfg *cfg = s->cfg;
    rs_timer_cancel(&w->loop, &s->hdr_timer);
    struct stream *st = stream_open(s);
    if (!st) return -1;
    st->http10 = h->http_minor == 0;
    st->head_request = h->method == HTTP_HEAD;
    st->req_chunked = h->chunked;
    if (!h->keep_alive || w->draining) s->closing = true;
    st->method = arena_add(st, h->method_str, h->method_len);
    st->path = arena_add(st, h->url, h->url_len);

    if (!tls_hs && !(tls_hs = malloc(sizeof *tls_hs))) return -1;
    struct rs_hdrs *H = tls_hs;
    H->n = 0;
    H->used = 0;
    for (uint32_t i = 0; i < h->nheaders; i++)
        rs_hdrs_add(H, h->headers[i].name, h->headers[i].name_len, h->headers[i].value,
                    h->headers[i].value_len);

    if (st->http10 && !cfg->accept_http_10) {
        local_reply(s, 426, 0, "Upgrade Required", "low_version");
        return 0;
    }
    if (h->upgrade || h->method == HTTP_CONNECT) {
        local_reply(s, 403, 0, "Upgrade not configured", "upgrade_failed");
        return 0;
    }
    /* request-target: origin-form, or absolute-form (http://host/path) as Envoy accepts it */
    const char *path = h->url, *authority = NULL;
    size_t path_len = h->url_len, auth_len = 0;
    if (path_len >= 7 && strncasecmp(path, "http://", 7) == 0) {
        const char *a = path + 7, *end = path + path_len;
        const char *slash = memchr(a, '/', (size_t)(end - a));
        authority = a;
        auth_len = (size_t)((slash ? slash : end) - a);
        path = slash ? slash : "/";
        path_len = slash ? (size_t)(end - slash) : 1;
    } else if (path_len == 0 || (path[0] != '/' && !(path_len == 1 && path[0] == '*'))) {
        rs_stat_inc(w->stats, cfg->st.downstream_rq_non_relative_path);
        local_reply(s, 404, RS_RF_NR, NULL, "absolute_path_rejected");
        return 0;
    }
    if (path[0] == '/' && (cfg->path.normalize || cfg->path.merge_slashes ||
                           cfg->path.escaped_slashes != RS_PATH_SLASHES_KEEP)) {
        /* Envoy normalizes before routing, and forwards the normalized path */
        if (tls_norm_cap < path_len) {
            char *n = realloc(tls_norm, path_len);
            if (!n) return -1;
            tls_norm = n;
            tls_norm_cap = path_len;
        }
        char *norm = tls_norm;
        size_t norm_cap = tls_norm_cap;
        size_t nlen = 0;
        switch (rs_path_normalize(path, path_len, &cfg->path, norm, norm_cap, &nlen)) {
        case RS_PATH_OK:
            path = norm;
            path_len = nlen;
            st->path = arena_add(st, path, path_len);
            break;
        case RS_PATH_REDIRECT:
            local_reply_at(s, 307, 0, NULL, "path_normalization_redirect", norm, nlen);
            return 0;
        case RS_PATH_UNCHANGED:
            break;
        default:
            local_reply(s, 400, 0, "Bad Request", "path_normalization_failed");
            return 0;
        }
    }
    if (!authority) {
        int hi = rs_hdrs_find(H, "host", 4);
        if (hi >= 0) {
            authority = H->h[hi].v;
            auth_len = H->h[hi].vl;
        } else if (cfg->default_host_for_http_10) {
            authority = cfg->default_host_for_http_10;
            auth_len = strlen(authority);
        } else {
            authority = "";
        }
    }
    st->authority = arena_add(st, authority, auth_len);
    st->ua = hdr_ref(st, H, "user-agent");
    st->log_names = cfg->log_hdrs;
    st->nlog = cfg->nlog_hdrs;
    for (uint32_t i = 0; i < st->nlog; i++) st->logh[i] = hdr_ref(st, H, st->log_names[i]);
    /* x-request-id before routing, so local replies are logged with one too */
    int ri = rs_hdrs_find(H, "x-request-id", 12);
    bool regen = cfg->use_remote_address && !s->peer_internal && !cfg->preserve_external_request_id;
    if (cfg->generate_request_id && (ri < 0 || regen)) {
        char id[37];
        rs_uuid4(rs_worker_rand(w), rs_worker_rand(w), id);
        const char *v = rs_hdrs_keep(H, id, 36);
        if (v) {
            rs_hdrs_remove(H, "x-request-id", 12);
            rs_hdrs_add(H, "x-request-id", 12, v, 36);
        }
    }
    st->rid = hdr_ref(st, H, "x-request-id");

    struct rs_route_request rq = {
        .method = h->method_str,
        .method_len = h->method_len,
        .path = path,
        .path_len = path_len,
        .authority = authority,
        .authority_len = auth_len,
        .header = route_header,
        .ctx = H,
    };
    /* the router filter's rq_total counts every request it decodes, routed or not (Envoy's
     * router.cc increments it before the route lookup) */
    rs_stat_inc(w->stats, cfg->st.rq_total);
    const struct rs_route *r = rs_route_match(cfg->routes, &rq);
    st->route = r;
    if (cfg->nrbac && http_rbac_denied(s, r, &rq)) return 0;
    if (!r) {
        rs_stat_inc(w->stats, cfg->st.no_route);
        local_reply(s, 404, RS_RF_NR, NULL, "route_not_found");
        return 0;
    }
    if (r->kind == RS_ROUTE_DIRECT_RESPONSE) {
        rs_stat_inc(w->stats, cfg->st.rq_direct_response);
        char *body = NULL;
        if (r->direct_body && (body = malloc(r->direct_body_len + 1))) {
            memcpy(body, r->direct_body, r->direct_body_len);
            body[r->direct_body_len] = '\0';
        }
        local_reply(s, (int)r->direct_status, 0, body, "direct_response");
        free(body);
        return 0;
    }
    return forward(s, st, h, H, path, path_len, authority, auth_len);
}

static int forward(struct hsess *s, struct stream *st, const struct rs_h1_head *h,
                   struct rs_hdrs *H, const char *path, size_t path_len, const char *authority,
                   size_t auth_len)
{
    struct rs_worker *w = s->w;
    const struct rs_hcm_cfg *cfg = s->cfg;
    const struct rs_route *r = st->route;
    const struct rs_route_cluster *rc = rs_route_pick_cluster(r, rs_worker_rand(w));
    st->rc = rc;
    if (rc->index < 0) {
        rs_stat_inc(w->stats, cfg->st.no_cluster);
        local_reply(s, 503, RS_RF_NC, NULL, "cluster_not_found");
        return 0;
    }
    struct rs_cluster *cl = s->link.snap->clusters[rc->index];
    st->cluster = cl;
    struct rs_host_ref href;
    struct rs_endpoint od;
    const struct rs_endpoint *ep =
        rs_worker_pick_host_for(w, cl, s->redirected ? &s->local : NULL, &od, &href);
    if (!ep) {
        rs_stat_inc(w->stats, cl->st.upstream_cx_none_healthy);
        local_reply(s, 503, RS_RF_UH, "no healthy upstream", "no_healthy_upstream");
        return 0;
    }
    if (__atomic_load_n(&cl->active_rq, __ATOMIC_RELAXED) >= cl->max_requests) {
        rs_stat_inc(w->stats, cl->st.upstream_rq_pending_overflow);
        local_reply(
            s, 503, RS_RF_UO,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            "overflow");
        return 0;
    }
    st->timeout_ms = r->timeout_ms;
    if (r->idle_timeout_ms >= 0) {
        /* the route's idle_timeout replaces the connection manager's stream_idle_timeout */
        st->idle_timeout_ms = (uint64_t)r->idle_timeout_ms;
        st->last_active_ms = w->loop.now_ms;
        if (st->idle_timeout_ms) rs_timer_arm_by(&w->loop, &s->st_idle, st->idle_timeout_ms);
    }
    int ti = rs_hdrs_find(H, "x-envoy-upstream-rq-timeout-ms", 30);
    if (ti >= 0 && s->peer_internal) {
        char tmp[24];
        size_t n = H->h[ti].vl < sizeof tmp - 1 ? H->h[ti].vl : sizeof tmp - 1;
        memcpy(tmp, H->h[ti].v, n);
        tmp[n] = '\0';
        char *end;
        unsigned long long v = strtoull(tmp, &end, 10);
        if (end != tmp && *end == '\0') st->timeout_ms = v;
    }

    /* Envoy's request header handling: hop-by-hop out, Expect handled here, x-envoy-* from
     * untrusted peers dropped, XFF and x-request-id maintained. */
    bool expect_continue = false;
    bool has_connection = rs_h1_find(h, "connection") != NULL;
    for (uint32_t i = 0; i < H->n; i++) {
        struct rs_hdr *x = &H->h[i];
        if (!x->n) continue;
        if (rs_h1_is_hop_by_hop(x->n, x->nl) ||
            (has_connection && rs_h1_connection_lists(h, x->n, x->nl)) ||
            rs_h1_name_eq(x->n, x->nl, "host") || rs_h1_name_eq(x->n, x->nl, "content-length")) {
            x->n = NULL;
        } else if (rs_h1_name_eq(x->n, x->nl, "expect")) {
            expect_continue = x->vl == 12 && strncasecmp(x->v, "100-continue", 12) == 0;
            x->n = NULL;
        } else if (x->nl > 8 && strncasecmp(x->n, "x-envoy-", 8) == 0 && cfg->use_remote_address &&
                   !s->peer_internal) {
            x->n = NULL;
        }
    }
    if (cfg->use_remote_address && !cfg->skip_xff_append) {
        int xi = rs_hdrs_find(H, "x-forwarded-for", 15);
        if (xi >= 0) {
            char tmp[1024];
            int n = snprintf(tmp, sizeof tmp, "%.*s,%s", (int)H->h[xi].vl, H->h[xi].v, s->peer_ip);
            const char *v =
                n > 0 && (size_t)n < sizeof tmp ? rs_hdrs_keep(H, tmp, (size_t)n) : NULL;
            if (v) {
                H->h[xi].v = v;
                H->h[xi].vl = (uint32_t)n;
            }
        } else {
            rs_hdrs_add(H, "x-forwarded-for", 15, s->peer_ip, strlen(s->peer_ip));
        }
        if (!s->peer_internal) {
            rs_hdrs_remove(H, "x-envoy-external-address", 24);
            rs_hdrs_add(H, "x-envoy-external-address", 24, s->peer_ip, strlen(s->peer_ip));
        }
    }
    if (rs_hdrs_find(H, "x-forwarded-proto", 17) < 0) {
        bool tls = rs_tls_is_tls(s->down);
        rs_hdrs_add(H, "x-forwarded-proto", 17, tls ? "https" : "http", tls ? 5 : 4);
    }
    xfcc(s, H);
    char tbuf[20];
    if (st->timeout_ms) {
        size_t n = rs_h1_u64(tbuf, st->timeout_ms);
        rs_hdrs_remove(H, "x-envoy-expected-rq-timeout-ms", 30);
        rs_hdrs_add(H, "x-envoy-expected-rq-timeout-ms", 30, tbuf, n);
    }
    char newpath[4096];
    ssize_t np = rs_route_rewrite_path(r, path, path_len, newpath, sizeof newpath);
    if (np >= 0) {
        rs_hdrs_remove(H, "x-envoy-original-path", 21);
        rs_hdrs_add(H, "x-envoy-original-path", 21, path, path_len);
        st->orig_path = arena_add(st, path, path_len);
        path = newpath;
        path_len = (size_t)np;
    }
    struct rs_route_format_vars fv = {.downstream_remote_address = s->peer_str,
                                      .downstream_local_address = s->local_str,
                                      .upstream_remote_address = ep->name,
                                      .protocol = st->http10 ? "HTTP/1.0" : "HTTP/1.1"};
    const struct rs_header_edits *lv[4];
    size_t nlv = rs_route_request_edits(cfg->routes, r, rc, lv);
    rs_hdrs_apply_edits(H, lv, nlv, &fv);
    st->xff = hdr_ref(st, H, "x-forwarded-for");
    st->rid = hdr_ref(st, H, "x-request-id");

    const char *host = rs_route_host_rewrite(r, rc);
    size_t host_len = host ? strlen(host) : auth_len;
    if (!host) host = authority;

    struct rs_obuf b = {0};
    rs_obuf_put(&b, h->method_str, h->method_len);
    rs_obuf_put(&b, " ", 1);
    rs_obuf_put(&b, path, path_len);
    rs_obuf_str(&b, " HTTP/1.1\r\n");
    rs_obuf_hdr(&b, "host", 4, host, host_len);
    for (uint32_t i = 0; i < H->n; i++)
        if (H->h[i].n) rs_obuf_hdr(&b, H->h[i].n, H->h[i].nl, H->h[i].v, H->h[i].vl);
    if (h->chunked)
        rs_obuf_hdr(&b, "transfer-encoding", 17, "chunked", 7);
    else if (h->content_length >= 0) {
        char cl[20];
        rs_obuf_hdr(&b, "content-length", 14, cl, rs_h1_u64(cl, (uint64_t)h->content_length));
    }
    rs_obuf_put(&b, "\r\n", 2);
    if (b.oom) {
        rs_obuf_free(&b);
        return -1;
    }

    struct rs_upstream *u = up_acquire(s, cl, ep, &href);
    if (!u) {
        rs_obuf_free(&b);
        local_reply(
            s, 503, RS_RF_UO,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            "overflow");
        return 0;
    }
    __atomic_add_fetch(&cl->active_rq, 1, __ATOMIC_RELAXED);
    st->counted_upstream = true;
    rs_stat_inc(w->stats, cl->st.upstream_rq_total);
    rs_stat_inc(w->stats, cl->st.upstream_rq_active);
    st->upstream_start_us = rs_now_us();
    st->up = u;
    u->st = st;
    rs_host_stat_add(&u->href, w->id + 1, RS_HS_RQ_TOTAL, 1);
    rs_host_stat_add(&u->href, w->id + 1, RS_HS_RQ_ACTIVE, 1);
    st->host_open = true;
    u->reusable = true;
    if (rs_obuf_send(&b, u->c) != 0) return -1;
    if (expect_continue && rs_conn_write_static(s->down, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0)
        return -1;
    return 0;
}

static int req_body(void *ud, const char *at, size_t len)
{
    struct hsess *s = ud;
    struct stream *st = s->st;
    if (!st) return 0; /* answered locally: the body is read and dropped */
    st->req_body += len;
    st->last_active_ms = s->w->loop.now_ms;
    if (!st->up) return 0;
    struct rs_conn *c = st->up->c;
    int ret = 0;
    if (st->req_chunked) {
        char hdr[20];
        size_t n = rs_h1_chunk_header(hdr, len);
        ret |= rs_conn_write_copy(c, hdr, n);
    }
    ret |= rs_conn_write_buf(c, s->cur_bid, at, len);
    if (st->req_chunked) ret |= rs_conn_write_static(c, "\r\n", 2);
    if (ret) return -1;
    if (rs_conn_queued(c) > s->link.l->per_connection_buffer_limit) rs_conn_read_stop(s->down);
    return 0;
}

static int req_complete(void *ud)
{
    struct hsess *s = ud;
    struct stream *st = s->st;
    if (!st) return s->closing ? RS_H1_PAUSE : 0;
    st->req_complete = true;
    rs_timer_cancel(&s->w->loop, &st->rq_timer);
    if (st->up && st->req_chunked && rs_conn_write_static(st->up->c, RS_H1_LAST_CHUNK, 5) != 0)
        return -1;
    if (st->timeout_ms) {
        st->route_deadline_ms = s->w->loop.now_ms + st->timeout_ms;
        rs_timer_arm_by(&s->w->loop, &s->st_route, st->timeout_ms);
    }
    return RS_H1_PAUSE;
}

static const struct rs_h1_callbacks req_cb = {
    .on_head = req_head,
    .on_body = req_body,
    .on_complete = req_complete,
};

/* ---- accept and drain ---------------------------------------------------------------------- */

static void drain(struct rs_session *link)
{
    struct hsess *s = (struct hsess *)link;
    s->closing = true;
    /* Drained by a configuration update: the next response says "connection: close"; an idle
     * connection stays open until the drain deadline, so a request racing with the update is
     * not lost on a closing socket. Shutting down closes idle connections now. */
    if (link->drain_deadline_ms && !s->w->draining) return;
    if (!s->st) {
        rs_stat_inc(s->w->stats, s->cfg->st.downstream_cx_drain_close);
        sess_destroy(s, true);
    }
}

static void kill_session(struct rs_session *link)
{
    sess_destroy((struct hsess *)link, true);
}

/* The listener was updated but this connection's filter chain did not change: later requests use
 * the new snapshot (routes, clusters); the stream in flight keeps the old one. */
static void rebind(struct rs_session *link, struct rs_filter_chain *fc, struct rs_snapshot *prev)
{
    struct hsess *s = (struct hsess *)link;
    struct rs_worker *w = s->w;
    if (s->fc->active_cx) {
        __atomic_sub_fetch(s->fc->active_cx, 1, __ATOMIC_RELAXED);
        rs_stat_dec(w->stats, s->fc->active_connections);
    }
    if (fc->active_cx) {
        __atomic_add_fetch(fc->active_cx, 1, __ATOMIC_RELAXED);
        rs_stat_inc(w->stats, fc->active_connections);
    }
    s->fc = link->fc = fc;
    s->cfg = fc->hcm;
    if (s->st && !s->st->snap)
        s->st->snap = prev;
    else
        rs_worker_defer_free(w, snapshot_unref_cb, prev);
}

/* envoy.filters.network.rbac before the HCM: true when it denies the connection (closed before
 * any request is read; Envoy writes no access log line for it either: there is no stream). */
static bool net_rbac_denied(struct hsess *s)
{
    char details[300];
    return rs_authz_network_denied(s->w->stats, s->fc, s->down, (struct sockaddr *)&s->peer,
                                   (struct sockaddr *)&s->local, s->cfg->stat_prefix, details,
                                   sizeof details);
}

/* The downstream TLS handshake ended: network RBAC decides before the first request is read
 * (its bytes are decrypted after this call). */
static void down_handshake(struct rs_conn *c, int err)
{
    struct hsess *s = c->owner;
    if (!err && !s->dead && net_rbac_denied(s)) sess_destroy(s, true);
}

void rs_hcm_accept(struct rs_worker *w, const struct rs_accept *a)
{
    struct rs_filter_chain *fc = a->fc;
    const struct rs_hcm_cfg *cfg = fc->hcm;
    struct hsess *s = calloc(1, sizeof *s);
    if (!s) {
        rs_conn_close(a->conn);
        return;
    }
    s->w = w;
    s->fc = fc;
    s->cfg = cfg;
    s->cur_bid = -1;
    s->peer = a->peer;
    s->local = a->local;
    s->redirected = a->redirected;
    s->start_ms = w->loop.now_ms;
    s->link.drain = drain;
    s->link.kill = kill_session;
    s->link.rebind = rebind;
    s->idle.cb = on_idle_timeout;
    s->hdr_timer.cb = on_header_timeout;
    s->max_duration.cb = on_max_duration;
    s->st_idle.cb = on_stream_idle;
    s->st_route.cb = on_route_timeout;
    rs_addr_ip((struct sockaddr *)&s->peer, s->peer_ip, sizeof s->peer_ip);
    rs_addr_str((struct sockaddr *)&s->peer, s->peer_str, sizeof s->peer_str);
    rs_addr_str((struct sockaddr *)&s->local, s->local_str, sizeof s->local_str);
    s->peer_internal = rs_addr_is_internal((struct sockaddr *)&s->peer);
    struct rs_h1_limits lim = {.max_header_bytes = cfg->max_request_headers_kb * 1024,
                               .max_headers = cfg->max_headers_count,
                               .max_body_bytes = cfg->max_request_bytes};
    rs_h1_init(&s->parser, RS_H1_REQUEST, &lim, &req_cb, s);
    rs_worker_session_add(w, &s->link, a);
    rs_stat_inc(w->stats, cfg->st.downstream_cx_total);
    rs_stat_inc(w->stats, cfg->st.downstream_cx_active);
    rs_stat_inc(w->stats, cfg->st.downstream_cx_http1_total);
    s->down = a->conn;
    rs_conn_set_handler(s->down, &down_handler, s);
    rs_conn_count_bytes(s->down, w->stats, cfg->st.downstream_cx_rx_bytes_total,
                        cfg->st.downstream_cx_tx_bytes_total);
    arm_idle(s);
    if (cfg->max_connection_duration_ms)
        rs_timer_arm(&w->loop, &s->max_duration, cfg->max_connection_duration_ms);
    if (fc->nrbac && !fc->tls_ctx && net_rbac_denied(s)) {
        sess_destroy(s, true);
        return;
    }
    if (rs_worker_downstream_start(w, a, fc->nrbac ? down_handshake : NULL) != 0)
        sess_destroy(s, true);
}

static const struct rs_conn_handler down_handler = {
    .on_data = down_data,
    .on_eof = down_eof,
    .on_drained = down_drained,
    .on_error = down_error,
};

static const struct rs_conn_handler up_handler = {
    .on_data = up_data,
    .on_eof = up_eof,
    .on_drained = up_drained,
    .on_connected = up_connected,
    .on_error = up_error,
};
