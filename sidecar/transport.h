/* Transports: what sits between a connection's socket and the protocol above it.
 *
 * The plain transport passes bytes straight through (received ring buffers go to the protocol,
 * written segments go to the socket). TLS (the mutual-TLS work) plugs in behind the same four
 * calls: it feeds received records to BoringSSL, delivers the plaintext it gets back with
 * rs_conn_deliver() (in a ring buffer of the pool it took with rs_buf_alloc, or, with bid < 0,
 * its own memory valid during the call), and turns written
 * plaintext into wire segments with rs_conn_queue_wire(). TCP proxying, the HTTP codecs and the
 * router never know which transport a connection has. */
#ifndef RS_TRANSPORT_H
#define RS_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

struct rs_conn;
struct rs_seg;

struct rs_transport {
    const char *name;
    /* Wire bytes arrived in ring buffer bid. */
    void (*on_recv)(struct rs_conn *c, int32_t bid, const char *data, size_t len);
    /* The protocol wrote seg (ownership passes); returns 0 or -ENOMEM. */
    int (*write)(struct rs_conn *c, struct rs_seg *seg);
    /* The peer closed its side. */
    void (*on_eof)(struct rs_conn *c);
    /* The protocol half-closed (rs_conn_shutdown_write): the transport ends its own stream first
     * (TLS: close_notify, once a handshake still in flight is done, after the bytes it holds)
     * and then calls rs_conn_shutdown_wire. NULL: the FIN follows what is queued. */
    void (*shutdown)(struct rs_conn *c);
    /* Frees per-connection state (tp_state) when the connection is reaped; may be NULL. */
    void (*destroy)(struct rs_conn *c);
};

extern const struct rs_transport rs_transport_plain;

#endif
