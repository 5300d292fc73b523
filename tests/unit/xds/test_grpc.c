/* gRPC over HTTP/2: the event loop, framing edge cases (split across frames and byte by byte,
 * many messages in one frame, oversized, compressed flag), and an in-process client against an
 * in-process server over loopback TCP and a Unix socket: round trips, statuses, cancel,
 * connect failure, keepalive timeout, bearer token, send-queue cap on a peer that never reads. */
#include "test.h"
#include "xds/grpc.h"
#include "xds/grpc_impl.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define ECHO "/test.Echo/Stream"

static xds_loop *loop;

/* ---- helpers ------------------------------------------------------------------------------- */

struct waiter {
    bool (*done)(void *);
    void *arg;
    uint64_t deadline;
    bool timed_out;
};

static void on_poll(xds_loop *l, void *arg)
{
    struct waiter *w = arg;
    if (w->done(w->arg)) {
        xds_loop_stop(l);
    } else if (xds_loop_now_ms() > w->deadline) {
        w->timed_out = true;
        xds_loop_stop(l);
    } else {
        xds_loop_timer(l, 2, on_poll, w);
    }
}

/* Runs the loop until done(arg) or 5 s; true if done. */
static bool run_until(bool (*done)(void *), void *arg)
{
    struct waiter w = {done, arg, xds_loop_now_ms() + 5000, false};
    xds_loop_timer(loop, 0, on_poll, &w);
    xds_loop_run(loop);
    return !w.timed_out;
}

/* A client call's record. */
struct rec {
    int nmsg;
    size_t bytes;
    uint8_t *last;
    size_t last_len;
    bool headers, closed;
    int status;
    char message[256];
};

static void rec_headers(xds_grpc_call *c, const struct xds_grpc_md *md, size_t n, void *u)
{
    (void)c, (void)md, (void)n;
    ((struct rec *)u)->headers = true;
}

static void rec_message(xds_grpc_call *c, const uint8_t *msg, size_t len, void *u)
{
    (void)c;
    struct rec *r = u;
    r->nmsg++;
    r->bytes += len;
    free(r->last);
    r->last = malloc(len + 1);
    memcpy(r->last, msg, len);
    r->last[len] = 0;
    r->last_len = len;
}

static void rec_close(xds_grpc_call *c, int status, const char *msg, void *u)
{
    (void)c;
    struct rec *r = u;
    r->closed = true;
    r->status = status;
    snprintf(r->message, sizeof r->message, "%s", msg);
}

static const struct xds_grpc_call_cbs rec_cbs = {
    .on_headers = rec_headers, .on_message = rec_message, .on_close = rec_close};

static bool rec_closed(void *u)
{
    return ((struct rec *)u)->closed;
}

/* The echo server: each message back; on half-close, finish with the status the first message
 * asks for ("status:N:msg"); "auth" answers the authorization header. Counts cancels. */
static int cancels, opens;

static void echo_open(xds_grpc_stream *s, void *arg)
{
    (void)s, (void)arg;
    opens++;
}

static void echo_message(xds_grpc_stream *s, const uint8_t *msg, size_t len, void *arg)
{
    (void)arg;
    if (len > 7 && memcmp(msg, "status:", 7) == 0) {
        char buf[256];
        snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)msg);
        xds_grpc_stream_finish(s, atoi(buf + 7), strchr(buf + 7, ':') + 1);
        return;
    }
    if (len == 4 && memcmp(msg, "auth", 4) == 0) {
        const char *a = xds_grpc_stream_header(s, "authorization");
        xds_grpc_stream_send(s, a ? a : "none", a ? strlen(a) : 4);
        return;
    }
    if (len == 5 && memcmp(msg, "flood", 5) == 0) {
        static uint8_t chunk[16384];
        for (int i = 0; i < 1000; i++)
            if (xds_grpc_stream_send(s, chunk, sizeof chunk) == -ENOBUFS) return;
        return;
    }
    xds_grpc_stream_send(s, msg, len);
}

static void echo_half_close(xds_grpc_stream *s, void *arg)
{
    (void)arg;
    xds_grpc_stream_finish(s, XDS_GRPC_OK, NULL);
}

static void echo_cancel(xds_grpc_stream *s, void *arg)
{
    (void)s, (void)arg;
    cancels++;
}

static const struct xds_grpc_handler echo = {echo_open, echo_message, echo_half_close, echo_cancel};

static xds_grpc_server *start_server(uint16_t *port, const char *unix_path, size_t max_msg,
                                     size_t max_queue)
{
    struct xds_grpc_server_opts o = {.max_recv_msg = max_msg, .max_send_queue = max_queue};
    xds_grpc_server *srv = xds_grpc_server_new(loop, &o);
    CHECK(srv != NULL);
    CHECK_EQ_INT(xds_grpc_server_register(srv, ECHO, &echo, NULL), 0);
    CHECK_EQ_INT(xds_grpc_server_register(srv, ECHO, &echo, NULL), -EEXIST);
    if (port) CHECK_EQ_INT(xds_grpc_server_listen_tcp(srv, "127.0.0.1", 0, port), 0);
    if (unix_path) CHECK_EQ_INT(xds_grpc_server_listen_unix(srv, unix_path), 0);
    cancels = opens = 0;
    return srv;
}

static xds_grpc_client *client_for(uint16_t port, size_t max_msg)
{
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%u", port);
    struct xds_grpc_client_opts o = {.target = target, .max_recv_msg = max_msg};
    xds_grpc_client *c = xds_grpc_client_new(loop, &o);
    CHECK(c != NULL);
    return c;
}

/* ---- framing ------------------------------------------------------------------------------- */

static int fed;
static size_t fed_len[16];
static bool count_msg(void *ctx, const uint8_t *m, size_t len)
{
    (void)ctx, (void)m;
    if (fed < 16) fed_len[fed] = len;
    fed++;
    return true;
}

static void test_rx_split_and_batched(void)
{
    struct grpc_tx tx = {0};
    uint8_t big[70000];
    memset(big, 'x', sizeof big);
    grpc_tx_push(&tx, "hello", 5);
    grpc_tx_push(&tx, "", 0);
    grpc_tx_push(&tx, big, sizeof big);
    grpc_tx_push(&tx, "z", 1);
    char err[128];
    /* Byte by byte: every header and body split at every point. */
    struct grpc_rx rx = {0};
    fed = 0;
    for (size_t i = 0; i < tx.len; i++)
        CHECK_EQ_INT(grpc_rx_feed(&rx, tx.buf + i, 1, 1 << 20, count_msg, NULL, err, sizeof err),
                     0);
    CHECK_EQ_INT(fed, 4);
    CHECK_EQ_INT(fed_len[0], 5);
    CHECK_EQ_INT(fed_len[1], 0);
    CHECK_EQ_INT(fed_len[2], sizeof big);
    CHECK_EQ_INT(fed_len[3], 1);
    grpc_rx_free(&rx);
    /* All four in one chunk. */
    rx = (struct grpc_rx){0};
    fed = 0;
    CHECK_EQ_INT(grpc_rx_feed(&rx, tx.buf, tx.len, 1 << 20, count_msg, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(fed, 4);
    grpc_rx_free(&rx);
    grpc_tx_free(&tx);
}

static void test_rx_oversized_and_compressed(void)
{
    char err[128];
    struct grpc_rx rx = {0};
    /* Declares 4 GiB - 1: refused from the header alone, nothing allocated. */
    const uint8_t huge[5] = {0, 0xff, 0xff, 0xff, 0xff};
    fed = 0;
    CHECK_EQ_INT(grpc_rx_feed(&rx, huge, 5, 1 << 20, count_msg, NULL, err, sizeof err),
                 XDS_GRPC_RESOURCE_EXHAUSTED);
    CHECK(strstr(err, "larger than max") != NULL);
    CHECK(rx.buf == NULL);
    /* Later bytes are ignored once failed. */
    CHECK_EQ_INT(
        grpc_rx_feed(&rx, (const uint8_t *)"abc", 3, 1 << 20, count_msg, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(fed, 0);
    grpc_rx_free(&rx);
    rx = (struct grpc_rx){0};
    const uint8_t compressed[6] = {1, 0, 0, 0, 1, 'a'};
    CHECK_EQ_INT(grpc_rx_feed(&rx, compressed, 6, 1 << 20, count_msg, NULL, err, sizeof err),
                 XDS_GRPC_INTERNAL);
    CHECK(strstr(err, "compressed") != NULL);
    CHECK_EQ_INT(fed, 0);
    grpc_rx_free(&rx);
}

static void test_pct_encoding(void)
{
    char *e = grpc_pct_encode("a b%c\n\xc3\xa9");
    CHECK_STR(e, "a b%25c%0A%C3%A9");
    char *d = grpc_pct_decode((const uint8_t *)e, strlen(e));
    CHECK_STR(d, "a b%c\n\xc3\xa9");
    free(e), free(d);
    d = grpc_pct_decode((const uint8_t *)"100%", 4); /* malformed escape kept */
    CHECK_STR(d, "100%");
    free(d);
}

/* ---- loop ---------------------------------------------------------------------------------- */

static int order[4], norder;
static void mark(xds_loop *l, void *arg)
{
    (void)l;
    order[norder++] = (int)(intptr_t)arg;
}
static void posted(void *arg)
{
    order[norder++] = (int)(intptr_t)arg;
    xds_loop_stop(loop);
}
static void *poster(void *arg)
{
    (void)arg;
    xds_loop_post(loop, posted, (void *)(intptr_t)9);
    return NULL;
}
static bool got3(void *a)
{
    (void)a;
    return norder >= 3;
}

static void test_loop_timers_and_post(void)
{
    norder = 0;
    xds_loop_timer(loop, 20, mark, (void *)2);
    xds_loop_timer(loop, 1, mark, (void *)1);
    xds_timer *t = xds_loop_timer(loop, 5, mark, (void *)7);
    xds_loop_timer_cancel(loop, t);
    xds_loop_timer(loop, 30, mark, (void *)3);
    CHECK(run_until(got3, NULL));
    CHECK_EQ_INT(norder, 3);
    CHECK_EQ_INT(order[0], 1);
    CHECK_EQ_INT(order[1], 2);
    CHECK_EQ_INT(order[2], 3);
    /* A post from another thread runs on the loop and stops it. */
    norder = 0;
    pthread_t th;
    pthread_create(&th, NULL, poster, NULL);
    CHECK_EQ_INT(xds_loop_run(loop), 0);
    pthread_join(th, NULL);
    CHECK_EQ_INT(norder, 1);
    CHECK_EQ_INT(order[0], 9);
}

/* ---- client against server ----------------------------------------------------------------- */

static void roundtrip(xds_grpc_client *c)
{
    struct rec r = {0};
    xds_grpc_call *call = xds_grpc_call_start(c, ECHO, NULL, 0, &rec_cbs, &r);
    CHECK(call != NULL);
    /* 3 MiB crosses many DATA frames and the 1 MiB stream window; 50 small ones share frames. */
    size_t big = 3u << 20;
    uint8_t *buf = malloc(big);
    for (size_t i = 0; i < big; i++) buf[i] = (uint8_t)(i * 7);
    CHECK_EQ_INT(xds_grpc_call_send(call, buf, big), 0);
    for (int i = 0; i < 50; i++) CHECK_EQ_INT(xds_grpc_call_send(call, "m", 1), 0);
    CHECK_EQ_INT(xds_grpc_call_send(call, "", 0), 0);
    CHECK_EQ_INT(xds_grpc_call_half_close(call), 0);
    CHECK_EQ_INT(xds_grpc_call_send(call, "late", 4), -EPIPE);
    CHECK(run_until(rec_closed, &r));
    CHECK_EQ_INT(r.status, XDS_GRPC_OK);
    CHECK(r.headers);
    CHECK_EQ_INT(r.nmsg, 52);
    CHECK_EQ_INT(r.bytes, big + 50);
    CHECK_EQ_INT(r.last_len, 0);
    free(buf);
    free(r.last);
}

static void test_roundtrip_tcp(void)
{
    uint16_t port = 0;
    xds_grpc_server *srv = start_server(&port, NULL, 0, 0);
    CHECK(port != 0);
    xds_grpc_client *c = client_for(port, 0);
    roundtrip(c);
    roundtrip(c); /* a second call on the same connection */
    CHECK_EQ_INT(opens, 2);
    CHECK_EQ_INT(cancels, 0);
    xds_grpc_client_free(c);
    xds_grpc_server_free(srv);
}

static void test_roundtrip_unix(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/rs-grpc-test-%d.sock", getpid());
    /* A stale file at the path is replaced. */
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    xds_grpc_server *srv = start_server(NULL, path, 0, 0);
    char target[80];
    snprintf(target, sizeof target, "unix:%s", path);
    xds_grpc_client *c =
        xds_grpc_client_new(loop, &(struct xds_grpc_client_opts){.target = target});
    roundtrip(c);
    xds_grpc_client_free(c);
    xds_grpc_server_free(srv);
    CHECK(access(path, F_OK) != 0); /* unlinked by server_free */
}

static void one_call(xds_grpc_client *c, const char *method, const char *msg, size_t len,
                     struct rec *r)
{
    xds_grpc_call *call = xds_grpc_call_start(c, method, NULL, 0, &rec_cbs, r);
    CHECK(call != NULL);
    if (msg) xds_grpc_call_send(call, msg, len);
    CHECK(run_until(rec_closed, r));
}

static void test_statuses(void)
{
    uint16_t port;
    xds_grpc_server *srv = start_server(&port, NULL, 0, 0);
    xds_grpc_client *c = client_for(port, 0);
    struct rec r = {0};
    one_call(c, "/test.Echo/Nope", "x", 1, &r);
    CHECK_EQ_INT(r.status, XDS_GRPC_UNIMPLEMENTED);
    CHECK(!r.headers); /* Trailers-Only */
    CHECK(strstr(r.message, "/test.Echo/Nope") != NULL);
    /* A status and a message needing percent-encoding, in Trailers-Only. */
    r = (struct rec){0};
    const char *m = "status:9:bad \xc3\xa9tat 100%\n";
    one_call(c, ECHO, m, strlen(m), &r);
    CHECK_EQ_INT(r.status, XDS_GRPC_FAILED_PRECONDITION);
    CHECK_STR(r.message, "bad \xc3\xa9tat 100%\n");
    /* After a message: real trailers. */
    r = (struct rec){0};
    xds_grpc_call *call = xds_grpc_call_start(c, ECHO, NULL, 0, &rec_cbs, &r);
    xds_grpc_call_send(call, "hi", 2);
    xds_grpc_call_send(call, "status:5:gone", 13);
    CHECK(run_until(rec_closed, &r));
    CHECK_EQ_INT(r.status, XDS_GRPC_NOT_FOUND);
    CHECK_EQ_INT(r.nmsg, 1);
    CHECK(r.headers);
    CHECK_STR(r.message, "gone");
    free(r.last);
    xds_grpc_client_free(c);
    xds_grpc_server_free(srv);
}

static bool got_msg(void *u)
{
    return ((struct rec *)u)->nmsg > 0;
}

static bool cancels_1(void *a)
{
    (void)a;
    return cancels >= 1;
}

static void test_oversized_both_ways(void)
{
    uint16_t port;
    xds_grpc_server *srv = start_server(&port, NULL, 1024, 0);
    xds_grpc_client *c = client_for(port, 100);
    uint8_t buf[2048] = {0};
    /* Client → server over the server's limit: client hears RESOURCE_EXHAUSTED, handler a cancel.
     */
    struct rec r = {0};
    one_call(c, ECHO, (const char *)buf, sizeof buf, &r);
    CHECK_EQ_INT(r.status, XDS_GRPC_RESOURCE_EXHAUSTED);
    CHECK(strstr(r.message, "larger than max") != NULL);
    CHECK(run_until(cancels_1, NULL));
    CHECK_EQ_INT(cancels, 1);
    /* Server → client over the client's limit (500 > 100). */
    r = (struct rec){0};
    one_call(c, ECHO, (const char *)buf, 500, &r);
    CHECK_EQ_INT(r.status, XDS_GRPC_RESOURCE_EXHAUSTED);
    CHECK_EQ_INT(r.nmsg, 0);
    /* The connection still works. */
    r = (struct rec){0};
    one_call(c, ECHO, "status:0:fine", 13, &r);
    CHECK_EQ_INT(r.status, XDS_GRPC_OK);
    xds_grpc_client_free(c);
    xds_grpc_server_free(srv);
}

static void test_cancel_reaches_server(void)
{
    uint16_t port;
    xds_grpc_server *srv = start_server(&port, NULL, 0, 0);
    xds_grpc_client *c = client_for(port, 0);
    struct rec r = {0};
    xds_grpc_call *call = xds_grpc_call_start(c, ECHO, NULL, 0, &rec_cbs, &r);
    xds_grpc_call_send(call, "a", 1);
    CHECK(run_until(got_msg, &r));
    xds_grpc_call_cancel(call);
    CHECK(run_until(cancels_1, NULL));
    CHECK(!r.closed); /* no on_close after cancel */
    free(r.last);
    xds_grpc_client_free(c);
    xds_grpc_server_free(srv);
}

static void test_connect_refused_and_free(void)
{
    /* A port nobody listens on: bind then close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &sl);
    close(fd);
    xds_grpc_client *c = client_for(ntohs(a.sin_port), 0);
    struct rec r = {0};
    one_call(c, ECHO, "x", 1, &r);
    CHECK_EQ_INT(r.status, XDS_GRPC_UNAVAILABLE);
    CHECK(strstr(r.message, "connect") != NULL);
    /* Unix socket path that does not exist: immediate failure, still reported from the loop. */
    xds_grpc_client *u =
        xds_grpc_client_new(loop, &(struct xds_grpc_client_opts){.target = "unix:/nonexistent/x"});
    r = (struct rec){0};
    xds_grpc_call *call = xds_grpc_call_start(u, ECHO, NULL, 0, &rec_cbs, &r);
    CHECK(call != NULL);
    CHECK(!r.closed); /* not from inside call_start */
    CHECK(run_until(rec_closed, &r));
    CHECK_EQ_INT(r.status, XDS_GRPC_UNAVAILABLE);
    /* Freeing a client with an open call closes it with CANCELLED. */
    r = (struct rec){0};
    xds_grpc_call_start(u, ECHO, NULL, 0, &rec_cbs, &r);
    xds_grpc_client_free(u);
    CHECK(r.closed);
    CHECK_EQ_INT(r.status, XDS_GRPC_CANCELLED);
    xds_grpc_client_free(c);
    CHECK(xds_grpc_client_new(loop, &(struct xds_grpc_client_opts){.target = "nocolon"}) == NULL);
}

static void test_keepalive_timeout(void)
{
    /* A listener that never accepts: the kernel completes the handshake, nobody answers PINGs. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof a;
    bind(lfd, (struct sockaddr *)&a, sizeof a);
    listen(lfd, 4);
    getsockname(lfd, (struct sockaddr *)&a, &sl);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%u", ntohs(a.sin_port));
    struct xds_grpc_client_opts o = {
        .target = target, .keepalive_ms = 30, .keepalive_timeout_ms = 60};
    xds_grpc_client *c = xds_grpc_client_new(loop, &o);
    struct rec r = {0};
    uint64_t t0 = xds_loop_now_ms();
    one_call(c, ECHO, "x", 1, &r);
    CHECK_EQ_INT(r.status, XDS_GRPC_UNAVAILABLE);
    CHECK(strstr(r.message, "keepalive") != NULL);
    CHECK(xds_loop_now_ms() - t0 < 2000);
    xds_grpc_client_free(c);
    close(lfd);
}

static void test_bearer_token(void)
{
    uint16_t port;
    xds_grpc_server *srv = start_server(&port, NULL, 0, 0);
    char tok[64], target[64];
    snprintf(tok, sizeof tok, "/tmp/rs-grpc-token-%d", getpid());
    snprintf(target, sizeof target, "127.0.0.1:%u", port);
    FILE *f = fopen(tok, "w");
    fputs("  secret-1\n", f);
    fclose(f);
    struct xds_grpc_md md[] = {{"x-extra", "1"}};
    struct xds_grpc_client_opts o = {
        .target = target, .token_file = tok, .metadata = md, .n_metadata = 1};
    xds_grpc_client *c = xds_grpc_client_new(loop, &o);
    struct rec r = {0};
    xds_grpc_call *call = xds_grpc_call_start(c, ECHO, NULL, 0, &rec_cbs, &r);
    xds_grpc_call_send(call, "auth", 4);
    xds_grpc_call_half_close(call);
    CHECK(run_until(rec_closed, &r));
    CHECK_STR((char *)r.last, "Bearer secret-1");
    free(r.last);
    /* Unreadable token file: UNAUTHENTICATED. */
    unlink(tok);
    xds_grpc_client_free(c);
    c = xds_grpc_client_new(loop, &o);
    r = (struct rec){0};
    one_call(c, ECHO, "auth", 4, &r);
    CHECK_EQ_INT(r.status, XDS_GRPC_UNAUTHENTICATED);
    xds_grpc_client_free(c);
    xds_grpc_server_free(srv);
}

/* A client that sends a request and never reads: the server's queue hits its cap. */
static ssize_t sink_send(nghttp2_session *s, const uint8_t *d, size_t len, int fl, void *u)
{
    (void)s, (void)fl;
    return write(*(int *)u, d, len);
}

static ssize_t one_msg(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *u)
{
    (void)s, (void)id, (void)len, (void)src, (void)u;
    memcpy(buf, "\0\0\0\0\5flood", 10);
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    return 10;
}

static void test_send_queue_cap(void)
{
    uint16_t port;
    xds_grpc_server *srv = start_server(&port, NULL, 0, 256 * 1024);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    int rcv = 4096; /* and a small kernel buffer, so the server's writes back up too */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, sink_send);
    nghttp2_session *h2;
    nghttp2_session_client_new(&h2, cbs, &fd);
    nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, NULL, 0);
    nghttp2_nv nv[] = {GRPC_NV(":method", "POST"), GRPC_NV(":scheme", "http"),
                       GRPC_NV(":path", ECHO), GRPC_NV(":authority", "x"),
                       GRPC_NV("content-type", "application/grpc")};
    nghttp2_data_provider dp = {.read_callback = one_msg};
    nghttp2_submit_request(h2, NULL, nv, 5, &dp, NULL);
    nghttp2_session_send(h2);
    CHECK(run_until(cancels_1, NULL)); /* the flood stopped at the cap and the stream was reset */
    CHECK_EQ_INT(cancels, 1);
    nghttp2_session_del(h2);
    nghttp2_session_callbacks_del(cbs);
    close(fd);
    xds_grpc_server_free(srv);
}

/* Garbage instead of the HTTP/2 preface: the server drops the connection, nothing leaks. */
static void test_garbage_preface(void)
{
    uint16_t port;
    xds_grpc_server *srv = start_server(&port, NULL, 0, 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK_EQ_INT(write(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 27);
    struct rec r = {0};
    /* Meanwhile a real client still works. */
    xds_grpc_client *c = client_for(port, 0);
    one_call(c, ECHO, "status:0:ok", 11, &r);
    CHECK_EQ_INT(r.status, XDS_GRPC_OK);
    char b[256];
    ssize_t n;
    do n = read(fd, b, sizeof b);
    while (n > 0);
    CHECK_EQ_INT(n, 0); /* closed by the server */
    close(fd);
    xds_grpc_client_free(c);
    xds_grpc_server_free(srv);
}

static void setup(void)
{
    loop = xds_loop_new();
}

static void teardown(void)
{
    xds_loop_free(loop);
}

#define T(fn)                                                                                      \
    static void fn##_wrapped(void)                                                                 \
    {                                                                                              \
        setup();                                                                                   \
        fn();                                                                                      \
        teardown();                                                                                \
    }
T(test_rx_split_and_batched)
T(test_rx_oversized_and_compressed)
T(test_pct_encoding)
T(test_loop_timers_and_post)
T(test_roundtrip_tcp)
T(test_roundtrip_unix)
T(test_statuses)
T(test_oversized_both_ways)
T(test_cancel_reaches_server)
T(test_connect_refused_and_free)
T(test_keepalive_timeout)
T(test_bearer_token)
T(test_send_queue_cap)
T(test_garbage_preface)

RUN_TESTS(TEST_CASE(test_rx_split_and_batched_wrapped),
          TEST_CASE(test_rx_oversized_and_compressed_wrapped), TEST_CASE(test_pct_encoding_wrapped),
          TEST_CASE(test_loop_timers_and_post_wrapped), TEST_CASE(test_roundtrip_tcp_wrapped),
          TEST_CASE(test_roundtrip_unix_wrapped), TEST_CASE(test_statuses_wrapped),
          TEST_CASE(test_oversized_both_ways_wrapped),
          TEST_CASE(test_cancel_reaches_server_wrapped),
          TEST_CASE(test_connect_refused_and_free_wrapped),
          TEST_CASE(test_keepalive_timeout_wrapped), TEST_CASE(test_bearer_token_wrapped),
          TEST_CASE(test_send_queue_cap_wrapped), TEST_CASE(test_garbage_preface_wrapped))
