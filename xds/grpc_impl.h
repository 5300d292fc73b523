/* Private to the gRPC modules (grpc_conn.c, grpc_client.c, grpc_server.c): the HTTP/2
 * connection both sides share, gRPC message framing in both directions, header helpers. */
#ifndef XDS_GRPC_IMPL_H
#define XDS_GRPC_IMPL_H

#include "xds/grpc.h"

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>

/* Byte I/O under HTTP/2: plain sockets today; a TLS transport supplies its own pair. Both
 * return bytes moved, 0 on EOF (read), or -errno (-EAGAIN when the socket would block). */
struct grpc_conn;
struct grpc_transport {
    ssize_t (*read)(struct grpc_conn *c, void *buf, size_t len);
    ssize_t (*write)(struct grpc_conn *c, const void *buf, size_t len);
};
extern const struct grpc_transport grpc_plain_transport;

/* One HTTP/2 connection, embedded first in the client's and the server's connection. */
struct grpc_conn {
    xds_loop *loop;
    int fd;
    nghttp2_session *h2;
    const struct grpc_transport *tr;
    uint8_t *out; /* bytes taken from nghttp2, not yet written */
    size_t out_len, out_off, out_cap;
    bool connecting; /* client: non-blocking connect in progress */
    bool dead;       /* failed or closed: the owner's reap runs on the next turn */
    int fail_status; /* gRPC status given to its calls when it dies (UNAVAILABLE) */
    char why[160];
    xds_timer *reap_timer;
    void (*on_connected)(struct grpc_conn *c); /* client only */
    void (*reap)(struct grpc_conn *c);         /* owner frees its streams, then grpc_conn_free */
};

/* Starts watching c->fd (read, and write while connecting). 0 or -errno. */
int grpc_conn_start(struct grpc_conn *c);

/* Marks the connection dead with a reason (printf-style), stops its I/O and schedules the
 * owner's reap on the next loop turn. Idempotent: the first reason wins. */
void grpc_conn_fail(struct grpc_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Asks for a flush on the next loop turn (frames were submitted outside an I/O callback). */
void grpc_conn_kick(struct grpc_conn *c);

/* Frees the session, closes the fd, cancels timers of the connection itself (not c). */
void grpc_conn_release(struct grpc_conn *c);

/* Applies our SETTINGS and the connection window (XDS_GRPC_STREAM_WINDOW/CONN_WINDOW). */
int grpc_conn_settings(struct grpc_conn *c);

/* Outgoing messages of one stream, framed, served to nghttp2 by grpc_tx_read. When `end` is
 * set and everything is sent: END_STREAM, or the trailers when ntrailers > 0. */
struct grpc_tx {
    uint8_t *buf;
    size_t off, len, cap;
    bool end;
    nghttp2_nv trailers[2];
    size_t ntrailers;
};
int grpc_tx_push(struct grpc_tx *tx, const void *msg, size_t len);
size_t grpc_tx_pending(const struct grpc_tx *tx);
ssize_t grpc_tx_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                     nghttp2_data_source *src, void *user);
void grpc_tx_free(struct grpc_tx *tx);

/* Reassembly of incoming messages from DATA chunks. */
struct grpc_rx {
    uint8_t hdr[5];
    size_t hdr_got;
    uint8_t *buf;
    size_t len, got, cap;
    bool failed; /* framing error seen: the rest of the stream is ignored */
};
/* Called per complete message; returns false to stop delivering (stream closed by the user). */
typedef bool (*grpc_msg_fn)(void *ctx, const uint8_t *msg, size_t len);
/* Feeds bytes; returns XDS_GRPC_OK, or RESOURCE_EXHAUSTED (declared length over max) or
 * INTERNAL (compressed/unknown flag) with a reason in err. */
int grpc_rx_feed(struct grpc_rx *rx, const uint8_t *p, size_t n, size_t max, grpc_msg_fn fn,
                 void *ctx, char *err, size_t errlen);
void grpc_rx_free(struct grpc_rx *rx);

/* Owned copies of received headers. */
struct grpc_mdlist {
    struct xds_grpc_md *md;
    size_t n, cap, bytes;
};
int grpc_md_add(struct grpc_mdlist *l, const uint8_t *name, size_t nlen, const uint8_t *value,
                size_t vlen);
const char *grpc_md_get(const struct grpc_mdlist *l, const char *name);
void grpc_md_free(struct grpc_mdlist *l);

/* grpc-message percent-encoding (gRPC PROTOCOL-HTTP2.md): malloc'd results. */
char *grpc_pct_encode(const char *s);
char *grpc_pct_decode(const uint8_t *s, size_t len);

#define GRPC_NV(n, v)                                                                              \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE             \
    }

#endif
