/* loadgen: Ringside's own HTTP/1.1 load generator for the benchmark harness.
 *
 *   loadgen --url http[s]://127.0.0.1:PORT/path [-c CONNS] [--threads T]
 *           (--rate R | --max | --new-conn [--rate R] | --bulk)
 *           [--duration S] [--warmup S] [--timeout S] [-H 'name: value']... [--json]
 *           [--cert PEM --key PEM] [--ca PEM] [--sni NAME] [--alpn P1,P2] [--san URI]
 *           [--curves LIST]
 *
 * Modes
 *   --rate R    open loop: R requests/s in total over CONNS keep-alive connections. Connection
 *               i sends at t0 + i/R + k*CONNS/R, so sends are spread evenly. Latency counts from
 *               the *scheduled* time: when a response is late, the next request of that
 *               connection waits (no pipelining) and its latency includes the wait, so a stalled
 *               server cannot hide its stall (no coordinated omission, as wrk2). A connection
 *               that broke is reopened at its next send, inside that request's latency.
 *   --max       closed loop: each connection sends its next request as soon as the previous
 *               response arrived; latency from the send; the figure is req/s.
 *   --new-conn  one connection per request (`connection: close`; we close after the response):
 *               latency includes connect; closed loop over CONNS slots, or at --rate R.
 *   --bulk      throughput: each connection GETs the URL's path over and over (closed loop) and
 *               every byte read counts; the figure is MB/s (10^6 bytes). Meant for
 *               bench/upstream's /bytes/N (chunked, streamed from a 16 KiB buffer, so bounded
 *               memory at any N); a URL path of "/" is replaced by /bytes/16777216. Plain HTTP
 *               GET, so it goes through an L4 (tcp_proxy) or an L7 hop alike.
 * TLS (https:// URLs)
 *   BoringSSL, TLS 1.3 only, driven non-blocking from the same epoll loop: a connection is
 *   connecting, then handshaking, then open. --cert/--key: the client certificate (mutual TLS);
 *   --ca: the server's chain is verified against it (without it, not verified); --san: the
 *   server's leaf must carry this URI SAN (a SPIFFE ID), or the handshake counts as a "tls"
 *   error; --sni, --alpn: sent in the ClientHello; --curves: the key shares offered (default
 *   X25519, what bench/tls_speed's limit assumes). No session cache and no session is ever
 *   offered, so every connection is a full handshake (the JSON's tls_resumed proves it: 0);
 *   with --new-conn that makes the figure full handshakes per second. Latency includes the
 *   handshake. A client closing sends close_notify first.
 * Timing
 *   Everything on CLOCK_MONOTONIC. The run is --warmup S, then --duration S measured: requests
 *   whose reference time (scheduled time with --rate, send time otherwise) falls in the measured
 *   window are counted, their responses whenever they come. After the window no new requests
 *   start, except that with --rate a connection still behind schedule goes on sending what was
 *   due before the window ended; at window end + --timeout (default 5 s, also the per-request
 *   timeout, counted from the send) whatever is outstanding or still unsent is counted as a
 *   timeout and the run stops: that is the hard deadline. Bytes count by the time they arrive.
 * Errors (separate from latency, which is recorded for every complete response)
 *   connect (refused, unreachable), status (non-2xx), reset (error or close before the end of a
 *   response), timeout, protocol (a response we cannot parse), tls (a failed handshake or
 *   certificate check; the first one's reason is in first_tls_error).
 * Engine
 *   T threads, connection i on thread i % T; per thread one epoll set, level-triggered, and one
 *   timerfd armed at the earliest deadline (next scheduled send or request timeout) from a
 *   binary heap, so an idle thread sleeps until exactly the next send and never spins. Responses
 *   are parsed as far as finding their end: Content-Length, chunked, or close-delimited.
 *   Per-thread histograms (bench/hdr.h) are merged at the end.
 * Output
 *   A human summary on stdout, or with --json one JSON object with every figure (rps, latency
 *   percentiles in µs, errors by kind, status classes, bytes) and the latency histogram's
 *   non-empty buckets (latency_hist_us), so that runs can be pooled.
 *
 * Cross-check, against build/bench/upstream --threads 1 --body-bytes 1024 on the same loopback
 * (2 shared CPUs, Linux 6.18, nothing pinned, other work running: figures are noisy):
 *   loadgen -c 10 --rate 1000 --duration 3 --warmup 1     3000 requests, 1000.0/s, p50 ~130 µs,
 *                                                         0.02 s CPU for 3 s at --rate 50
 *   loadgen -c 64 --threads 2 --max --duration 5          142k, 146k, 137k req/s (3 rounds)
 *   wrk -t2 -c64 -d5s                                     139k, 143k, 135k req/s, within 2-3%
 *   h2load --h1 -t2 -c64 -D5                              120k, 127k, 126k req/s, 10-15% lower
 *   loadgen -c 4 --threads 2 --bulk (/bytes/16777216)     899, 893 MB/s
 *   wrk -t2 -c4 -d5s on /bytes/16777216                   865 MiB/s (907 MB/s), 0.85 GiB/s
 *   A 1 s SIGSTOP of the upstream during a 4 s --rate 1000 run reads p90 608 ms, p99 965 ms,
 *   max 1.003 s: the stall is in the figures, as an open loop must show it.
 * TLS, one connection at a time (full mTLS handshakes, client on CPU 0) to an NGINX on CPU 1
 * requiring a client certificate, ECDSA P-256:
 *   loadgen https://... --new-conn -c 1 --duration 3 --cert --key --ca    217, 315 conn/s
 *   openssl s_time -new -cert -key -CAfile -www / -time 3                1022, 1074 in ~3.5 s
 *   (~300/s): in the same range; loadgen's own client handshake is BoringSSL's, whose P-256 is
 *   about half as fast as OpenSSL 3's here (bench/README.md, "Mutual TLS"). */
#include "bench/hdr.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define NEVER UINT64_MAX
#define NO_HEAP UINT32_MAX
#define TIMER_TAG UINT64_MAX /* epoll data of the timerfd; connections carry index | gen << 32 */
#define RBUF (64 * 1024)
#define RBUF_BULK (256 * 1024)
#define LATE_NS 1000000            /* a send more than 1 ms behind its schedule is "late" */
#define CONNECT_BACKOFF_NS 1000000 /* closed loop: pause after a failed connect, not a hot spin */
#define BULK_DEFAULT_PATH "/bytes/16777216"

enum err { ERR_CONNECT, ERR_STATUS, ERR_RESET, ERR_TIMEOUT, ERR_PROTOCOL, ERR_TLS, ERR_KINDS };
static const char *const err_names[ERR_KINDS] = {"connect", "status",   "reset",
                                                 "timeout", "protocol", "tls"};

enum conn_state { CS_DOWN, CS_CONNECTING, CS_HANDSHAKE, CS_OPEN };
/* Where the response parser is; it resumes from here when more bytes arrive. */
enum parse_state {
    P_HEAD,
    P_BODY_CL,
    P_BODY_EOF,
    P_CHUNK_SIZE,
    P_CHUNK_DATA,
    P_CHUNK_CRLF,
    P_TRAILER
};
enum parse_result { PARSE_MORE, PARSE_DONE, PARSE_ERROR };

/* One connection slot: a keep-alive connection, or with --new-conn one connection after another. */
struct slot {
    int fd;
    SSL *ssl;     /* https: this connection's TLS client, NULL otherwise */
    uint32_t gen; /* bumped per socket: a stale epoll event for a closed one is dropped */
    uint32_t events;
    uint32_t heap_i;
    enum conn_state cs;
    bool busy;              /* a request is outstanding */
    bool finished;          /* nothing more to send */
    bool behind;            /* --rate: the next send was already due when the last response came */
    uint64_t wake_at;       /* next send (idle) or request timeout (busy), ns; NEVER when none */
    uint64_t first_due, k;  /* --rate: request k is due at first_due + k * interval */
    uint64_t sched, issued; /* of the outstanding request */
    size_t wrote;
    /* response parser */
    enum parse_state ps;
    int status;
    bool close_after;
    uint64_t left; /* body or chunk bytes still to come */
    char *buf;
    size_t len;
};

struct stats {
    struct rs_hdr lat; /* µs, complete responses in the window */
    uint64_t responses, status[6], errors[ERR_KINDS];
    uint64_t bytes_in, bytes_out, connects;
    uint64_t handshakes, resumed; /* https: TLS handshakes completed (resumed: of those) */
    uint64_t late, max_lag_ns;    /* --rate: sends we made late (not held back by the server) */
};

struct worker {
    int ep, tfd;
    struct slot *slots;
    uint32_t n, live; /* live: slots not finished */
    uint32_t *heap, heap_len;
    uint64_t armed;  /* when the timerfd fires, NEVER if disarmed */
    int first_errno; /* of the first failed connect, for the report */
    char first_tls_error[160];
    pthread_t tid;
    struct stats st;
};

static struct {
    const char *url;
    char hostport[300], path[2048];
    struct sockaddr_in addr;
    int conns, threads;
    double rate, duration_s, warmup_s, timeout_s;
    bool max, new_conn, bulk, json;
    char headers[8192];
    size_t headers_len;
    bool tls; /* https:// */
    const char *cert, *key, *ca, *sni, *alpn, *san, *curves;
} opt = {
    .conns = 10, .threads = 1, .duration_s = 10, .warmup_s = 0, .timeout_s = 5, .curves = "X25519"};

static SSL_CTX *tls_ctx; /* https: shared by every connection, no session cache */
static char *req;        /* the request every slot sends */
static size_t req_len;
static uint64_t t0, t_warm, t_end, t_hard; /* start, measuring from, until, hard deadline */
static double interval_ns;                 /* --rate: between two sends of one connection */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool in_window(uint64_t t)
{
    return t >= t_warm && t < t_end;
}

static bool open_loop(void)
{
    return opt.rate > 0;
}

static uint64_t due_of(const struct slot *s, uint64_t k)
{
    return s->first_due + (uint64_t)((double)k * interval_ns);
}

/* The time a request's latency counts from. */
static uint64_t ref_of(const struct slot *s)
{
    return open_loop() ? s->sched : s->issued;
}

/* --- deadline heap (min on wake_at), one per worker --------------------------------------- */

static void heap_swap(struct worker *w, uint32_t a, uint32_t b)
{
    uint32_t x = w->heap[a];
    w->heap[a] = w->heap[b];
    w->heap[b] = x;
    w->slots[w->heap[a]].heap_i = a;
    w->slots[w->heap[b]].heap_i = b;
}

static uint64_t heap_at(const struct worker *w, uint32_t i)
{
    return w->slots[w->heap[i]].wake_at;
}

static void heap_up(struct worker *w, uint32_t i)
{
    while (i && heap_at(w, (i - 1) / 2) > heap_at(w, i)) {
        heap_swap(w, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct worker *w, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        if (l < w->heap_len && heap_at(w, l) < heap_at(w, m)) m = l;
        if (l + 1 < w->heap_len && heap_at(w, l + 1) < heap_at(w, m)) m = l + 1;
        if (m == i) return;
        heap_swap(w, i, m);
        i = m;
    }
}

/* Sets when the slot wants its timer (NEVER: none), keeping the heap in order. */
static void timer_set(struct worker *w, struct slot *s, uint64_t at)
{
    uint32_t i = s->heap_i;
    s->wake_at = at;
    if (i == NO_HEAP) {
        if (at == NEVER) return;
        i = s->heap_i = w->heap_len++;
        w->heap[i] = (uint32_t)(s - w->slots);
        heap_up(w, i);
        return;
    }
    if (at == NEVER) {
        heap_swap(w, i, --w->heap_len);
        s->heap_i = NO_HEAP;
        if (i == w->heap_len) return;
    }
    heap_up(w, i);
    heap_down(w, i);
}

/* --- connections ------------------------------------------------------------------------- */

static void set_events(struct worker *w, struct slot *s, uint32_t ev)
{
    if (ev == s->events) return;
    struct epoll_event e = {.events = ev,
                            .data.u64 = (uint64_t)(s - w->slots) | (uint64_t)s->gen << 32};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, s->fd, &e);
    s->events = ev;
}

static void close_slot(struct worker *w, struct slot *s)
{
    if (s->ssl) {
        /* a client that is done says so (close_notify), as curl and the proxies do */
        if (s->cs == CS_OPEN) (void)SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
        ERR_clear_error();
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
    }
    s->fd = -1;
    s->cs = CS_DOWN;
    s->len = 0;
    s->events = 0;
}

static void finish(struct worker *w, struct slot *s)
{
    s->finished = true;
    timer_set(w, s, NEVER);
    w->live--;
}

/* After a request ended (answered or failed): when the slot sends next. */
static void plan_next(struct worker *w, struct slot *s, uint64_t now, bool backoff)
{
    if (open_loop()) {
        uint64_t due = due_of(s, ++s->k);
        s->behind = due <= now;
        if (due >= t_end)
            finish(w, s);
        else
            timer_set(w, s, due); /* already past: fires on the next turn, without sleeping */
        return;
    }
    if (now >= t_end)
        finish(w, s);
    else
        timer_set(w, s, backoff ? now + CONNECT_BACKOFF_NS : now);
}

static void fail(struct worker *w, struct slot *s, enum err kind, uint64_t now)
{
    bool counted = s->busy && in_window(ref_of(s));
    if (counted) w->st.errors[kind]++;
    s->busy = false;
    close_slot(w, s);
    plan_next(w, s, now, kind == ERR_CONNECT);
}

static void complete(struct worker *w, struct slot *s, uint64_t now)
{
    uint64_t ref = ref_of(s);
    if (in_window(ref)) {
        rs_hdr_record(&w->st.lat, (now - ref) / 1000);
        w->st.responses++;
        int cls = s->status / 100;
        w->st.status[cls >= 1 && cls <= 5 ? cls : 0]++;
        if (cls != 2) w->st.errors[ERR_STATUS]++;
    }
    s->busy = false;
    if (opt.new_conn || s->close_after) close_slot(w, s);
    plan_next(w, s, now, false);
}

static void note_connect_error(struct worker *w, int err)
{
    if (!w->first_errno) w->first_errno = err;
}

/* --- transport: TCP, or TLS over it for https ------------------------------------------- */

/* What an SSL_read/SSL_write result r <= 0 means, as send/recv would say it: -1 with errno
 * EAGAIN when it waits for the socket, 0 at the end of the stream (close_notify, or a TCP close
 * without one: a close-delimited body may end so), -1 with errno set otherwise. */
static ssize_t tls_result(struct slot *s, int r)
{
    switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (!errno) return 0;
        return -1;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

static ssize_t io_send(struct slot *s, const char *p, size_t n)
{
    if (!s->ssl) return send(s->fd, p, n, MSG_NOSIGNAL);
    errno = 0;
    int r = SSL_write(s->ssl, p, (int)n);
    return r > 0 ? r : tls_result(s, r);
}

static ssize_t io_recv(struct slot *s, char *p, size_t n)
{
    if (!s->ssl) return recv(s->fd, p, n, 0);
    errno = 0;
    int r = SSL_read(s->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
    return r > 0 ? r : tls_result(s, r);
}

/* Decrypted bytes BoringSSL holds that the socket's readiness will not announce again. */
static bool io_pending(const struct slot *s)
{
    return s->ssl && SSL_pending(s->ssl) > 0;
}

/* --san: the server's leaf carries this URI SAN (its SPIFFE identity). */
static bool peer_san_ok(struct slot *s)
{
    if (!opt.san) return true;
    X509 *cert = SSL_get_peer_certificate(s->ssl);
    GENERAL_NAMES *names = cert ? X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL) : NULL;
    bool ok = false;
    size_t want = strlen(opt.san);
    for (size_t i = 0; names && i < sk_GENERAL_NAME_num(names) && !ok; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI) continue;
        const ASN1_IA5STRING *uri = gn->d.uniformResourceIdentifier;
        ok = (size_t)ASN1_STRING_length(uri) == want &&
             memcmp(ASN1_STRING_get0_data(uri), opt.san, want) == 0;
    }
    GENERAL_NAMES_free(names);
    X509_free(cert);
    return ok;
}

static void note_tls_error(struct worker *w, struct slot *s, const char *what)
{
    if (w->first_tls_error[0]) return;
    long v = what ? X509_V_OK : SSL_get_verify_result(s->ssl);
    if (what)
        snprintf(w->first_tls_error, sizeof w->first_tls_error, "%s", what);
    else if (v != X509_V_OK)
        snprintf(w->first_tls_error, sizeof w->first_tls_error, "certificate: %s",
                 X509_verify_cert_error_string(v));
    else
        ERR_error_string_n(ERR_peek_error(), w->first_tls_error, sizeof w->first_tls_error);
}

static bool do_write(struct worker *w, struct slot *s, uint64_t now);

/* Takes the TLS handshake as far as the socket allows; on success the request (if one waits)
 * goes out at once. A failed handshake fails the request as "tls". */
static void drive_handshake(struct worker *w, struct slot *s, uint64_t now)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1 && peer_san_ok(s)) {
        if (in_window(now)) {
            w->st.handshakes++;
            if (SSL_session_reused(s->ssl)) w->st.resumed++;
        }
        s->cs = CS_OPEN;
        set_events(w, s, EPOLLIN);
        if (s->busy) do_write(w, s, now);
        return;
    }
    int e = r == 1 ? SSL_ERROR_SSL : SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        set_events(w, s, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLIN | EPOLLOUT);
        return;
    }
    note_tls_error(w, s, r == 1 ? "the server's certificate lacks the --san URI" : NULL);
    ERR_clear_error();
    if (s->busy)
        fail(w, s, ERR_TLS, now);
    else
        close_slot(w, s); /* an eager connect at start: the first request will try again */
}

/* Writes what is left of the request. Returns false when the slot failed. */
static bool do_write(struct worker *w, struct slot *s, uint64_t now)
{
    while (s->wrote < req_len) {
        ssize_t n = io_send(s, req + s->wrote, req_len - s->wrote);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            set_events(w, s, EPOLLIN | EPOLLOUT);
            return true;
        }
        if (n <= 0) {
            fail(w, s, ERR_RESET, now);
            return false;
        }
        s->wrote += (size_t)n;
        if (in_window(now)) w->st.bytes_out += (uint64_t)n;
    }
    set_events(w, s, EPOLLIN);
    return true;
}

static void on_connected(struct worker *w, struct slot *s, uint64_t now)
{
    if (s->ssl) {
        s->cs = CS_HANDSHAKE;
        drive_handshake(w, s, now);
        return;
    }
    s->cs = CS_OPEN;
    set_events(w, s, EPOLLIN);
    if (s->busy) do_write(w, s, now);
}

/* A TLS client for the slot's new socket: no session to resume, so every handshake is full. */
static bool tls_new(struct worker *w, struct slot *s)
{
    s->ssl = SSL_new(tls_ctx);
    if (s->ssl && SSL_set_fd(s->ssl, s->fd) &&
        (!opt.sni || SSL_set_tlsext_host_name(s->ssl, opt.sni))) {
        SSL_set_connect_state(s->ssl);
        return true;
    }
    note_tls_error(w, s, "SSL_new failed");
    ERR_clear_error();
    return false;
}

/* Opens the slot's socket and starts connecting. Returns false (slot DOWN) on an immediate
 * failure, errno noted. */
static bool start_connect(struct worker *w, struct slot *s, uint64_t now)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_connect_error(w, errno);
        return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->fd = fd;
    s->gen++;
    s->events = EPOLLOUT;
    struct epoll_event e = {.events = EPOLLOUT,
                            .data.u64 = (uint64_t)(s - w->slots) | (uint64_t)s->gen << 32};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e);
    if (opt.tls && !tls_new(w, s)) {
        close_slot(w, s);
        return false;
    }
    if (in_window(now)) w->st.connects++;
    if (connect(fd, (struct sockaddr *)&opt.addr, sizeof opt.addr) == 0) {
        on_connected(w, s, now);
        return true;
    }
    if (errno == EINPROGRESS) {
        s->cs = CS_CONNECTING;
        return true;
    }
    note_connect_error(w, errno);
    close_slot(w, s);
    return false;
}

/* Starts a request scheduled at sched (the send time itself in a closed loop). */
static void issue(struct worker *w, struct slot *s, uint64_t sched, uint64_t now)
{
    s->busy = true;
    s->sched = sched;
    s->issued = now;
    s->wrote = 0;
    s->ps = P_HEAD;
    s->len = 0;
    if (open_loop() && !s->behind && in_window(sched)) {
        /* only our own lateness: a send held back by a slow response is in its latency */
        uint64_t lag = now - sched;
        if (lag > LATE_NS) w->st.late++;
        if (lag > w->st.max_lag_ns) w->st.max_lag_ns = lag;
    }
    timer_set(w, s, now + (uint64_t)(opt.timeout_s * 1e9));
    if (s->cs == CS_DOWN && !start_connect(w, s, now))
        fail(w, s, ERR_CONNECT, now);
    else if (s->cs == CS_OPEN)
        do_write(w, s, now);
}

/* --- response parser --------------------------------------------------------------------- */

static bool name_is(const char *n, size_t nl, const char *want)
{
    return strlen(want) == nl && strncasecmp(n, want, nl) == 0;
}

static bool value_has(const char *v, size_t vl, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i + tl <= vl; i++)
        if (strncasecmp(v + i, token, tl) == 0) return true;
    return false;
}

/* Decimal (base 10) or hex (base 16) digits at p..end; false when none or on overflow. */
static bool parse_uint(const char *p, const char *end, int base, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = p;
    for (; p < end && isxdigit((unsigned char)*p); p++) {
        int d = isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10);
        if (d >= base || v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return false;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return p > start;
}

/* Parses a complete response head (hl bytes ending in CRLFCRLF) and picks how the body ends. */
static enum parse_result parse_head(struct slot *s, const char *h, size_t hl)
{
    if (hl < 16 || memcmp(h, "HTTP/1.", 7) || h[8] != ' ' || !isdigit((unsigned char)h[9]) ||
        !isdigit((unsigned char)h[10]) || !isdigit((unsigned char)h[11]))
        return PARSE_ERROR;
    s->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    s->close_after = h[7] == '0'; /* HTTP/1.0 closes unless it says keep-alive */
    bool chunked = false, has_cl = false;
    uint64_t cl = 0;
    const char *end = h + hl - 2;
    for (const char *l = (const char *)memchr(h, '\n', hl) + 1; l < end;) {
        const char *e = memchr(l, '\r', (size_t)(end - l));
        const char *colon = e ? memchr(l, ':', (size_t)(e - l)) : NULL;
        if (!colon) return PARSE_ERROR;
        const char *v = colon + 1;
        while (v < e && (*v == ' ' || *v == '\t')) v++;
        size_t nl = (size_t)(colon - l), vl = (size_t)(e - v);
        if (name_is(l, nl, "content-length")) {
            if (!parse_uint(v, e, 10, &cl)) return PARSE_ERROR;
            has_cl = true;
        } else if (name_is(l, nl, "transfer-encoding")) {
            chunked = value_has(v, vl, "chunked");
        } else if (name_is(l, nl, "connection")) {
            if (value_has(v, vl, "close"))
                s->close_after = true;
            else if (value_has(v, vl, "keep-alive"))
                s->close_after = false;
        }
        l = e + 2;
    }
    if (s->status < 200) return PARSE_MORE; /* 1xx: the real response follows */
    if (s->status == 204 || s->status == 304) return PARSE_DONE;
    if (chunked) { /* RFC 9112 6.3: chunked wins over content-length */
        s->ps = P_CHUNK_SIZE;
    } else if (has_cl) {
        s->left = cl;
        s->ps = P_BODY_CL;
        if (!cl) return PARSE_DONE;
    } else {
        s->ps = P_BODY_EOF;
        s->close_after = true;
    }
    return PARSE_MORE;
}

/* Runs the parser over the buffered bytes; body bytes are skipped, never copied. What cannot be
 * parsed yet (a partial head or chunk line) stays at the front of the buffer. */
static enum parse_result parse(struct slot *s, size_t cap)
{
    size_t off = 0;
    enum parse_result r = PARSE_MORE;
    while (r == PARSE_MORE && off < s->len) {
        const char *p = s->buf + off, *eol;
        size_t avail = s->len - off, n;
        switch (s->ps) {
        case P_HEAD:
            eol = memmem(p, avail, "\r\n\r\n", 4);
            if (!eol) goto out;
            n = (size_t)(eol - p) + 4;
            r = parse_head(s, p, n);
            off += n;
            break;
        case P_BODY_CL:
        case P_CHUNK_DATA:
            n = avail < s->left ? avail : (size_t)s->left;
            off += n;
            s->left -= n;
            if (!s->left && s->ps == P_BODY_CL)
                r = PARSE_DONE;
            else if (!s->left)
                s->ps = P_CHUNK_CRLF;
            break;
        case P_BODY_EOF:
            off = s->len;
            break;
        case P_CHUNK_CRLF:
            if (avail < 2) goto out;
            if (p[0] != '\r' || p[1] != '\n') r = PARSE_ERROR;
            off += 2;
            s->ps = P_CHUNK_SIZE;
            break;
        case P_CHUNK_SIZE:
            eol = memmem(p, avail, "\r\n", 2);
            if (!eol) goto out;
            if (!parse_uint(p, eol, 16, &s->left)) r = PARSE_ERROR;
            off += (size_t)(eol - p) + 2;
            s->ps = s->left ? P_CHUNK_DATA : P_TRAILER;
            break;
        case P_TRAILER:
            eol = memmem(p, avail, "\r\n", 2);
            if (!eol) goto out;
            if (eol == p) r = PARSE_DONE;
            off += (size_t)(eol - p) + 2;
            break;
        }
    }
out:
    if (r == PARSE_DONE && off < s->len) r = PARSE_ERROR;              /* bytes nobody asked for */
    if (r == PARSE_MORE && off == 0 && s->len == cap) r = PARSE_ERROR; /* head or line too long */
    memmove(s->buf, s->buf + off, s->len - off);
    s->len -= off;
    return r;
}

/* --- events ------------------------------------------------------------------------------ */

static void on_readable(struct worker *w, struct slot *s, uint64_t now)
{
    size_t cap = opt.bulk ? RBUF_BULK : RBUF;
    if (!s->buf && !(s->buf = malloc(cap))) {
        fail(w, s, ERR_PROTOCOL, now); /* out of memory closes this one connection */
        return;
    }
    for (int i = 0; i < 4 || io_pending(s); i++) {
        size_t space = cap - s->len;
        ssize_t n = io_recv(s, s->buf + s->len, space);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n > 0 && in_window(now)) w->st.bytes_in += (uint64_t)n;
        if (n > 0 && !s->busy) n = -1; /* bytes with no request outstanding */
        if (n <= 0) {
            if (n == 0 && s->busy && s->ps == P_BODY_EOF)
                complete(w, s, now);
            else if (s->busy)
                fail(w, s, ERR_RESET, now);
            else
                close_slot(w, s); /* an idle keep-alive connection the server closed */
            return;
        }
        s->len += (size_t)n;
        enum parse_result r = parse(s, cap);
        if (r == PARSE_DONE) complete(w, s, now);
        if (r == PARSE_ERROR) fail(w, s, ERR_PROTOCOL, now);
        if (r != PARSE_MORE || ((size_t)n < space && !io_pending(s))) return;
    }
}

static void on_connect_done(struct worker *w, struct slot *s, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (!err) {
        on_connected(w, s, now);
        return;
    }
    note_connect_error(w, err);
    if (s->busy) {
        fail(w, s, ERR_CONNECT, now);
        return;
    }
    close_slot(w, s); /* an eager connect at start: the first request will try again */
}

static void on_event(struct worker *w, uint64_t data, uint32_t ev, uint64_t now)
{
    struct slot *s = &w->slots[(uint32_t)data];
    if (s->fd < 0 || s->gen != (uint32_t)(data >> 32)) return; /* for a socket since closed */
    if (s->cs == CS_CONNECTING) {
        on_connect_done(w, s, now);
        return;
    }
    if (s->cs == CS_HANDSHAKE) {
        drive_handshake(w, s, now);
        return;
    }
    if ((ev & EPOLLOUT) && s->busy && s->wrote < req_len && !do_write(w, s, now)) return;
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(w, s, now);
}

static void on_timer(struct worker *w, struct slot *s, uint64_t now)
{
    if (s->busy)
        fail(w, s, ERR_TIMEOUT, now);
    else if (open_loop())
        issue(w, s, due_of(s, s->k), now);
    else if (now >= t_end)
        finish(w, s);
    else
        issue(w, s, now, now);
}

/* Fires the deadlines that have passed. Bounded, so a storm of immediate failures still lets
 * the loop poll. */
static void run_timers(struct worker *w, uint64_t now)
{
    for (uint32_t budget = 2 * w->n + 16; w->heap_len && budget; budget--) {
        struct slot *s = &w->slots[w->heap[0]];
        if (s->wake_at > now) return;
        timer_set(w, s, NEVER);
        on_timer(w, s, now);
    }
}

/* The hard deadline: whatever is outstanding or, with --rate, still unsent from the window
 * counts as a timeout. */
static void hard_stop(struct worker *w)
{
    for (uint32_t i = 0; i < w->n; i++) {
        struct slot *s = &w->slots[i];
        if (s->finished) continue;
        if (s->busy && in_window(ref_of(s))) w->st.errors[ERR_TIMEOUT]++;
        if (!open_loop()) continue;
        for (uint64_t k = s->k + (s->busy ? 1 : 0), d; (d = due_of(s, k)) < t_end; k++)
            if (d >= t_warm) w->st.errors[ERR_TIMEOUT]++;
    }
}

/* Keeps the timerfd armed no later than the earliest deadline. Re-arms only when that is
 * earlier than what is armed: a timer firing early costs one empty wake, re-arming at every
 * request would cost a syscall each. */
static void arm_timer(struct worker *w)
{
    uint64_t at = w->heap_len ? heap_at(w, 0) : NEVER;
    if (at > t_hard) at = t_hard;
    if (at >= w->armed) return;
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(at / 1000000000u), .tv_nsec = (long)(at % 1000000000u)}};
    timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
    w->armed = at;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[256];
    prctl(PR_SET_TIMERSLACK, 1UL); /* wake at the scheduled send, not up to 50 µs after */
    uint64_t now = now_ns();
    for (uint32_t i = 0; i < w->n && !opt.new_conn; i++) start_connect(w, &w->slots[i], now);
    while (w->live) {
        now = now_ns();
        if (now >= t_hard) {
            hard_stop(w);
            break;
        }
        run_timers(w, now);
        if (!w->live) break;
        arm_timer(w);
        bool due = w->heap_len && heap_at(w, 0) <= now;
        int n = epoll_wait(w->ep, evs, 256, due ? 0 : -1);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 != TIMER_TAG) {
                on_event(w, evs[i].data.u64, evs[i].events, now);
                continue;
            }
            uint64_t ticks;
            if (read(w->tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                perror("loadgen: timerfd");
            w->armed = NEVER;
        }
    }
    for (uint32_t i = 0; i < w->n; i++) {
        close_slot(w, &w->slots[i]);
        free(w->slots[i].buf);
    }
    return NULL;
}

/* --- setup ------------------------------------------------------------------------------- */

static int worker_init(struct worker *w, uint32_t n)
{
    rs_hdr_init(&w->st.lat);
    w->n = w->live = n;
    w->armed = NEVER;
    w->slots = calloc(n, sizeof *w->slots);
    w->heap = calloc(n, sizeof *w->heap);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!w->slots || !w->heap || w->ep < 0 || w->tfd < 0) return -1;
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = TIMER_TAG};
    return epoll_ctl(w->ep, EPOLL_CTL_ADD, w->tfd, &e);
}

static void worker_free(struct worker *w)
{
    if (w->ep >= 0) close(w->ep);
    if (w->tfd >= 0) close(w->tfd);
    free(w->slots);
    free(w->heap);
}

/* Spreads the connections over the workers (connection i on worker i % T) and gives each its
 * first send: staggered by 1/R with --rate, all at t0 in a closed loop. */
static void place_slots(struct worker *ws)
{
    uint32_t *filled = calloc((size_t)opt.threads, sizeof *filled);
    if (!filled) abort();
    for (int g = 0; g < opt.conns; g++) {
        struct worker *w = &ws[g % opt.threads];
        struct slot *s = &w->slots[filled[g % opt.threads]++];
        s->fd = -1;
        s->heap_i = NO_HEAP;
        s->first_due = open_loop() ? t0 + (uint64_t)((double)g * 1e9 / opt.rate) : t0;
        timer_set(w, s, s->first_due);
        if (s->first_due >= t_end) finish(w, s); /* --rate slower than one per connection */
    }
    free(filled);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen --url http[s]://127.0.0.1:PORT/path [-c CONNS] [--threads T]\n"
            "         (--rate R | --max | --new-conn [--rate R] | --bulk)\n"
            "         [--duration S] [--warmup S] [--timeout S] [-H 'name: value']... [--json]\n"
            "         [--cert PEM --key PEM] [--ca PEM] [--sni NAME] [--alpn P1,P2] [--san URI]\n"
            "         [--curves X25519:P-256]\n");
}

/* http[s]://A.B.C.D[:PORT][/path] (or localhost). Returns false with a message when unusable. */
static bool parse_url(const char *url)
{
    opt.tls = strncmp(url, "https://", 8) == 0;
    if (strncmp(url, "http://", 7) != 0 && !opt.tls) {
        fprintf(stderr, "loadgen: only http:// and https:// URLs: %s\n", url);
        return false;
    }
    const char *h = url + (opt.tls ? 8 : 7), *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof opt.hostport) return false;
    memcpy(opt.hostport, h, hl);
    opt.hostport[hl] = 0;
    snprintf(opt.path, sizeof opt.path, "%s", slash ? slash : "/");
    char host[300];
    snprintf(host, sizeof host, "%s", opt.hostport);
    char *colon = strchr(host, ':');
    long port = opt.tls ? 443 : 80;
    if (colon) {
        *colon = 0;
        port = strtol(colon + 1, NULL, 10);
    }
    if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
    opt.addr.sin_family = AF_INET;
    opt.addr.sin_port = htons((uint16_t)port);
    if (port < 1 || port > 65535 || inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: need an IPv4 address and port in %s\n", url);
        return false;
    }
    return true;
}

/* Seconds, with an optional trailing "s". */
static bool parse_secs(const char *a, double *out)
{
    char *e;
    double v = strtod(a, &e);
    if (e == a || (*e && strcmp(e, "s") != 0) || v < 0) return false;
    *out = v;
    return true;
}

static bool add_header(const char *h)
{
    int n =
        snprintf(opt.headers + opt.headers_len, sizeof opt.headers - opt.headers_len, "%s\r\n", h);
    if (n < 0 || (size_t)n >= sizeof opt.headers - opt.headers_len || !strchr(h, ':')) return false;
    opt.headers_len += (size_t)n;
    return true;
}

static bool parse_args(int argc, char **argv)
{
    static const struct option longs[] = {
        {"url", required_argument, NULL, 'u'},
        {"connections", required_argument, NULL, 'c'},
        {"rate", required_argument, NULL, 'R'},
        {"max", no_argument, NULL, 'M'},
        {"new-conn", no_argument, NULL, 'N'},
        {"bulk", no_argument, NULL, 'B'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"threads", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'T'},
        {"header", required_argument, NULL, 'H'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"cert", required_argument, NULL, 256},
        {"key", required_argument, NULL, 257},
        {"ca", required_argument, NULL, 258},
        {"sni", required_argument, NULL, 259},
        {"alpn", required_argument, NULL, 260},
        {"san", required_argument, NULL, 261},
        {"curves", required_argument, NULL, 262},
        {0},
    };
    int ch;
    bool ok = true;
    while ((ch = getopt_long(argc, argv, "u:c:R:d:w:t:T:H:h", longs, NULL)) != -1) {
        switch (ch) {
        case 'u':
            opt.url = optarg;
            break;
        case 'c':
            opt.conns = atoi(optarg);
            break;
        case 'R':
            opt.rate = strtod(optarg, NULL);
            ok = ok && opt.rate > 0;
            break;
        case 'M':
            opt.max = true;
            break;
        case 'N':
            opt.new_conn = true;
            break;
        case 'B':
            opt.bulk = true;
            break;
        case 'd':
            ok = ok && parse_secs(optarg, &opt.duration_s);
            break;
        case 'w':
            ok = ok && parse_secs(optarg, &opt.warmup_s);
            break;
        case 't':
            opt.threads = atoi(optarg);
            break;
        case 'T':
            ok = ok && parse_secs(optarg, &opt.timeout_s);
            break;
        case 'H':
            ok = ok && add_header(optarg);
            break;
        case 'j':
            opt.json = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 256:
            opt.cert = optarg;
            break;
        case 257:
            opt.key = optarg;
            break;
        case 258:
            opt.ca = optarg;
            break;
        case 259:
            opt.sni = optarg;
            break;
        case 260:
            opt.alpn = optarg;
            break;
        case 261:
            opt.san = optarg;
            break;
        case 262:
            opt.curves = optarg;
            break;
        default:
            ok = false;
        }
    }
    if (!opt.url && optind < argc) opt.url = argv[optind++];
    int modes = (opt.rate > 0 && !opt.new_conn) + opt.max + opt.new_conn + opt.bulk;
    if (!ok || !opt.url || optind != argc || modes != 1 || opt.conns < 1 || opt.threads < 1 ||
        opt.duration_s <= 0 || opt.timeout_s <= 0) {
        if (ok && opt.url && modes != 1)
            fprintf(stderr, "loadgen: choose one of --rate R, --max, --new-conn, --bulk\n");
        usage(stderr);
        return false;
    }
    if (opt.threads > opt.conns) opt.threads = opt.conns;
    if (!parse_url(opt.url)) return false;
    if (!opt.tls && (opt.cert || opt.key || opt.ca || opt.sni || opt.alpn || opt.san)) {
        fprintf(stderr,
                "loadgen: --cert, --key, --ca, --sni, --alpn, --san need an https:// URL\n");
        return false;
    }
    if (!opt.cert != !opt.key) {
        fprintf(stderr, "loadgen: --cert and --key go together\n");
        return false;
    }
    return true;
}

/* ALPN wire format (length-prefixed names) from "h2,http/1.1". */
static bool set_alpn(SSL_CTX *ctx, const char *list)
{
    uint8_t wire[256];
    size_t o = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n > 255 || o + 1 + n > sizeof wire) return false;
        wire[o++] = (uint8_t)n;
        memcpy(wire + o, p, n);
        o += n;
        p += n + (p[n] == ',');
    }
    return SSL_CTX_set_alpn_protos(ctx, wire, o) == 0; /* 0 is success here */
}

/* The client context for https: TLS 1.3 only, the --curves key shares (X25519 by default: what
 * bench/tls_speed's limit assumes), the peer verified against --ca, a client certificate when
 * given, and no session cache or tickets: every connection is a full handshake. */
static bool tls_init(void)
{
    const char *what = "context";
    SSL_CTX *ctx = tls_ctx = SSL_CTX_new(TLS_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
        goto fail;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    what = "--curves";
    if (!SSL_CTX_set1_curves_list(ctx, opt.curves)) goto fail;
    what = "--cert";
    if (opt.cert && !SSL_CTX_use_certificate_chain_file(ctx, opt.cert)) goto fail;
    what = "--key";
    if (opt.key && !SSL_CTX_use_PrivateKey_file(ctx, opt.key, SSL_FILETYPE_PEM)) goto fail;
    what = "--ca";
    if (opt.ca && !SSL_CTX_load_verify_locations(ctx, opt.ca, NULL)) goto fail;
    SSL_CTX_set_verify(ctx, opt.ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    what = "--alpn";
    if (opt.alpn && !set_alpn(ctx, opt.alpn)) goto fail;
    return true;
fail:;
    char err[200];
    ERR_error_string_n(ERR_peek_error(), err, sizeof err);
    fprintf(stderr, "loadgen: TLS %s: %s\n", what, err);
    return false;
}

static void build_request(void)
{
    if (opt.bulk && strcmp(opt.path, "/") == 0)
        snprintf(opt.path, sizeof opt.path, BULK_DEFAULT_PATH);
    size_t cap = strlen(opt.path) + strlen(opt.hostport) + opt.headers_len + 128;
    req = malloc(cap);
    if (!req) abort();
    req_len = (size_t)snprintf(
        req, cap, "GET %s HTTP/1.1\r\nhost: %s\r\nuser-agent: ringside-loadgen\r\n%s%s\r\n",
        opt.path, opt.hostport, opt.headers, opt.new_conn ? "connection: close\r\n" : "");
}

/* --- report ------------------------------------------------------------------------------ */

static const char *mode_name(void)
{
    if (opt.bulk) return "bulk";
    if (opt.new_conn) return open_loop() ? "new-conn-rate" : "new-conn";
    return opt.max ? "max" : "rate";
}

static void report_json(const struct stats *st, int first_errno, const char *tls_error)
{
    const struct rs_hdr *h = &st->lat;
    double d = opt.duration_s;
    uint64_t errs = 0;
    for (int i = 0; i < ERR_KINDS; i++) errs += st->errors[i];
    printf("{\"mode\": \"%s\", \"url\": \"%s://%s%s\", \"connections\": %d, \"threads\": %d, "
           "\"duration_s\": %g, \"warmup_s\": %g, \"timeout_s\": %g, ",
           mode_name(), opt.tls ? "https" : "http", opt.hostport, opt.path, opt.conns, opt.threads,
           d, opt.warmup_s, opt.timeout_s);
    if (open_loop())
        printf("\"rate_target\": %g, ", opt.rate);
    else
        printf("\"rate_target\": null, ");
    printf("\"requests\": %llu, \"rps\": %.1f, \"connections_opened\": %llu, \"cps\": %.1f, "
           "\"bytes_read\": %llu, \"bytes_written\": %llu, \"mb_per_s\": %.2f, ",
           (unsigned long long)st->responses, (double)st->responses / d,
           (unsigned long long)st->connects, (double)st->connects / d,
           (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out,
           (double)st->bytes_in / d / 1e6);
    printf("\"latency_us\": {\"count\": %llu, \"min\": %llu, \"mean\": %.1f, \"p50\": %llu, "
           "\"p90\": %llu, \"p99\": %llu, \"p999\": %llu, \"max\": %llu, \"clamped\": %llu}, ",
           (unsigned long long)h->count, (unsigned long long)(h->count ? h->min : 0),
           rs_hdr_mean(h), (unsigned long long)rs_hdr_percentile(h, 50),
           (unsigned long long)rs_hdr_percentile(h, 90),
           (unsigned long long)rs_hdr_percentile(h, 99),
           (unsigned long long)rs_hdr_percentile(h, 99.9), (unsigned long long)h->max,
           (unsigned long long)h->clamped);
    /* The histogram itself, so runs can be pooled (bench/report.py's paired p99 section):
     * [lowest value, width, count] of every non-empty bucket, in µs. */
    printf("\"latency_hist_us\": [");
    const char *sep = "";
    for (unsigned i = 0; i < RS_HDR_BUCKETS; i++) {
        if (!h->buckets[i]) continue;
        printf("%s[%llu, %llu, %llu]", sep, (unsigned long long)rs_hdr_bucket_low(i),
               (unsigned long long)rs_hdr_bucket_width(i), (unsigned long long)h->buckets[i]);
        sep = ", ";
    }
    printf("], ");
    printf("\"status\": {\"1xx\": %llu, \"2xx\": %llu, \"3xx\": %llu, \"4xx\": %llu, "
           "\"5xx\": %llu, \"other\": %llu}, \"errors\": {",
           (unsigned long long)st->status[1], (unsigned long long)st->status[2],
           (unsigned long long)st->status[3], (unsigned long long)st->status[4],
           (unsigned long long)st->status[5], (unsigned long long)st->status[0]);
    for (int i = 0; i < ERR_KINDS; i++)
        printf("\"%s\": %llu, ", err_names[i], (unsigned long long)st->errors[i]);
    printf("\"total\": %llu}, \"own_late_sends\": %llu, \"own_max_lag_us\": %llu, ",
           (unsigned long long)errs, (unsigned long long)st->late,
           (unsigned long long)(st->max_lag_ns / 1000));
    printf("\"tls\": %s, \"tls_handshakes\": %llu, \"tls_handshakes_per_s\": %.1f, "
           "\"tls_resumed\": %llu, \"first_tls_error\": ",
           opt.tls ? "true" : "false", (unsigned long long)st->handshakes,
           (double)st->handshakes / d, (unsigned long long)st->resumed);
    if (tls_error[0]) {
        putchar('"');
        for (const char *c = tls_error; *c; c++)
            if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20) putchar(*c);
        printf("\", ");
    } else {
        printf("null, ");
    }
    printf("\"first_connect_error\": ");
    if (first_errno)
        printf("\"%s\"}\n", strerror(first_errno));
    else
        printf("null}\n");
}

static void report_human(const struct stats *st, int first_errno, const char *tls_error)
{
    const struct rs_hdr *h = &st->lat;
    double d = opt.duration_s;
    uint64_t errs = 0;
    for (int i = 0; i < ERR_KINDS; i++) errs += st->errors[i];
    printf("loadgen %s", mode_name());
    if (open_loop()) printf(" %g/s", opt.rate);
    printf(": %s://%s%s, %d connections, %d threads, %g s measured after %g s warm-up\n",
           opt.tls ? "https" : "http", opt.hostport, opt.path, opt.conns, opt.threads, d,
           opt.warmup_s);
    printf("  requests    %llu (%.1f/s), connections opened %llu (%.1f/s)\n",
           (unsigned long long)st->responses, (double)st->responses / d,
           (unsigned long long)st->connects, (double)st->connects / d);
    printf("  bytes       read %llu (%.2f MB/s), written %llu\n", (unsigned long long)st->bytes_in,
           (double)st->bytes_in / d / 1e6, (unsigned long long)st->bytes_out);
    printf(
        "  latency µs  min %llu  mean %.1f  p50 %llu  p90 %llu  p99 %llu  p99.9 %llu  max %llu\n",
        (unsigned long long)(h->count ? h->min : 0), rs_hdr_mean(h),
        (unsigned long long)rs_hdr_percentile(h, 50), (unsigned long long)rs_hdr_percentile(h, 90),
        (unsigned long long)rs_hdr_percentile(h, 99),
        (unsigned long long)rs_hdr_percentile(h, 99.9), (unsigned long long)h->max);
    printf("  status      2xx %llu  3xx %llu  4xx %llu  5xx %llu  other %llu\n",
           (unsigned long long)st->status[2], (unsigned long long)st->status[3],
           (unsigned long long)st->status[4], (unsigned long long)st->status[5],
           (unsigned long long)(st->status[0] + st->status[1]));
    printf("  errors      %llu (", (unsigned long long)errs);
    for (int i = 0; i < ERR_KINDS; i++)
        printf("%s%s %llu", i ? ", " : "", err_names[i], (unsigned long long)st->errors[i]);
    printf(")\n");
    if (open_loop())
        printf("  own lag     %llu sends woke more than 1 ms after schedule, max %llu µs\n",
               (unsigned long long)st->late, (unsigned long long)(st->max_lag_ns / 1000));
    if (opt.tls)
        printf("  tls         %llu handshakes (%.1f/s), %llu resumed\n",
               (unsigned long long)st->handshakes, (double)st->handshakes / d,
               (unsigned long long)st->resumed);
    if (first_errno) printf("  first connect error: %s\n", strerror(first_errno));
    if (tls_error[0]) printf("  first TLS error: %s\n", tls_error);
}

static void merge_stats(struct stats *dst, const struct stats *src)
{
    rs_hdr_merge(&dst->lat, &src->lat);
    dst->responses += src->responses;
    for (int i = 0; i < 6; i++) dst->status[i] += src->status[i];
    for (int i = 0; i < ERR_KINDS; i++) dst->errors[i] += src->errors[i];
    dst->bytes_in += src->bytes_in;
    dst->bytes_out += src->bytes_out;
    dst->connects += src->connects;
    dst->handshakes += src->handshakes;
    dst->resumed += src->resumed;
    dst->late += src->late;
    if (src->max_lag_ns > dst->max_lag_ns) dst->max_lag_ns = src->max_lag_ns;
}

static void on_watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "loadgen: workers did not stop by the hard deadline\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
    _exit(3);
}

int main(int argc, char **argv)
{
    if (!parse_args(argc, argv)) return 2;
    if (opt.tls && !tls_init()) return 2;
    build_request();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (open_loop()) interval_ns = (double)opt.conns * 1e9 / opt.rate;
    /* a short lead so the keep-alive connections are open before the first send */
    t0 = now_ns() + 50000000u;
    t_warm = t0 + (uint64_t)(opt.warmup_s * 1e9);
    t_end = t_warm + (uint64_t)(opt.duration_s * 1e9);
    t_hard = t_end + (uint64_t)(opt.timeout_s * 1e9);
    struct worker *ws = calloc((size_t)opt.threads, sizeof *ws);
    if (!ws) abort();
    for (int i = 0; i < opt.threads; i++) {
        uint32_t n = (uint32_t)(opt.conns / opt.threads + (i < opt.conns % opt.threads));
        if (worker_init(&ws[i], n) != 0) {
            perror("loadgen: worker setup");
            return 1;
        }
    }
    place_slots(ws);
    signal(SIGALRM, on_watchdog);
    alarm((unsigned)(opt.warmup_s + opt.duration_s + opt.timeout_s) + 10);
    for (int i = 0; i < opt.threads; i++) {
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
            perror("loadgen: pthread_create");
            return 1;
        }
    }
    struct stats *total = calloc(1, sizeof *total);
    if (!total) abort();
    rs_hdr_init(&total->lat);
    int first_errno = 0;
    const char *tls_error = "";
    for (int i = 0; i < opt.threads; i++) {
        pthread_join(ws[i].tid, NULL);
        merge_stats(total, &ws[i].st);
        if (!first_errno) first_errno = ws[i].first_errno;
        if (!tls_error[0]) tls_error = ws[i].first_tls_error;
    }
    alarm(0);
    if (opt.json)
        report_json(total, first_errno, tls_error);
    else
        report_human(total, first_errno, tls_error);
    int rc = total->responses ? 0 : 1;
    for (int i = 0; i < opt.threads; i++) worker_free(&ws[i]);
    free(ws);
    free(total);
    free(req);
    SSL_CTX_free(tls_ctx);
    return rc;
}
