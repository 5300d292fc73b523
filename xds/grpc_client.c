/* The gRPC client (xds_grpc_client_*, xds_grpc_call_* in grpc.h): one HTTP/2 connection per
 * client at a time, opened on demand, carrying streaming calls; keepalive PINGs; the status of
 * each call from trailers, a Trailers-Only response, the HTTP status, or the connection's fate. */
#include "xds/grpc_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct cconn;

struct xds_grpc_call {
    xds_grpc_client *client;
    struct cconn *conn;
    int32_t id;
    struct xds_grpc_call_cbs cbs;
    void *user;
    struct grpc_tx tx;
    struct grpc_rx rx;
    struct grpc_mdlist hdrs; /* response headers (initial metadata) */
    int http_status;
    int grpc_status; /* -1 until received */
    char *grpc_message;
    bool user_done; /* on_close delivered or the user cancelled */
    bool half_closed;
    bool in_trailers;       /* a second HEADERS frame: trailers */
    bool ready_sent;        /* on_ready delivered */
    xds_timer *ready_timer; /* on_ready for a call started on an established connection */
    int local_status;       /* set when we failed the call ourselves (oversize, bad framing) */
    char local_msg[160];
    struct xds_grpc_call *prev, *next;
};

struct cconn {
    struct grpc_conn c; /* first: the shared connection */
    xds_grpc_client *client;
    xds_grpc_call *calls;
    bool ready; /* the server's SETTINGS arrived */
    xds_timer *connect_timer, *ka_timer, *ka_deadline;
    struct addrinfo *ai, *ai_next; /* addresses of this attempt */
    struct cconn *prev, *next;
};

struct xds_grpc_client {
    xds_loop *loop;
    char *host, *port, *unix_path, *authority, *user_agent, *token_file;
    struct grpc_mdlist md;
    size_t max_msg;
    uint32_t connect_timeout_ms, keepalive_ms, keepalive_timeout_ms;
    struct cconn *current; /* the connection new calls go to, or NULL */
    struct cconn *conns;   /* all, including those draining or dead */
};

/* ---- calls ------------------------------------------------------------------------------- */

static void call_free(xds_grpc_call *call)
{
    struct cconn *cc = call->conn;
    xds_loop_timer_cancel(call->client->loop, call->ready_timer);
    if (call->prev)
        call->prev->next = call->next;
    else
        cc->calls = call->next;
    if (call->next) call->next->prev = call->prev;
    grpc_tx_free(&call->tx);
    grpc_rx_free(&call->rx);
    grpc_md_free(&call->hdrs);
    free(call->grpc_message);
    free(call);
}

static void call_deliver_close(xds_grpc_call *call, int status, const char *msg)
{
    if (call->user_done) return;
    call->user_done = true;
    call->cbs.on_close(call, status, msg ? msg : "", call->user);
}

/* gRPC's doc/http-grpc-status-mapping.md. */
static int status_from_http(int http)
{
    switch (http) {
    case 400:
        return XDS_GRPC_INTERNAL;
    case 401:
        return XDS_GRPC_UNAUTHENTICATED;
    case 403:
        return XDS_GRPC_PERMISSION_DENIED;
    case 404:
        return XDS_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return XDS_GRPC_UNAVAILABLE;
    default:
        return XDS_GRPC_UNKNOWN;
    }
}

static int status_from_rst(uint32_t code)
{
    switch (code) {
    case NGHTTP2_REFUSED_STREAM:
        return XDS_GRPC_UNAVAILABLE;
    case NGHTTP2_CANCEL:
        return XDS_GRPC_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return XDS_GRPC_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
        return XDS_GRPC_PERMISSION_DENIED;
    default:
        return XDS_GRPC_INTERNAL;
    }
}

/* The status a finished stream reports, in the spec's order of precedence. */
static void call_finish(xds_grpc_call *call, uint32_t rst_code)
{
    char buf[96];
    if (call->local_status) {
        call_deliver_close(call, call->local_status, call->local_msg);
    } else if (call->http_status && call->http_status != 200) {
        snprintf(buf, sizeof buf, "HTTP status %d", call->http_status);
        call_deliver_close(call, status_from_http(call->http_status), buf);
    } else if (call->grpc_status >= 0) {
        if (call->grpc_status == XDS_GRPC_OK && call->rx.hdr_got > 0)
            call_deliver_close(call, XDS_GRPC_INTERNAL, "stream ended inside a message");
        else
            call_deliver_close(call, call->grpc_status, call->grpc_message);
    } else if (rst_code != NGHTTP2_NO_ERROR) {
        snprintf(buf, sizeof buf, "stream reset by peer (%s)", nghttp2_http2_strerror(rst_code));
        call_deliver_close(call, status_from_rst(rst_code), buf);
    } else {
        call_deliver_close(call, XDS_GRPC_UNKNOWN, "stream ended without grpc-status");
    }
}

/* Fails one call from our side: report it, reset the stream. */
static void call_fail_local(xds_grpc_call *call, int status, const char *msg)
{
    call->local_status = status;
    snprintf(call->local_msg, sizeof call->local_msg, "%s", msg);
    call_deliver_close(call, status, msg);
    nghttp2_submit_rst_stream(call->conn->c.h2, NGHTTP2_FLAG_NONE, call->id, NGHTTP2_CANCEL);
}

/* ---- nghttp2 callbacks --------------------------------------------------------------------- */

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)flags;
    (void)user;
    xds_grpc_call *call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!call || f->hd.type != NGHTTP2_HEADERS) return 0;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        call->http_status = atoi((const char *)value);
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        char *end;
        long st = strtol((const char *)value, &end, 10);
        call->grpc_status =
            (end != (const char *)value && st >= 0 && st <= 16) ? (int)st : XDS_GRPC_UNKNOWN;
    } else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        free(call->grpc_message);
        call->grpc_message = grpc_pct_decode(value, vlen);
    } else if (!call->in_trailers && grpc_md_add(&call->hdrs, name, nlen, value, vlen) < 0) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* too many headers: reset the stream */
    }
    return 0;
}

static void ka_ack(struct cconn *cc);

static void call_ready(xds_grpc_call *call)
{
    if (call->ready_sent || call->user_done) return;
    call->ready_sent = true;
    if (call->cbs.on_ready) call->cbs.on_ready(call, call->user);
}

static void on_ready_timer(xds_loop *loop, void *arg)
{
    (void)loop;
    xds_grpc_call *call = arg;
    call->ready_timer = NULL;
    call_ready(call);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    struct cconn *cc = user;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK) && !cc->ready) {
        cc->ready = true;
        for (xds_grpc_call *call = cc->calls; call; call = call->next) call_ready(call);
    }
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK)) ka_ack(cc);
    /* After GOAWAY new calls need a new connection; this one finishes what it carries. */
    if (f->hd.type == NGHTTP2_GOAWAY && cc->client->current == cc) cc->client->current = NULL;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    xds_grpc_call *call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!call) return 0;
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        /* The server's side is complete: the call is over even if ours is still open, which
         * a reset then closes (RFC 9113 8.1: the request need not be completed). */
        call_finish(call, NGHTTP2_NO_ERROR);
        if (!call->half_closed || grpc_tx_pending(&call->tx))
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, call->id, NGHTTP2_CANCEL);
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS || call->in_trailers) return 0;
    call->in_trailers = true; /* the next HEADERS frame on this stream is the trailers */
    bool trailers_only = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (!trailers_only && call->http_status == 200 && call->cbs.on_headers && !call->user_done)
        call->cbs.on_headers(call, call->hdrs.md, call->hdrs.n, call->user);
    return 0;
}

static bool deliver_message(void *ctx, const uint8_t *msg, size_t len)
{
    xds_grpc_call *call = ctx;
    if (call->cbs.on_message) call->cbs.on_message(call, msg, len, call->user);
    return !call->user_done;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *user)
{
    (void)flags;
    (void)user;
    xds_grpc_call *call = nghttp2_session_get_stream_user_data(s, id);
    if (!call || call->user_done) return 0;
    char err[160];
    int st = grpc_rx_feed(&call->rx, data, len, call->client->max_msg, deliver_message, call, err,
                          sizeof err);
    if (st != XDS_GRPC_OK) call_fail_local(call, st, err);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    (void)user;
    xds_grpc_call *call = nghttp2_session_get_stream_user_data(s, id);
    if (!call) return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    call_finish(call, code);
    call_free(call);
    return 0;
}

/* ---- connection ---------------------------------------------------------------------------- */

static void cconn_reap(struct grpc_conn *c)
{
    struct cconn *cc = (struct cconn *)c;
    xds_grpc_client *client = cc->client;
    if (client->current == cc) client->current = NULL;
    xds_loop_timer_cancel(c->loop, cc->connect_timer);
    xds_loop_timer_cancel(c->loop, cc->ka_timer);
    xds_loop_timer_cancel(c->loop, cc->ka_deadline);
    /* Each call hears why; a callback may start calls, which go to a new connection. */
    while (cc->calls) {
        xds_grpc_call *call = cc->calls;
        call_deliver_close(call, c->fail_status, c->why);
        call_free(call);
    }
    grpc_conn_release(c);
    if (cc->ai) freeaddrinfo(cc->ai);
    if (cc->prev)
        cc->prev->next = cc->next;
    else
        client->conns = cc->next;
    if (cc->next) cc->next->prev = cc->prev;
    free(cc);
}

static void on_connect_timeout(xds_loop *loop, void *arg)
{
    (void)loop;
    struct cconn *cc = arg;
    cc->connect_timer = NULL;
    grpc_conn_fail(&cc->c, XDS_GRPC_UNAVAILABLE, "connect to %s timed out",
                   cc->client->unix_path ? cc->client->unix_path : cc->client->host);
}

static void on_ka_deadline(xds_loop *loop, void *arg)
{
    (void)loop;
    struct cconn *cc = arg;
    cc->ka_deadline = NULL;
    grpc_conn_fail(&cc->c, XDS_GRPC_UNAVAILABLE, "keepalive: no PING ACK within %u ms",
                   cc->client->keepalive_timeout_ms);
}

static void on_ka_timer(xds_loop *loop, void *arg)
{
    struct cconn *cc = arg;
    cc->ka_timer = xds_loop_timer(loop, cc->client->keepalive_ms, on_ka_timer, cc);
    if (cc->c.dead || cc->ka_deadline) return; /* one PING outstanding at a time */
    nghttp2_submit_ping(cc->c.h2, NGHTTP2_FLAG_NONE, NULL);
    cc->ka_deadline = xds_loop_timer(loop, cc->client->keepalive_timeout_ms, on_ka_deadline, cc);
    grpc_conn_kick(&cc->c);
}

static void ka_ack(struct cconn *cc)
{
    xds_loop_timer_cancel(cc->c.loop, cc->ka_deadline);
    cc->ka_deadline = NULL;
}

static int try_connect(struct cconn *cc);

static void on_connected(struct grpc_conn *c)
{
    struct cconn *cc = (struct cconn *)c;
    xds_loop_timer_cancel(c->loop, cc->connect_timer);
    cc->connect_timer = NULL;
    if (cc->client->keepalive_ms)
        cc->ka_timer = xds_loop_timer(c->loop, cc->client->keepalive_ms, on_ka_timer, cc);
}

/* Opens a non-blocking socket to the next address of this attempt. 0 or -errno. */
static int try_connect(struct cconn *cc)
{
    xds_grpc_client *client = cc->client;
    if (client->unix_path) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", client->unix_path);
        cc->c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (cc->c.fd < 0) return -errno;
        if (connect(cc->c.fd, (struct sockaddr *)&sun, sizeof sun) < 0 && errno != EINPROGRESS &&
            errno != EAGAIN)
            return -errno;
        cc->c.connecting = true;
        return 0;
    }
    int err = -EHOSTUNREACH;
    for (; cc->ai_next; cc->ai_next = cc->ai_next->ai_next) {
        struct addrinfo *a = cc->ai_next;
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
            cc->c.fd = fd;
            cc->c.connecting = true;
            cc->ai_next = a->ai_next;
            return 0;
        }
        err = -errno;
        close(fd);
    }
    return err;
}

static char *read_token(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = buf, *e = buf + n;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) e--;
    *e = 0;
    char *out = malloc(strlen(s) + 8);
    if (out) sprintf(out, "Bearer %s", s);
    return out;
}

static nghttp2_session_callbacks *client_callbacks(void)
{
    static nghttp2_session_callbacks *cbs;
    if (!cbs) {
        if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    }
    return cbs;
}

/* A new connection attempt. Failures before the socket is connecting leave it dead, so its
 * calls hear about it from the loop, never from inside xds_grpc_call_start. */
static struct cconn *cconn_open(xds_grpc_client *client, char **auth)
{
    struct cconn *cc = calloc(1, sizeof *cc);
    if (!cc) return NULL;
    cc->client = client;
    cc->c = (struct grpc_conn){.loop = client->loop,
                               .fd = -1,
                               .reap = cconn_reap,
                               .on_connected = on_connected,
                               .tr = &grpc_plain_transport};
    cc->next = client->conns;
    if (client->conns) client->conns->prev = cc;
    client->conns = cc;
    if (nghttp2_session_client_new(&cc->c.h2, client_callbacks(), cc) != 0 ||
        grpc_conn_settings(&cc->c) != 0) {
        grpc_conn_fail(&cc->c, XDS_GRPC_INTERNAL, "http2 session setup failed");
        return cc;
    }
    if (client->token_file && !(*auth = read_token(client->token_file))) {
        grpc_conn_fail(&cc->c, XDS_GRPC_UNAUTHENTICATED, "cannot read token file %s: %s",
                       client->token_file, strerror(errno));
        return cc;
    }
    if (!client->unix_path) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
        int rv = getaddrinfo(client->host, client->port, &hints, &cc->ai);
        if (rv != 0) {
            grpc_conn_fail(&cc->c, XDS_GRPC_UNAVAILABLE, "resolve %s: %s", client->host,
                           gai_strerror(rv));
            return cc;
        }
        cc->ai_next = cc->ai;
    }
    int rv = try_connect(cc);
    if (rv == 0) rv = grpc_conn_start(&cc->c);
    if (rv < 0) {
        grpc_conn_fail(&cc->c, XDS_GRPC_UNAVAILABLE, "connect to %s: %s",
                       client->unix_path ? client->unix_path : client->host, strerror(-rv));
        return cc;
    }
    cc->connect_timer =
        xds_loop_timer(client->loop, client->connect_timeout_ms, on_connect_timeout, cc);
    client->current = cc;
    return cc;
}

/* ---- public API ---------------------------------------------------------------------------- */

static int parse_target(xds_grpc_client *c, const char *t)
{
    if (strncmp(t, "unix:", 5) == 0) {
        if (!t[5] || strlen(t + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path)) return -1;
        c->unix_path = strdup(t + 5);
        return 0;
    }
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t || !colon[1]) return -1;
    const char *h = t, *he = colon;
    if (*h == '[') { /* [v6]:port */
        if (he[-1] != ']') return -1;
        h++, he--;
    }
    c->host = strndup(h, (size_t)(he - h));
    c->port = strdup(colon + 1);
    return 0;
}

xds_grpc_client *xds_grpc_client_new(xds_loop *loop, const struct xds_grpc_client_opts *o)
{
    xds_grpc_client *c = calloc(1, sizeof *c);
    if (!c || !o->target || parse_target(c, o->target) < 0) goto fail;
    c->loop = loop;
    c->authority = strdup(o->authority ? o->authority : c->unix_path ? "localhost" : o->target);
    c->user_agent = strdup(o->user_agent ? o->user_agent : "ringside-grpc/0.1");
    c->token_file = o->token_file ? strdup(o->token_file) : NULL;
    for (size_t i = 0; i < o->n_metadata; i++) {
        const struct xds_grpc_md *m = &o->metadata[i];
        if (grpc_md_add(&c->md, (const uint8_t *)m->name, strlen(m->name),
                        (const uint8_t *)m->value, strlen(m->value)) < 0)
            goto fail;
    }
    c->max_msg = o->max_recv_msg ? o->max_recv_msg : XDS_GRPC_DEFAULT_MAX_MSG;
    c->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 10000;
    c->keepalive_ms = o->keepalive_ms;
    c->keepalive_timeout_ms = o->keepalive_timeout_ms ? o->keepalive_timeout_ms : 20000;
    return c;
fail:
    xds_grpc_client_free(c);
    return NULL;
}

void xds_grpc_client_free(xds_grpc_client *c)
{
    if (!c) return;
    while (c->conns) {
        struct cconn *cc = c->conns;
        grpc_conn_fail(&cc->c, XDS_GRPC_CANCELLED, "client freed");
        cc->c.fail_status = XDS_GRPC_CANCELLED; /* even if it had died for another reason */
        cconn_reap(&cc->c);
    }
    grpc_md_free(&c->md);
    free(c->host), free(c->port), free(c->unix_path);
    free(c->authority), free(c->user_agent), free(c->token_file);
    free(c);
}

#define CALL_MAX_NV 64

xds_grpc_call *xds_grpc_call_start(xds_grpc_client *c, const char *method,
                                   const struct xds_grpc_md *md, size_t n_md,
                                   const struct xds_grpc_call_cbs *cbs, void *user)
{
    if (!method || method[0] != '/' || !cbs || !cbs->on_close) return NULL;
    if (8 + c->md.n + n_md > CALL_MAX_NV) return NULL;
    xds_grpc_call *call = calloc(1, sizeof *call);
    if (!call) return NULL;
    *call = (xds_grpc_call){.client = c, .cbs = *cbs, .user = user, .grpc_status = -1};
    char *auth = NULL;
    struct cconn *cc = c->current;
    if (!cc && !(cc = cconn_open(c, &auth))) {
        free(call);
        return NULL;
    }
    call->conn = cc;
    call->next = cc->calls;
    if (cc->calls) cc->calls->prev = call;
    cc->calls = call;
    if (cc->c.dead) return call; /* reaped on the next turn with the reason */

    nghttp2_nv nv[CALL_MAX_NV] = {
        GRPC_NV(":method", "POST"),
        GRPC_NV(":scheme", "http"),
        GRPC_NV(":path", method),
        GRPC_NV(":authority", c->authority),
        GRPC_NV("te", "trailers"),
        GRPC_NV("content-type", "application/grpc"),
        GRPC_NV("user-agent", c->user_agent),
    };
    size_t n = 7;
    if (auth) nv[n++] = (nghttp2_nv)GRPC_NV("authorization", auth);
    for (size_t i = 0; i < c->md.n + n_md; i++) {
        const struct xds_grpc_md *m = i < c->md.n ? &c->md.md[i] : &md[i - c->md.n];
        nv[n++] = (nghttp2_nv){(uint8_t *)m->name, (uint8_t *)m->value, strlen(m->name),
                               strlen(m->value), NGHTTP2_NV_FLAG_NONE};
    }
    nghttp2_data_provider dp = {.source.ptr = &call->tx, .read_callback = grpc_tx_read};
    call->id = nghttp2_submit_request(cc->c.h2, NULL, nv, n, &dp, call);
    free(auth);
    if (call->id < 0) {
        grpc_conn_fail(&cc->c, XDS_GRPC_UNAVAILABLE, "cannot start a stream: %s",
                       nghttp2_strerror(call->id));
        return call;
    }
    grpc_conn_kick(&cc->c);
    if (cc->ready) call->ready_timer = xds_loop_timer(c->loop, 0, on_ready_timer, call);
    return call;
}

static bool call_can_send(const xds_grpc_call *call)
{
    return !call->user_done && !call->half_closed && !call->conn->c.dead;
}

int xds_grpc_call_send(xds_grpc_call *call, const void *msg, size_t len)
{
    if (!call_can_send(call)) return -EPIPE;
    int rv = grpc_tx_push(&call->tx, msg, len);
    if (rv < 0) return rv;
    nghttp2_session_resume_data(call->conn->c.h2, call->id);
    grpc_conn_kick(&call->conn->c);
    return 0;
}

int xds_grpc_call_half_close(xds_grpc_call *call)
{
    if (!call_can_send(call)) return -EPIPE;
    call->half_closed = true;
    call->tx.end = true;
    nghttp2_session_resume_data(call->conn->c.h2, call->id);
    grpc_conn_kick(&call->conn->c);
    return 0;
}

void xds_grpc_call_cancel(xds_grpc_call *call)
{
    if (call->user_done) return;
    call->user_done = true;
    /* The call is freed when nghttp2 closes the stream, or with its dead connection. */
    if (!call->conn->c.dead && call->id > 0) {
        nghttp2_submit_rst_stream(call->conn->c.h2, NGHTTP2_FLAG_NONE, call->id, NGHTTP2_CANCEL);
        grpc_conn_kick(&call->conn->c);
    }
}
