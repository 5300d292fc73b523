/* The HTTP/2 connection under both the gRPC client and server: socket I/O through a transport,
 * nghttp2 driven with mem_recv/mem_send, deferred teardown; and gRPC's length-prefixed message
 * framing (send queue, reassembly), header copies and grpc-message percent-encoding. */
#include "xds/grpc_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define GRPC_READ_CHUNK 16384
#define GRPC_OUT_BATCH 65536
#define GRPC_MAX_HEADERS 64
#define GRPC_MAX_HEADER_BYTES 16384

const char *xds_grpc_status_name(int status)
{
    static const char *const names[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    if (status < 0 || status > XDS_GRPC_UNAUTHENTICATED) return "UNKNOWN";
    return names[status];
}

/* ---- transport ----------------------------------------------------------------------------- */

static ssize_t plain_read(struct grpc_conn *c, void *buf, size_t len)
{
    ssize_t n = read(c->fd, buf, len);
    return n < 0 ? -errno : n;
}

static ssize_t plain_write(struct grpc_conn *c, const void *buf, size_t len)
{
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    return n < 0 ? -errno : n;
}

const struct grpc_transport grpc_plain_transport = {plain_read, plain_write};

/* ---- connection ---------------------------------------------------------------------------- */

static void on_reap(xds_loop *loop, void *arg)
{
    (void)loop;
    struct grpc_conn *c = arg;
    c->reap_timer = NULL;
    c->reap(c);
}

void grpc_conn_fail(struct grpc_conn *c, int status, const char *fmt, ...)
{
    if (c->dead) return;
    c->dead = true;
    c->fail_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    if (c->fd >= 0) {
        xds_loop_unwatch(c->loop, c->fd);
        close(c->fd);
        c->fd = -1;
    }
    c->reap_timer = xds_loop_timer(c->loop, 0, on_reap, c);
    if (!c->reap_timer) abort(); /* out of memory on the control path */
}

void grpc_conn_release(struct grpc_conn *c)
{
    if (c->reap_timer) xds_loop_timer_cancel(c->loop, c->reap_timer);
    c->reap_timer = NULL;
    if (c->fd >= 0) {
        xds_loop_unwatch(c->loop, c->fd);
        close(c->fd);
        c->fd = -1;
    }
    if (c->h2) nghttp2_session_del(c->h2);
    c->h2 = NULL;
    free(c->out);
    c->out = NULL;
}

int grpc_conn_settings(struct grpc_conn *c)
{
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, XDS_GRPC_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GRPC_MAX_HEADER_BYTES},
    };
    int rv = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
                                                   XDS_GRPC_CONN_WINDOW);
    return rv;
}

static void set_interest(struct grpc_conn *c, bool want_write);
static void on_io(xds_loop *loop, int fd, unsigned events, void *arg);

int grpc_conn_start(struct grpc_conn *c)
{
    if (!c->tr) c->tr = &grpc_plain_transport;
    return xds_loop_watch(c->loop, c->fd, XDS_EV_READ | (c->connecting ? XDS_EV_WRITE : 0), on_io,
                          c);
}

static void set_interest(struct grpc_conn *c, bool want_write)
{
    if (c->dead) return;
    int rv =
        xds_loop_watch(c->loop, c->fd, XDS_EV_READ | (want_write ? XDS_EV_WRITE : 0), on_io, c);
    if (rv < 0) grpc_conn_fail(c, XDS_GRPC_UNAVAILABLE, "epoll: %s", strerror(-rv));
}

void grpc_conn_kick(struct grpc_conn *c)
{
    if (!c->dead && !c->connecting) set_interest(c, true);
}

static int out_append(struct grpc_conn *c, const uint8_t *p, size_t n)
{
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 16384;
        while (cap < c->out_len + n) cap *= 2;
        uint8_t *b = realloc(c->out, cap);
        if (!b) return -ENOMEM;
        c->out = b;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* Moves frames from nghttp2 to the socket until it would block or nothing is left; write
 * interest only while bytes wait. A session that wants neither to read nor write (GOAWAY
 * exchanged, or a fatal protocol error answered) is closed. */
static void conn_flush(struct grpc_conn *c)
{
    for (;;) {
        if (c->out_off < c->out_len) {
            ssize_t n = c->tr->write(c, c->out + c->out_off, c->out_len - c->out_off);
            if (n == -EAGAIN) break;
            if (n < 0) {
                grpc_conn_fail(c, XDS_GRPC_UNAVAILABLE, "write: %s", strerror((int)-n));
                return;
            }
            c->out_off += (size_t)n;
            continue;
        }
        const uint8_t *data;
        ssize_t n;
        while (c->out_len - c->out_off < GRPC_OUT_BATCH &&
               (n = nghttp2_session_mem_send(c->h2, &data)) != 0) {
            if (n < 0 || out_append(c, data, (size_t)n) < 0) {
                grpc_conn_fail(c, XDS_GRPC_INTERNAL, "http2 send: %s",
                               n < 0 ? nghttp2_strerror((int)n) : "out of memory");
                return;
            }
        }
        if (c->dead) return; /* a callback during mem_send failed the connection */
        if (c->out_off == c->out_len) break;
    }
    bool pending = c->out_off < c->out_len;
    if (!pending && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        grpc_conn_fail(c, XDS_GRPC_UNAVAILABLE, "connection closed (GOAWAY)");
        return;
    }
    set_interest(c, pending);
}

static void conn_read(struct grpc_conn *c)
{
    uint8_t buf[GRPC_READ_CHUNK];
    /* Bounded per event so one busy peer cannot hold the loop; epoll is level-triggered. */
    for (int i = 0; i < 16 && !c->dead; i++) {
        ssize_t n = c->tr->read(c, buf, sizeof buf);
        if (n == -EAGAIN) return;
        if (n <= 0) {
            grpc_conn_fail(c, XDS_GRPC_UNAVAILABLE, "%s",
                           n == 0 ? "connection closed by peer" : strerror((int)-n));
            return;
        }
        ssize_t rv = nghttp2_session_mem_recv(c->h2, buf, (size_t)n);
        if (rv < 0) {
            grpc_conn_fail(c, XDS_GRPC_UNAVAILABLE, "http2: %s", nghttp2_strerror((int)rv));
            return;
        }
    }
}

static void on_io(xds_loop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    struct grpc_conn *c = arg;
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == EINPROGRESS || (!err && !(events & (XDS_EV_WRITE | XDS_EV_ERROR)))) return;
        c->connecting = false;
        if (err || (events & XDS_EV_ERROR && !(events & XDS_EV_WRITE))) {
            grpc_conn_fail(c, XDS_GRPC_UNAVAILABLE, "connect: %s",
                           strerror(err ? err : ECONNREFUSED));
            return;
        }
        if (c->on_connected) c->on_connected(c);
        if (c->dead) return;
    }
    if (events & (XDS_EV_READ | XDS_EV_ERROR)) conn_read(c);
    if (!c->dead) conn_flush(c);
}

/* ---- message framing ----------------------------------------------------------------------- */

int grpc_tx_push(struct grpc_tx *tx, const void *msg, size_t len)
{
    if (len > UINT32_MAX) return -EMSGSIZE;
    if (tx->off == tx->len) tx->off = tx->len = 0;
    if (tx->off > tx->cap / 2) { /* reclaim the sent prefix before growing */
        memmove(tx->buf, tx->buf + tx->off, tx->len - tx->off);
        tx->len -= tx->off;
        tx->off = 0;
    }
    if (tx->len + 5 + len > tx->cap) {
        size_t cap = tx->cap ? tx->cap : 4096;
        while (cap < tx->len + 5 + len) cap *= 2;
        uint8_t *b = realloc(tx->buf, cap);
        if (!b) return -ENOMEM;
        tx->buf = b;
        tx->cap = cap;
    }
    uint8_t *p = tx->buf + tx->len;
    p[0] = 0; /* not compressed */
    p[1] = (uint8_t)(len >> 24);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 8);
    p[4] = (uint8_t)len;
    if (len) memcpy(p + 5, msg, len);
    tx->len += 5 + len;
    return 0;
}

size_t grpc_tx_pending(const struct grpc_tx *tx)
{
    return tx->len - tx->off;
}

ssize_t grpc_tx_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                     nghttp2_data_source *src, void *user)
{
    (void)user;
    struct grpc_tx *tx = src->ptr;
    size_t n = grpc_tx_pending(tx);
    if (n > len) n = len;
    memcpy(buf, tx->buf + tx->off, n);
    tx->off += n;
    if (grpc_tx_pending(tx) > 0) return (ssize_t)n;
    if (!tx->end) return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (tx->ntrailers) {
        /* Trailers end the stream instead of the last DATA frame. */
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        int rv = nghttp2_submit_trailer(s, id, tx->trailers, tx->ntrailers);
        if (rv < 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

void grpc_tx_free(struct grpc_tx *tx)
{
    free(tx->buf);
    tx->buf = NULL;
    tx->off = tx->len = tx->cap = 0;
}

static int rx_header(struct grpc_rx *rx, size_t max, char *err, size_t errlen)
{
    uint32_t len = (uint32_t)rx->hdr[1] << 24 | (uint32_t)rx->hdr[2] << 16 |
                   (uint32_t)rx->hdr[3] << 8 | rx->hdr[4];
    if (rx->hdr[0] != 0) {
        /* We never announce grpc-accept-encoding, so a compressed message is a peer error. */
        snprintf(err, errlen, "%s message (flags 0x%02x): no compression was negotiated",
                 rx->hdr[0] == 1 ? "compressed" : "bad", rx->hdr[0]);
        return XDS_GRPC_INTERNAL;
    }
    if (len > max) {
        snprintf(err, errlen, "received message larger than max (%u vs. %zu)", len, max);
        return XDS_GRPC_RESOURCE_EXHAUSTED;
    }
    rx->len = len;
    rx->got = 0;
    return XDS_GRPC_OK;
}

int grpc_rx_feed(struct grpc_rx *rx, const uint8_t *p, size_t n, size_t max, grpc_msg_fn fn,
                 void *ctx, char *err, size_t errlen)
{
    if (rx->failed) return XDS_GRPC_OK;
    while (n > 0 || (rx->hdr_got == 5 && rx->got == rx->len)) {
        if (rx->hdr_got < 5) {
            size_t take = 5 - rx->hdr_got < n ? 5 - rx->hdr_got : n;
            memcpy(rx->hdr + rx->hdr_got, p, take);
            rx->hdr_got += take, p += take, n -= take;
            if (rx->hdr_got < 5) break;
            int st = rx_header(rx, max, err, errlen);
            if (st != XDS_GRPC_OK) {
                rx->failed = true;
                return st;
            }
            continue;
        }
        size_t take = rx->len - rx->got < n ? rx->len - rx->got : n;
        if (rx->got + take > rx->cap) {
            /* Grow with what arrives, never to the declared length up front. */
            size_t cap = rx->cap ? rx->cap * 2 : 4096;
            if (cap < rx->got + take) cap = rx->got + take;
            if (cap > rx->len) cap = rx->len;
            uint8_t *b = realloc(rx->buf, cap);
            if (!b) {
                snprintf(err, errlen, "out of memory reassembling a message");
                rx->failed = true;
                return XDS_GRPC_RESOURCE_EXHAUSTED;
            }
            rx->buf = b;
            rx->cap = cap;
        }
        if (take) memcpy(rx->buf + rx->got, p, take);
        rx->got += take, p += take, n -= take;
        if (rx->got < rx->len) break;
        rx->hdr_got = 0;
        bool more = fn(ctx, rx->buf ? rx->buf : (const uint8_t *)"", rx->len);
        if (rx->cap > 262144) { /* do not hold a large buffer for a long-lived stream */
            free(rx->buf);
            rx->buf = NULL;
            rx->cap = 0;
        }
        if (!more) {
            rx->failed = true; /* the user closed the stream: ignore the rest */
            break;
        }
    }
    return XDS_GRPC_OK;
}

void grpc_rx_free(struct grpc_rx *rx)
{
    free(rx->buf);
    rx->buf = NULL;
    rx->cap = 0;
}

/* ---- headers ------------------------------------------------------------------------------- */

int grpc_md_add(struct grpc_mdlist *l, const uint8_t *name, size_t nlen, const uint8_t *value,
                size_t vlen)
{
    if (l->n >= GRPC_MAX_HEADERS || l->bytes + nlen + vlen > GRPC_MAX_HEADER_BYTES) return -E2BIG;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct xds_grpc_md *md = realloc(l->md, cap * sizeof *md);
        if (!md) return -ENOMEM;
        l->md = md;
        l->cap = cap;
    }
    char *s = malloc(nlen + vlen + 2);
    if (!s) return -ENOMEM;
    memcpy(s, name, nlen);
    s[nlen] = 0;
    memcpy(s + nlen + 1, value, vlen);
    s[nlen + 1 + vlen] = 0;
    l->md[l->n++] = (struct xds_grpc_md){.name = s, .value = s + nlen + 1};
    l->bytes += nlen + vlen;
    return 0;
}

const char *grpc_md_get(const struct grpc_mdlist *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->md[i].name, name) == 0) return l->md[i].value;
    return NULL;
}

void grpc_md_free(struct grpc_mdlist *l)
{
    for (size_t i = 0; i < l->n; i++) free((char *)l->md[i].name); /* value shares the block */
    free(l->md);
    *l = (struct grpc_mdlist){0};
}

char *grpc_pct_encode(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            *o++ = (char)*p;
        } else {
            o += sprintf(o, "%%%02X", *p);
        }
    }
    *o = 0;
    return out;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *grpc_pct_decode(const uint8_t *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        /* A malformed escape is kept as is, as the spec asks. */
        if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = (char)s[i];
        }
    }
    *o = 0;
    return out;
}
