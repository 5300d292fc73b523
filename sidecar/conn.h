/* Connections on the worker's ring: receive (multishot, into provided buffers), an output queue
 * of segments sent with sendmsg (zero-copy for large batches), connect with a linked timeout, and
 * a close that waits for the last completion before the slot and descriptor are reused.
 *
 * The protocol above (TCP proxy, HTTP) sees a connection through rs_conn_handler callbacks, which
 * are only ever called from completion dispatch, never from inside an rs_conn_* call. After
 * rs_conn_close() no callback is made and the caller must forget the pointer: the connection frees
 * itself when its last in-flight operation completes. */
#ifndef RS_CONN_H
#define RS_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "sidecar/loop.h"
#include "sidecar/stats.h"
#include "sidecar/transport.h"

struct rs_conn;

struct rs_conn_handler {
    /* Bytes received. They live in ring buffer `bid` (or bid < 0: a transport's own memory, valid
     * only during the call); keep them beyond the call with rs_buf_ref(). */
    void (*on_data)(struct rs_conn *c, int32_t bid, const char *data, size_t len);
    /* The peer closed its side (a zero-length read). */
    void (*on_eof)(struct rs_conn *c);
    /* The output queue fell to empty (after the peer accepted every queued byte). */
    void (*on_drained)(struct rs_conn *c);
    /* An outbound connect finished: err 0, -ETIMEDOUT (connect_timeout), or -errno. */
    void (*on_connected)(struct rs_conn *c, int err);
    /* A receive or send failed (reset, broken pipe). */
    void (*on_error)(struct rs_conn *c, int err);
    /* A listening connection accepted fd (or err < 0: the accept failed). */
    void (*on_accept)(struct rs_conn *c, int fd, int err);
};

/* A piece of output: bytes in a ring buffer (bid >= 0), owned heap memory (freed when sent: with
 * free(), or bid == RS_SEG_BLK: given back to the block cache), or static memory that outlives the
 * connection. */
#define RS_SEG_BLK (-2)
struct rs_seg {
    const char *p;
    uint32_t len;
    int32_t bid;
    void *heap;
};

struct rs_outq {
    struct rs_seg *segs;
    uint32_t head, count, cap; /* a ring of segments */
    uint64_t bytes;            /* queued, not yet accepted by the kernel */
};

enum rs_conn_flag {
    RS_CONN_RECV_ARMED = 1u << 0, /* a multishot receive is in flight */
    RS_CONN_WANT_READ = 1u << 1,  /* the protocol wants bytes */
    RS_CONN_SENDING = 1u << 2,    /* a send is in flight */
    RS_CONN_CLOSED = 1u << 3,     /* rs_conn_close() called */
    RS_CONN_CLOSE_AFTER_FLUSH = 1u << 4,
    RS_CONN_CONNECTING = 1u << 5,
    RS_CONN_EOF = 1u << 6,
    RS_CONN_NOBUF = 1u << 7,   /* waiting for ring buffers */
    RS_CONN_ZC_OFF = 1u << 8,  /* zero-copy sends were copied anyway (loopback): stop */
    RS_CONN_SHUT_WR = 1u << 9, /* shutdown(SHUT_WR) after the queue drains */
    RS_CONN_CANCEL_SENT = 1u << 10,
    RS_CONN_LISTENER = 1u << 11,
    RS_CONN_FLUSH_PENDING = 1u << 12, /* on the loop's flush list */
};

struct rs_conn {
    struct rs_loop *loop;
    const struct rs_conn_handler *h;
    void *owner;                   /* the protocol's session */
    const struct rs_transport *tp; /* plain by default */
    void *tp_state;
    int fd;
    uint32_t slot, gen;
    uint32_t flags;
    uint16_t inflight; /* submitted, not yet completed operations */
    uint16_t zc_inflight;
    struct rs_outq out;
    struct rs_conn *next_closing, *next_nobuf, *next_flush;
    struct iovec *iov; /* the in-flight send's vector (allocated while sending) */
    struct msghdr msg;
    struct __kernel_timespec connect_ts;
    struct sockaddr_storage peer; /* the address connected to (outbound) or accepted from */
    uint64_t zc_bytes;            /* bytes of the zero-copy send awaiting its notification */
    uint64_t rx_bytes, tx_bytes;
    struct rs_stats_shard *stats; /* byte counters updated as bytes move (Envoy's *_bytes_total) */
    uint32_t rx_stat, tx_stat;
    uint64_t id; /* connection id, as Envoy's %CONNECTION_ID% */
};

/* Creates a connection for an accepted or new socket fd (non-blocking), owned by `owner`. NULL on
 * out-of-memory (the fd is closed). */
struct rs_conn *rs_conn_new(struct rs_loop *loop, int fd, const struct rs_conn_handler *h,
                            void *owner);

/* Hands the connection to another protocol object (a listener's inspection stage passing it on
 * to the chosen filter chain's session). */
static inline void rs_conn_set_handler(struct rs_conn *c, const struct rs_conn_handler *h,
                                       void *owner)
{
    c->h = h;
    c->owner = owner;
}

/* Feeds bytes that were already received from the socket (by an earlier owner of the
 * connection) to its transport as if they had just arrived: bid is their ring buffer, held by the
 * caller for the call, or < 0 for memory valid during the call. Call from a completion or timer
 * callback, as the last thing: the protocol may close the connection inside. */
void rs_conn_inject(struct rs_conn *c, int32_t bid, const char *data, size_t len);

/* Counts received and sent socket bytes into two stats of a worker's shard as they move. */
void rs_conn_count_bytes(struct rs_conn *c, struct rs_stats_shard *shard, rs_stat_id rx,
                         rs_stat_id tx);

/* Puts a transport between the socket and the protocol (before any byte moves). */
void rs_conn_set_transport(struct rs_conn *c, const struct rs_transport *tp, void *state);

/* For transports: hands protocol bytes up (bid < 0: memory valid during the call only), reports
 * end of stream, and queues wire bytes for the socket. */
void rs_conn_deliver(struct rs_conn *c, int32_t bid, const char *data, size_t len);
void rs_conn_deliver_eof(struct rs_conn *c);
int rs_conn_queue_wire(struct rs_conn *c, struct rs_seg *seg);

/* Starts an outbound connect to addr with a linked timeout; on_connected reports the result. */
int rs_conn_connect(struct rs_conn *c, const struct sockaddr *addr, socklen_t len,
                    uint32_t timeout_ms);

/* Starts a multishot accept on a listening socket; re-armed by itself. */
void rs_conn_accept_start(struct rs_conn *c);

/* Starts or stops delivering received bytes. Stopping cancels the multishot receive; bytes already
 * in flight may still arrive once. */
void rs_conn_read_start(struct rs_conn *c);
void rs_conn_read_stop(struct rs_conn *c);

/* Queues output. rs_conn_write_buf takes a new reference on ring buffer bid; rs_conn_write_heap
 * takes ownership of p (malloc'd); rs_conn_write_copy copies. Returns -ENOMEM on failure (the
 * caller closes). Sending starts at the end of the loop turn if no send is in flight, so what a
 * turn queues (a response head and its body) leaves in one send. */
int rs_conn_write_buf(struct rs_conn *c, int32_t bid, const char *p, size_t len);
int rs_conn_write_heap(struct rs_conn *c, void *p, size_t len);
/* As rs_conn_write_heap for a block from rs_blk_get (returned to the cache once sent). */
int rs_conn_write_blk(struct rs_conn *c, void *blk, size_t len);
int rs_conn_write_copy(struct rs_conn *c, const void *p, size_t len);
int rs_conn_write_static(struct rs_conn *c, const void *p, size_t len);

static inline uint64_t rs_conn_queued(const struct rs_conn *c)
{
    return c->out.bytes;
}

/* Sends what is queued now, with one non-blocking sendmsg from the calling thread, as far as the
 * socket takes it: for the few bytes (a TLS alert) that must leave before a close that drops
 * the queue. No-op while a send or connect is in flight. */
void rs_conn_send_now(struct rs_conn *c);

/* Half-closes once everything queued has been sent: the transport ends its stream (TLS:
 * close_notify), then the FIN. */
void rs_conn_shutdown_write(struct rs_conn *c);
/* For transports: the FIN itself, after what is queued (and after a connect in flight). */
void rs_conn_shutdown_wire(struct rs_conn *c);

/* Closes now (queued output dropped) or after the queue drains. */
void rs_conn_close(struct rs_conn *c);
void rs_conn_close_after_flush(struct rs_conn *c);

/* Dispatches one completion that belongs to a connection slot (called by the loop). */
void rs_conn_dispatch(struct rs_loop *loop, struct io_uring_cqe *cqe);

/* Starts the sends of output queued during this loop turn (called by the loop once per turn). */
void rs_conn_flush_pending(struct rs_loop *loop);

/* Re-arms receives that stopped for lack of buffers (called by the loop when buffers return). */
void rs_conn_retry_nobuf(struct rs_loop *loop);

/* Frees connections whose last completion arrived (called by the loop after each batch). */
void rs_conn_reap(struct rs_loop *loop);
/* At teardown, once the loop has stopped for good (before rs_loop_destroy): frees every closing
 * connection, including those still waiting for completions that will now never be delivered
 * (a cancelled multishot recv, a send cut off by the stop). */
void rs_conn_reap_all(struct rs_loop *loop);

extern uint32_t rs_conn_zc_threshold; /* batches at least this large go out with SENDMSG_ZC */

#endif
