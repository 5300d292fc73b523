/* The gRPC server (xds_grpc_server_*, xds_grpc_stream_* in grpc.h): TCP and Unix listeners,
 * HTTP/2 connections accepted on the loop, streams routed by :path to registered handlers,
 * long-lived bidirectional streams with a capped send queue. */
#include "xds/grpc_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct method {
    char *path;
    struct xds_grpc_handler h;
    void *arg;
    struct method *next;
};

struct listener {
    int fd;
    char *unix_path; /* unlinked when the server is freed */
    xds_grpc_server *srv;
    struct listener *next;
};

struct sconn {
    struct grpc_conn c; /* first: the shared connection */
    xds_grpc_server *srv;
    char peer[64];
    xds_grpc_stream *streams;
    struct sconn *prev, *next;
};

struct xds_grpc_stream {
    struct sconn *conn;
    int32_t id;
    const struct method *m; /* NULL until routed, and for unknown methods */
    struct grpc_mdlist hdrs;
    void *user;
    struct grpc_tx tx;
    struct grpc_rx rx;
    bool handler_done; /* finish called or on_cancel delivered */
    bool finished;     /* our side is closed (trailers queued, or reset) */
    bool resp_started;
    char status_str[12];
    char *message; /* percent-encoded grpc-message */
    xds_grpc_stream *prev, *next;
};

struct xds_grpc_server {
    xds_loop *loop;
    size_t max_msg, max_queue;
    struct method *methods;
    struct listener *listeners;
    struct sconn *conns;
};

/* ---- streams ------------------------------------------------------------------------------- */

static void stream_free(xds_grpc_stream *s)
{
    struct sconn *sc = s->conn;
    if (s->prev)
        s->prev->next = s->next;
    else
        sc->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    grpc_md_free(&s->hdrs);
    grpc_tx_free(&s->tx);
    grpc_rx_free(&s->rx);
    free(s->message);
    free(s);
}

static void stream_cancel(xds_grpc_stream *s)
{
    if (s->handler_done) return;
    s->handler_done = true;
    if (s->m) s->m->h.on_cancel(s, s->m->arg);
}

/* Queues the response headers with a data provider (once). */
static int stream_respond(xds_grpc_stream *s)
{
    if (s->resp_started) return 0;
    nghttp2_nv nv[] = {GRPC_NV(":status", "200"), GRPC_NV("content-type", "application/grpc")};
    nghttp2_data_provider dp = {.source.ptr = &s->tx, .read_callback = grpc_tx_read};
    int rv = nghttp2_submit_response(s->conn->c.h2, s->id, nv, 2, &dp);
    if (rv == 0) s->resp_started = true;
    return rv;
}

/* Closes our side with grpc-status (and grpc-message): trailers after the queued messages, or
 * Trailers-Only when nothing was sent. */
static void stream_end(xds_grpc_stream *s, int status, const char *message)
{
    s->finished = true;
    snprintf(s->status_str, sizeof s->status_str, "%d", status);
    s->message = message && *message ? grpc_pct_encode(message) : NULL;
    struct grpc_tx *tx = &s->tx;
    tx->trailers[0] = (nghttp2_nv)GRPC_NV("grpc-status", s->status_str);
    tx->ntrailers = 1;
    if (s->message) tx->trailers[tx->ntrailers++] = (nghttp2_nv)GRPC_NV("grpc-message", s->message);
    nghttp2_session *h2 = s->conn->c.h2;
    if (!s->resp_started) {
        nghttp2_nv nv[4] = {GRPC_NV(":status", "200"), GRPC_NV("content-type", "application/grpc"),
                            tx->trailers[0], tx->trailers[1]};
        s->resp_started = true;
        nghttp2_submit_response(h2, s->id, nv, 2 + tx->ntrailers, NULL);
    } else {
        tx->end = true;
        nghttp2_session_resume_data(h2, s->id);
    }
    grpc_conn_kick(&s->conn->c);
}

/* ---- nghttp2 callbacks --------------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    struct sconn *sc = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    xds_grpc_stream *s = calloc(1, sizeof *s);
    if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->conn = sc;
    s->id = f->hd.stream_id;
    s->next = sc->streams;
    if (sc->streams) sc->streams->prev = s;
    sc->streams = s;
    nghttp2_session_set_stream_user_data(h2, s->id, s);
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)flags;
    (void)user;
    xds_grpc_stream *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!s || s->m || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* trailers ignored */
    if (grpc_md_add(&s->hdrs, name, nlen, value, vlen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* too many headers: reset the stream */
    return 0;
}

static void on_request(xds_grpc_stream *s)
{
    const char *path = grpc_md_get(&s->hdrs, ":path");
    const char *ct = grpc_md_get(&s->hdrs, "content-type");
    const char *method = grpc_md_get(&s->hdrs, ":method");
    const struct method *m = s->conn->srv->methods;
    while (m && (!path || strcmp(m->path, path) != 0)) m = m->next;
    s->handler_done = true; /* until a handler owns it */
    if (!method || strcmp(method, "POST") != 0 || !ct || strncmp(ct, "application/grpc", 16) != 0) {
        /* Not gRPC: HTTP 415, as the gRPC spec asks for a bad content-type. */
        nghttp2_nv nv[] = {GRPC_NV(":status", "415")};
        s->finished = s->resp_started = true;
        nghttp2_submit_response(s->conn->c.h2, s->id, nv, 1, NULL);
        return;
    }
    if (!m) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown method %s", path ? path : "(none)");
        stream_end(s, XDS_GRPC_UNIMPLEMENTED, msg);
        return;
    }
    s->m = m;
    s->handler_done = false;
    m->h.on_open(s, m->arg);
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    (void)user;
    xds_grpc_stream *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!s) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) on_request(s);
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !s->handler_done && s->m->h.on_half_close)
        s->m->h.on_half_close(s, s->m->arg);
    return 0;
}

static bool deliver_message(void *ctx, const uint8_t *msg, size_t len)
{
    xds_grpc_stream *s = ctx;
    if (s->m->h.on_message) s->m->h.on_message(s, msg, len, s->m->arg);
    return !s->handler_done;
}

static int on_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *user)
{
    (void)flags;
    struct sconn *sc = user;
    xds_grpc_stream *s = nghttp2_session_get_stream_user_data(h2, id);
    if (!s || s->handler_done) return 0;
    char err[160];
    int st = grpc_rx_feed(&s->rx, data, len, sc->srv->max_msg, deliver_message, s, err, sizeof err);
    if (st != XDS_GRPC_OK) {
        /* The handler hears a cancel; the client hears why in the trailers. */
        stream_cancel(s);
        if (!s->finished) stream_end(s, st, err);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
    (void)code;
    (void)user;
    xds_grpc_stream *s = nghttp2_session_get_stream_user_data(h2, id);
    if (!s) return 0;
    nghttp2_session_set_stream_user_data(h2, id, NULL);
    stream_cancel(s);
    stream_free(s);
    return 0;
}

static nghttp2_session_callbacks *server_callbacks(void)
{
    static nghttp2_session_callbacks *cbs;
    if (!cbs) {
        if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    }
    return cbs;
}

/* ---- connections --------------------------------------------------------------------------- */

static void sconn_reap(struct grpc_conn *c)
{
    struct sconn *sc = (struct sconn *)c;
    while (sc->streams) {
        xds_grpc_stream *s = sc->streams;
        stream_cancel(s);
        stream_free(s);
    }
    grpc_conn_release(c);
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        sc->srv->conns = sc->next;
    if (sc->next) sc->next->prev = sc->prev;
    free(sc);
}

static void peer_name(int fd, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    snprintf(out, len, "unix");
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, len, "%s:%u", ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, len, "[%s]:%u", ip, ntohs(a->sin6_port));
    }
}

static void on_accept(xds_loop *loop, int lfd, unsigned events, void *arg)
{
    (void)events;
    struct listener *l = arg;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or a transient error (EMFILE...): retried on next event */
        struct sconn *sc = calloc(1, sizeof *sc);
        if (!sc) {
            close(fd);
            return;
        }
        sc->srv = l->srv;
        sc->c = (struct grpc_conn){
            .loop = loop, .fd = fd, .reap = sconn_reap, .tr = &grpc_plain_transport};
        peer_name(fd, sc->peer, sizeof sc->peer);
        sc->next = l->srv->conns;
        if (l->srv->conns) l->srv->conns->prev = sc;
        l->srv->conns = sc;
        if (nghttp2_session_server_new(&sc->c.h2, server_callbacks(), sc) != 0 ||
            grpc_conn_settings(&sc->c) != 0 || grpc_conn_start(&sc->c) < 0) {
            grpc_conn_fail(&sc->c, XDS_GRPC_INTERNAL, "http2 session setup failed");
            continue;
        }
        grpc_conn_kick(&sc->c); /* our SETTINGS */
    }
}

/* ---- public API ---------------------------------------------------------------------------- */

xds_grpc_server *xds_grpc_server_new(xds_loop *loop, const struct xds_grpc_server_opts *o)
{
    xds_grpc_server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    srv->loop = loop;
    srv->max_msg = o && o->max_recv_msg ? o->max_recv_msg : XDS_GRPC_DEFAULT_MAX_MSG;
    srv->max_queue = o && o->max_send_queue ? o->max_send_queue : XDS_GRPC_DEFAULT_MAX_SEND_QUEUE;
    return srv;
}

void xds_grpc_server_free(xds_grpc_server *srv)
{
    if (!srv) return;
    while (srv->conns) sconn_reap(&srv->conns->c);
    while (srv->listeners) {
        struct listener *l = srv->listeners;
        srv->listeners = l->next;
        xds_loop_unwatch(srv->loop, l->fd);
        close(l->fd);
        if (l->unix_path) unlink(l->unix_path);
        free(l->unix_path);
        free(l);
    }
    while (srv->methods) {
        struct method *m = srv->methods;
        srv->methods = m->next;
        free(m->path);
        free(m);
    }
    free(srv);
}

static int add_listener(xds_grpc_server *srv, int fd, const char *unix_path)
{
    struct listener *l = calloc(1, sizeof *l);
    int rv = l ? 0 : -ENOMEM;
    if (l && listen(fd, 128) < 0) rv = -errno;
    if (rv == 0) {
        *l = (struct listener){.fd = fd, .srv = srv, .next = srv->listeners};
        rv = xds_loop_watch(srv->loop, fd, XDS_EV_READ, on_accept, l);
    }
    if (rv < 0) {
        free(l);
        close(fd);
        return rv;
    }
    l->unix_path = unix_path ? strdup(unix_path) : NULL;
    srv->listeners = l;
    return 0;
}

int xds_grpc_server_listen_tcp(xds_grpc_server *srv, const char *ip, uint16_t port,
                               uint16_t *bound_port)
{
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET, a4->sin_port = htons(port), sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6, a6->sin6_port = htons(port), sl = sizeof *a6;
    } else {
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* inherited by accepted sockets */
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    if (bound_port) *bound_port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    return add_listener(srv, fd, NULL);
}

int xds_grpc_server_listen_unix(xds_grpc_server *srv, const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path) return -ENAMETOOLONG;
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    unlink(path); /* a stale socket left by a previous run */
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return add_listener(srv, fd, path);
}

int xds_grpc_server_register(xds_grpc_server *srv, const char *method,
                             const struct xds_grpc_handler *h, void *arg)
{
    for (struct method *m = srv->methods; m; m = m->next)
        if (strcmp(m->path, method) == 0) return -EEXIST;
    struct method *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(method))) {
        free(m);
        return -ENOMEM;
    }
    m->h = *h;
    m->arg = arg;
    m->next = srv->methods;
    srv->methods = m;
    return 0;
}

const char *xds_grpc_stream_header(const xds_grpc_stream *s, const char *name)
{
    return grpc_md_get(&s->hdrs, name);
}

size_t xds_grpc_stream_headers(const xds_grpc_stream *s, const struct xds_grpc_md **md)
{
    *md = s->hdrs.md;
    return s->hdrs.n;
}

const char *xds_grpc_stream_method(const xds_grpc_stream *s)
{
    return s->m->path;
}

const char *xds_grpc_stream_peer(const xds_grpc_stream *s)
{
    return s->conn->peer;
}

void xds_grpc_stream_set_user(xds_grpc_stream *s, void *user)
{
    s->user = user;
}

void *xds_grpc_stream_user(const xds_grpc_stream *s)
{
    return s->user;
}

int xds_grpc_stream_send(xds_grpc_stream *s, const void *msg, size_t len)
{
    if (s->finished || s->conn->c.dead) return -EPIPE;
    if (grpc_tx_pending(&s->tx) + 5 + len > s->conn->srv->max_queue) {
        /* A peer that does not read: stop queueing, reset; on_cancel follows from the loop. */
        s->finished = true;
        nghttp2_submit_rst_stream(s->conn->c.h2, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_ENHANCE_YOUR_CALM);
        grpc_conn_kick(&s->conn->c);
        return -ENOBUFS;
    }
    int rv = grpc_tx_push(&s->tx, msg, len);
    if (rv < 0) return rv;
    if (s->resp_started)
        nghttp2_session_resume_data(s->conn->c.h2, s->id);
    else if (stream_respond(s) != 0)
        return -EPIPE;
    grpc_conn_kick(&s->conn->c);
    return 0;
}

int xds_grpc_stream_finish(xds_grpc_stream *s, int status, const char *message)
{
    if (s->handler_done) return -EPIPE;
    s->handler_done = true;
    if (!s->finished && !s->conn->c.dead) stream_end(s, status, message);
    return 0;
}
