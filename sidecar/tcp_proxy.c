/* envoy.filters.network.tcp_proxy: bytes from the downstream connection go to one upstream
 * endpoint of the chosen cluster and back, moved as ring-buffer references (no copy in user
 * space). Each direction stops reading while the other side's queue is over the buffer limit, so
 * a slow peer costs bounded memory. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sidecar/authz.h"
#include "sidecar/log.h"
#include "sidecar/server.h"
#include "sidecar/tls.h"

struct tcp_session {
    struct rs_session link;
    struct rs_worker *w;
    struct rs_filter_chain *fc;
    const struct rs_tcp_cfg *cfg;
    struct rs_cluster *cluster;
    struct rs_conn *down, *up;
    struct rs_endpoint host;
    struct rs_host_ref href;
    bool has_host, connected, down_eof, up_eof;
    bool redirected; /* local is the original destination (SO_ORIGINAL_DST) */
    uint32_t attempts, flags;
    uint64_t start_us, start_ms, last_active_ms;
    struct rs_timer idle;
    struct sockaddr_storage peer, local;
    char *term_details; /* connection termination details (an RBAC denial), or NULL */
};

static const struct rs_conn_handler down_handler, up_handler;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void session_end(struct tcp_session *s)
{
    struct rs_worker *w = s->w;
    struct rs_stats_shard *st = w->stats;
    uint64_t rx = s->down ? s->down->rx_bytes : 0, tx = s->down ? s->down->tx_bytes : 0;
    rs_worker_downstream_closed(w, &s->link, s->start_ms);
    if (s->up) {
        if (s->connected) {
            rs_stat_dec(st, s->cluster->st.upstream_cx_active);
            rs_host_stat_add(&s->href, w->id + 1, RS_HS_CX_ACTIVE, -1);
            rs_stat_inc(st, s->cluster->st.upstream_cx_destroy);
        }
    }
    if (s->cfg->nlogs) {
        struct rs_access_info info = {
            .start_time_us = (int64_t)s->start_us,
            .duration_us = (int64_t)(now_us() - s->start_us),
            .request_duration_us = -1,
            .response_duration_us = -1,
            .response_flags = s->flags,
            .bytes_received = rx,
            .bytes_sent = tx,
            .connection_id = s->down ? s->down->id : 0,
            .has_connection_id = s->down != NULL,
            .downstream_remote = (struct sockaddr *)&s->peer,
            .downstream_local = (struct sockaddr *)&s->local,
            .upstream_cluster = {s->cluster ? s->cluster->name : NULL,
                                 s->cluster ? strlen(s->cluster->name) : 0},
            .upstream_host = {s->has_host ? s->host.name : NULL,
                              s->has_host ? strlen(s->host.name) : 0},
        };
        if (s->term_details)
            info.connection_termination_details =
                (struct rs_access_str){s->term_details, strlen(s->term_details)};
        rs_access_info_tls(&info, s->down);
        rs_worker_access_log(w, s->link.snap, s->cfg->logs, s->cfg->nlogs, &info);
    }
    rs_timer_cancel(&w->loop, &s->idle);
    rs_worker_session_del(w, &s->link);
    if (s->down) rs_conn_close_after_flush(s->down);
    if (s->up) rs_conn_close_after_flush(s->up);
    rs_host_ref_release(&s->href);
    rs_cluster_unref(s->cluster);
    free(s->term_details);
    free(s);
}

/* envoy.filters.network.rbac: true when the chain's RBAC filters deny the connection (then
 * closed: Envoy's NoFlush close, with the details in %CONNECTION_TERMINATION_DETAILS%). */
static bool rbac_denied(struct tcp_session *s)
{
    char details[300];
    if (!rs_authz_network_denied(s->w->stats, s->fc, s->down, (struct sockaddr *)&s->peer,
                                 (struct sockaddr *)&s->local, s->cfg->stat_prefix, details,
                                 sizeof details))
        return false;
    s->term_details = strdup(details);
    return true;
}

/* The downstream TLS handshake ended: the peer's identity is known, and no byte of it has been
 * read yet (the decrypted bytes follow this call), so RBAC decides before any goes upstream. The
 * upstream connect runs meanwhile, as Envoy's does. */
static void down_handshake(struct rs_conn *c, int err)
{
    struct tcp_session *s = c->owner;
    if (err || !rbac_denied(s)) return;
    session_end(s);
}

static void on_idle(struct rs_loop *loop, struct rs_timer *t)
{
    struct tcp_session *s = (struct tcp_session *)((char *)t - offsetof(struct tcp_session, idle));
    uint64_t idle_for = loop->now_ms - s->last_active_ms;
    if (idle_for < s->cfg->idle_timeout_ms) {
        rs_timer_arm(loop, t, s->cfg->idle_timeout_ms - idle_for);
        return;
    }
    rs_stat_inc(s->w->stats, s->cfg->st.idle_timeout);
    session_end(s);
}

static bool try_connect(struct tcp_session *s);

/* Moves bytes from one side to the other; pauses the source when the sink is full. */
static void relay(struct tcp_session *s, struct rs_conn *from, struct rs_conn *to, int32_t bid,
                  const char *data, size_t len)
{
    s->last_active_ms = s->w->loop.now_ms;
    if (rs_conn_write_buf(to, bid, data, len) != 0) { /* copies a TLS transport's bid < 0 */
        session_end(s);
        return;
    }
    if (rs_conn_queued(to) > s->link.l->per_connection_buffer_limit) rs_conn_read_stop(from);
}

static void down_data(struct rs_conn *c, int32_t bid, const char *data, size_t len)
{
    struct tcp_session *s = c->owner;
    relay(s, c, s->up, bid, data, len);
}

static void up_data(struct rs_conn *c, int32_t bid, const char *data, size_t len)
{
    struct tcp_session *s = c->owner;
    relay(s, c, s->down, bid, data, len);
}

/* A half-close travels to the other side once everything before it was delivered; the session
 * ends when both directions are closed. */
static void half_close(struct tcp_session *s, bool from_down)
{
    if (from_down)
        s->down_eof = true;
    else
        s->up_eof = true;
    if (s->down_eof && s->up_eof) {
        session_end(s);
        return;
    }
    rs_conn_shutdown_write(from_down ? s->up : s->down); /* TLS: close_notify, then the FIN */
}

static void down_eof(struct rs_conn *c)
{
    half_close(c->owner, true);
}

static void up_eof(struct rs_conn *c)
{
    half_close(c->owner, false);
}

static void down_drained(struct rs_conn *c)
{
    struct tcp_session *s = c->owner;
    if (s->up && !s->up_eof) rs_conn_read_start(s->up);
}

static void up_drained(struct rs_conn *c)
{
    struct tcp_session *s = c->owner;
    if (!s->down_eof) rs_conn_read_start(s->down);
}

static void down_error(struct rs_conn *c, int err)
{
    (void)err;
    struct tcp_session *s = c->owner;
    s->flags |= RS_RF_DC;
    session_end(s);
}

static void up_error(struct rs_conn *c, int err)
{
    struct tcp_session *s = c->owner;
    if (rs_tls_is_tls(c) && !rs_tls_handshake_done(c)) {
        /* Envoy: the upstream is connected only once its TLS handshake is, so a failed one is
         * a connect failure (UF). Not retried: downstream bytes may already sit in the failed
         * connection's TLS buffer. */
        rs_stat_inc(s->w->stats, s->cluster->st.upstream_cx_connect_fail);
        rs_host_stat_add(&s->href, s->w->id + 1, RS_HS_CX_CONNECT_FAIL, 1);
        if (err == -ETIMEDOUT) rs_stat_inc(s->w->stats, s->cluster->st.upstream_cx_connect_timeout);
        rs_debug("tcp_proxy %s: TLS handshake with %s failed: %s", s->cfg->stat_prefix,
                 s->host.name, strerror(-err));
        s->flags |= RS_RF_UF;
        session_end(s);
        return;
    }
    s->flags |= RS_RF_UC;
    session_end(s);
}

static void up_connected(struct rs_conn *c, int err)
{
    struct tcp_session *s = c->owner;
    struct rs_stats_shard *st = s->w->stats;
    if (err) {
        rs_stat_inc(st, s->cluster->st.upstream_cx_connect_fail);
        rs_host_stat_add(&s->href, s->w->id + 1, RS_HS_CX_CONNECT_FAIL, 1);
        if (err == -ETIMEDOUT) rs_stat_inc(st, s->cluster->st.upstream_cx_connect_timeout);
        rs_debug("tcp_proxy %s: connect to %s failed: %s", s->cfg->stat_prefix, s->host.name,
                 strerror(-err));
        rs_conn_close(c);
        s->up = NULL;
        if (s->attempts < s->cfg->max_connect_attempts && try_connect(s)) return;
        s->flags |= RS_RF_UF;
        session_end(s);
        return;
    }
    s->connected = true;
    rs_host_stat_add(&s->href, s->w->id + 1, RS_HS_CX_ACTIVE, 1);
    rs_stat_inc(st, s->cluster->st.upstream_cx_active);
    rs_hist_record(st, s->cluster->st.upstream_cx_connect_ms,
                   (s->w->loop.now_ms - s->last_active_ms) * 1000);
    s->last_active_ms = s->w->loop.now_ms;
    rs_conn_read_start(s->up);
    rs_conn_read_start(s->down);
}

static bool try_connect(struct tcp_session *s)
{
    struct rs_host_ref pick;
    struct rs_endpoint od;
    const struct rs_endpoint *ep =
        rs_worker_pick_host_for(s->w, s->cluster, s->redirected ? &s->local : NULL, &od, &pick);
    if (!ep) {
        rs_stat_inc(s->w->stats, s->cluster->st.upstream_cx_none_healthy);
        s->flags |= RS_RF_UH;
        return false;
    }
    s->host = *ep;
    rs_host_ref_release(&s->href);
    if (pick.hs) rs_host_ref_take(&s->href, pick.hs, pick.idx);
    rs_host_stat_add(&s->href, s->w->id + 1, RS_HS_CX_TOTAL, 1);
    s->has_host = true;
    s->attempts++;
    int fd = rs_upstream_socket(s->cluster, ep->addr.ss_family);
    if (fd < 0) return false;
    s->up = rs_conn_new(&s->w->loop, fd, &up_handler, s);
    if (!s->up) return false;
    rs_conn_count_bytes(s->up, s->w->stats, s->cluster->st.upstream_cx_rx_bytes_total,
                        s->cluster->st.upstream_cx_tx_bytes_total);
    rs_stat_inc(s->w->stats, s->cluster->st.upstream_cx_total);
    s->last_active_ms = s->w->loop.now_ms;
    struct rs_tls_ctx *tls = rs_cluster_host_tls(s->cluster, ep);
    if (tls) {
        struct rs_tls_opts o = {.handshake_timeout_ms = s->cluster->connect_timeout_ms,
                                .shard = s->cluster->ssl_stats ? s->w->stats : NULL,
                                .stats = s->cluster->ssl};
        if (rs_tls_attach(s->up, tls, &o) != 0) return false;
    }
    rs_conn_connect(s->up, (const struct sockaddr *)&ep->addr, ep->addrlen,
                    s->cluster->connect_timeout_ms);
    return true;
}

static void drain(struct rs_session *link)
{
    (void)link; /* a TCP stream has no request boundary: it runs until the deadline */
}

static void kill_session(struct rs_session *link)
{
    session_end((struct tcp_session *)link);
}

static void snapshot_unref_cb(void *p)
{
    rs_snapshot_unref(p);
}

/* The listener was updated but this connection's filter chain did not change: the connection
 * carries on (its cluster is referenced by the session) under the new snapshot. */
static void rebind(struct rs_session *link, struct rs_filter_chain *fc, struct rs_snapshot *prev)
{
    struct tcp_session *s = (struct tcp_session *)link;
    if (s->fc->active_cx) {
        __atomic_sub_fetch(s->fc->active_cx, 1, __ATOMIC_RELAXED);
        rs_stat_dec(s->w->stats, s->fc->active_connections);
    }
    if (fc->active_cx) {
        __atomic_add_fetch(fc->active_cx, 1, __ATOMIC_RELAXED);
        rs_stat_inc(s->w->stats, fc->active_connections);
    }
    s->fc = link->fc = fc;
    s->cfg = fc->tcp;
    rs_worker_defer_free(s->w, snapshot_unref_cb, prev);
}

void rs_tcp_proxy_accept(struct rs_worker *w, const struct rs_accept *a)
{
    struct rs_filter_chain *fc = a->fc;
    const struct rs_tcp_cfg *cfg = fc->tcp;
    struct tcp_session *s = calloc(1, sizeof *s);
    if (!s) {
        rs_conn_close(a->conn);
        return;
    }
    s->w = w;
    s->fc = fc;
    s->peer = a->peer;
    s->local = a->local;
    s->redirected = a->redirected;
    s->cfg = cfg;
    s->start_us = now_us();
    s->start_ms = s->last_active_ms = w->loop.now_ms;
    s->link.drain = drain;
    s->link.kill = kill_session;
    s->link.rebind = rebind;
    s->idle.cb = on_idle;
    s->down = a->conn;
    rs_conn_set_handler(s->down, &down_handler, s);
    rs_worker_session_add(w, &s->link, a);
    rs_stat_inc(w->stats, cfg->st.downstream_cx_total);
    rs_conn_count_bytes(s->down, w->stats, cfg->st.downstream_cx_rx_bytes_total,
                        cfg->st.downstream_cx_tx_bytes_total);
    uint32_t pick = 0;
    if (cfg->nclusters > 1) {
        uint64_t r = rs_worker_rand(w) % cfg->total_weight, acc = 0;
        for (pick = 0; pick < cfg->nclusters - 1; pick++) {
            acc += cfg->weights[pick];
            if (r < acc) break;
        }
    }
    if (cfg->clusters[pick] == RS_CLUSTER_NONE) {
        /* xDS: the named cluster is not in the snapshot (Envoy: no route, close) */
        rs_stat_inc(w->stats, cfg->st.downstream_cx_no_route);
        session_end(s);
        return;
    }
    /* plaintext: the peer is known now, before the upstream connect and the first read */
    if (fc->nrbac && !fc->tls_ctx && rbac_denied(s)) {
        session_end(s);
        return;
    }
    s->cluster = w->snap->clusters[cfg->clusters[pick]];
    rs_cluster_ref(s->cluster); /* outlives the snapshot if the session moves to a newer one */
    if (cfg->idle_timeout_ms) rs_timer_arm(&w->loop, &s->idle, cfg->idle_timeout_ms);
    if (!try_connect(s)) {
        rs_stat_inc(w->stats, cfg->st.downstream_cx_no_route);
        session_end(s);
        return;
    }
    if (rs_worker_downstream_start(w, a, fc->nrbac ? down_handshake : NULL) != 0) session_end(s);
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
