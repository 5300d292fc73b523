/* gRPC over HTTP/2 (h2c, nghttp2) for the xDS client and ringside-cp, on a small single-threaded
 * control-plane event loop (epoll), separate from the data plane's io_uring workers.
 *
 * Threading: every function here runs on the loop's thread, except xds_loop_post and
 * xds_loop_stop, which any thread may call.
 *
 * Callbacks: user callbacks are never called from inside the API call that causes them (a call
 * that fails at once reports it from the loop, later). Inside a callback a user may start, send
 * on, half-close, cancel or finish any call or stream, including the one the callback is about;
 * it must not free the client or server whose callback is running. */
#ifndef XDS_GRPC_H
#define XDS_GRPC_H

#include <stddef.h>
#include <stdint.h>

/* ---- event loop --------------------------------------------------------------------------- */

typedef struct xds_loop xds_loop;
typedef struct xds_timer xds_timer;

enum xds_loop_events {
    XDS_EV_READ = 1,  /* readable, or peer closed (read to see EOF) */
    XDS_EV_WRITE = 2, /* writable */
    XDS_EV_ERROR = 4, /* error or hang-up reported by the kernel (always watched) */
};

typedef void (*xds_fd_cb)(xds_loop *loop, int fd, unsigned events, void *arg);
typedef void (*xds_timer_cb)(xds_loop *loop, void *arg);
typedef void (*xds_post_fn)(void *arg);

/* A new loop, or NULL (errno set). Free it with xds_loop_free once run has returned. */
xds_loop *xds_loop_new(void);

/* Frees the loop. Watches are dropped (their fds are not closed), timers are dropped without
 * firing, posted functions not yet run are dropped. */
void xds_loop_free(xds_loop *loop);

/* Watches fd for `events` (XDS_EV_READ|XDS_EV_WRITE), calling cb with the events that fired.
 * Watching an fd already watched replaces its events, callback and argument. 0 or -errno. */
int xds_loop_watch(xds_loop *loop, int fd, unsigned events, xds_fd_cb cb, void *arg);

/* Stops watching fd (before the caller closes it). Safe from any callback; an event for fd
 * already collected in the current batch is not delivered. */
void xds_loop_unwatch(xds_loop *loop, int fd);

/* A one-shot timer firing after `ms` milliseconds (0: on the next turn). The handle is valid
 * until the timer fires or is cancelled. NULL only on out-of-memory. */
xds_timer *xds_loop_timer(xds_loop *loop, uint64_t ms, xds_timer_cb cb, void *arg);

/* Cancels a timer that has not fired yet (NULL is a no-op). */
void xds_loop_timer_cancel(xds_loop *loop, xds_timer *t);

/* Runs fn(arg) on the loop's thread, in the order posted. Thread-safe. 0 or -errno. */
int xds_loop_post(xds_loop *loop, xds_post_fn fn, void *arg);

/* Runs the loop on the calling thread until xds_loop_stop. 0, or -errno on an epoll failure. */
int xds_loop_run(xds_loop *loop);

/* Makes xds_loop_run return after the current turn. Thread-safe (also from a signal handler:
 * it only writes an eventfd). */
void xds_loop_stop(xds_loop *loop);

/* Monotonic milliseconds, as the loop's timers count them. */
uint64_t xds_loop_now_ms(void);

/* ---- common ------------------------------------------------------------------------------- */

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum xds_grpc_status {
    XDS_GRPC_OK = 0,
    XDS_GRPC_CANCELLED = 1,
    XDS_GRPC_UNKNOWN = 2,
    XDS_GRPC_INVALID_ARGUMENT = 3,
    XDS_GRPC_DEADLINE_EXCEEDED = 4,
    XDS_GRPC_NOT_FOUND = 5,
    XDS_GRPC_ALREADY_EXISTS = 6,
    XDS_GRPC_PERMISSION_DENIED = 7,
    XDS_GRPC_RESOURCE_EXHAUSTED = 8,
    XDS_GRPC_FAILED_PRECONDITION = 9,
    XDS_GRPC_ABORTED = 10,
    XDS_GRPC_OUT_OF_RANGE = 11,
    XDS_GRPC_UNIMPLEMENTED = 12,
    XDS_GRPC_INTERNAL = 13,
    XDS_GRPC_UNAVAILABLE = 14,
    XDS_GRPC_DATA_LOSS = 15,
    XDS_GRPC_UNAUTHENTICATED = 16,
};

/* "OK", "UNAVAILABLE", ... ("UNKNOWN" for a code out of range). */
const char *xds_grpc_status_name(int status);

/* One header (metadata entry). Names are lower-case. */
struct xds_grpc_md {
    const char *name;
    const char *value;
};

#define XDS_GRPC_DEFAULT_MAX_MSG (4u << 20)         /* received message limit: 4 MiB */
#define XDS_GRPC_DEFAULT_MAX_SEND_QUEUE (64u << 20) /* server stream send queue cap: 64 MiB */
#define XDS_GRPC_STREAM_WINDOW (1u << 20)           /* HTTP/2 initial stream window: 1 MiB */
#define XDS_GRPC_CONN_WINDOW (16u << 20)            /* HTTP/2 connection window: 16 MiB */

/* ---- client ------------------------------------------------------------------------------- */

typedef struct xds_grpc_client xds_grpc_client;
typedef struct xds_grpc_call xds_grpc_call;

struct xds_grpc_client_opts {
    /* "host:port", "1.2.3.4:port", "[::1]:port" (host resolved at each connect attempt), or
     * "unix:/path/to/socket" (Istio's agent serves xDS on a Unix socket). Required. */
    const char *target;
    const char *authority;  /* :authority; default the target's host:port, "localhost" for unix: */
    const char *user_agent; /* default "ringside-grpc/0.1" */
    /* A file holding a bearer token (e.g. Istio's istio-token). Re-read at each connect and sent
     * as "authorization: Bearer <token>" (surrounding whitespace removed); an unreadable file
     * fails the connect attempt with UNAUTHENTICATED. NULL: no authorization header. */
    const char *token_file;
    const struct xds_grpc_md *metadata; /* extra headers on every call (copied) */
    size_t n_metadata;
    size_t max_recv_msg;           /* 0: XDS_GRPC_DEFAULT_MAX_MSG */
    uint32_t connect_timeout_ms;   /* 0: 10,000 */
    uint32_t keepalive_ms;         /* PING every this many ms while connected; 0: off */
    uint32_t keepalive_timeout_ms; /* close if a PING is not acknowledged in time; 0: 20,000 */
};

struct xds_grpc_call_cbs {
    /* Response headers (initial metadata), once, before any message; may be NULL. Not called for
     * a Trailers-Only response. md is valid during the call only. */
    void (*on_headers)(xds_grpc_call *call, const struct xds_grpc_md *md, size_t n, void *user);
    /* One complete message (reassembled across DATA frames), valid during the call only. */
    void (*on_message)(xds_grpc_call *call, const uint8_t *msg, size_t len, void *user);
    /* The call is over: grpc-status and grpc-message (decoded; "" when absent) from the trailers
     * or a Trailers-Only response; a non-200 HTTP status mapped per the gRPC spec; UNAVAILABLE
     * when the connection failed or closed; RESOURCE_EXHAUSTED for a message over the limit;
     * INTERNAL for a compressed or malformed message. Called exactly once unless the user
     * cancelled; the call is freed when it returns. Required. */
    void (*on_close)(xds_grpc_call *call, int status, const char *message, void *user);
    /* The connection the call runs on is established: the server's HTTP/2 SETTINGS arrived
     * (before any response: a server may have nothing to send yet). Once per call, on a later
     * loop turn than call_start; may be NULL. */
    void (*on_ready)(xds_grpc_call *call, void *user);
};

/* A client for one target. It owns at most one HTTP/2 connection, opened when a call starts
 * and none is open; when that connection fails or closes, each of its calls is closed with
 * UNAVAILABLE and the next call opens a new one (reconnect policy and backoff are the caller's).
 * NULL on bad options (a malformed target) or out-of-memory. */
xds_grpc_client *xds_grpc_client_new(xds_loop *loop, const struct xds_grpc_client_opts *opts);

/* Closes the connection; each open call's on_close runs with CANCELLED first. Not from inside
 * one of this client's callbacks. */
void xds_grpc_client_free(xds_grpc_client *c);

/* Starts a streaming call to `method` ("/package.Service/Method"), with optional extra headers
 * for this call (copied). Returns the call (owned by the client) or NULL on out-of-memory or a
 * bad method. Failures after this point, including connect failures, arrive at on_close. */
xds_grpc_call *xds_grpc_call_start(xds_grpc_client *c, const char *method,
                                   const struct xds_grpc_md *md, size_t n_md,
                                   const struct xds_grpc_call_cbs *cbs, void *user);

/* Queues one message (copied, framed with the 5-byte gRPC header, uncompressed). 0, or -EPIPE
 * after half-close or once the call is closing, -EMSGSIZE over 4 GiB - 1, -ENOMEM. */
int xds_grpc_call_send(xds_grpc_call *call, const void *msg, size_t len);

/* Ends the sending side (END_STREAM after the queued messages). 0 or -EPIPE. */
int xds_grpc_call_half_close(xds_grpc_call *call);

/* Cancels the call (RST_STREAM CANCEL). on_close is not called; the call handle is invalid on
 * return. */
void xds_grpc_call_cancel(xds_grpc_call *call);

/* ---- server ------------------------------------------------------------------------------- */

typedef struct xds_grpc_server xds_grpc_server;
typedef struct xds_grpc_stream xds_grpc_stream;

struct xds_grpc_server_opts {
    size_t max_recv_msg;   /* 0: XDS_GRPC_DEFAULT_MAX_MSG */
    size_t max_send_queue; /* bytes queued per stream not yet taken by HTTP/2; 0: 64 MiB */
};

/* A method's handler. A stream ends for its handler exactly once: either the handler calls
 * xds_grpc_stream_finish, or on_cancel is called (peer reset, connection closed, a received
 * message over the limit or malformed, send queue over its cap, server freed). After either,
 * the handler must not use the stream. */
struct xds_grpc_handler {
    /* A new stream (request headers complete); set a user pointer here. Required. */
    void (*on_open)(xds_grpc_stream *s, void *arg);
    void (*on_message)(xds_grpc_stream *s, const uint8_t *msg, size_t len, void *arg);
    void (*on_half_close)(xds_grpc_stream *s, void *arg); /* client sent END_STREAM; optional */
    void (*on_cancel)(xds_grpc_stream *s, void *arg);     /* required */
};

/* A server on the loop; listen with the two functions below. NULL on out-of-memory. */
xds_grpc_server *xds_grpc_server_new(xds_loop *loop, const struct xds_grpc_server_opts *opts);

/* Closes listeners and connections; each open stream's on_cancel runs first. Unix socket paths
 * it listened on are unlinked. Not from inside one of this server's callbacks. */
void xds_grpc_server_free(xds_grpc_server *srv);

/* Listens on TCP ip:port ("0.0.0.0", "::", "127.0.0.1"...); port 0 picks one, reported in
 * *bound_port when non-NULL. 0 or -errno. */
int xds_grpc_server_listen_tcp(xds_grpc_server *srv, const char *ip, uint16_t port,
                               uint16_t *bound_port);

/* Listens on a Unix socket at path (a stale socket file there is unlinked first). 0 or -errno. */
int xds_grpc_server_listen_unix(xds_grpc_server *srv, const char *path);

/* Routes streams whose :path is `method` ("/package.Service/Method") to h (copied) with arg.
 * Unknown methods are answered UNIMPLEMENTED (Trailers-Only). 0, -EEXIST or -ENOMEM. */
int xds_grpc_server_register(xds_grpc_server *srv, const char *method,
                             const struct xds_grpc_handler *h, void *arg);

/* The first value of request header `name` (lower-case), or NULL. Valid while the stream is. */
const char *xds_grpc_stream_header(const xds_grpc_stream *s, const char *name);

/* All request headers (pseudo-headers included); *md valid while the stream is. */
size_t xds_grpc_stream_headers(const xds_grpc_stream *s, const struct xds_grpc_md **md);

/* The :path the stream was routed by, and the peer ("1.2.3.4:5678", "[::1]:5", "unix"). */
const char *xds_grpc_stream_method(const xds_grpc_stream *s);
const char *xds_grpc_stream_peer(const xds_grpc_stream *s);

void xds_grpc_stream_set_user(xds_grpc_stream *s, void *user);
void *xds_grpc_stream_user(const xds_grpc_stream *s);

/* Queues one message (copied; response headers go first, on the first send). 0, -EPIPE after
 * finish, -ENOMEM, or -ENOBUFS when the stream's unsent bytes would exceed max_send_queue (a
 * peer that does not read): the stream is then reset and on_cancel follows from the loop. */
int xds_grpc_stream_send(xds_grpc_stream *s, const void *msg, size_t len);

/* Ends the stream with trailers grpc-status/grpc-message (percent-encoded; message may be
 * NULL) after the queued messages, or Trailers-Only when nothing was sent. The handle is
 * invalid on return. 0 or -EPIPE when already ended. */
int xds_grpc_stream_finish(xds_grpc_stream *s, int status, const char *message);

#endif
