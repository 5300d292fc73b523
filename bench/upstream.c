/* upstream: a small, fast HTTP/1.1 origin for the integration tests and the benchmarks.
 *
 *   upstream --port P [--id NAME] [--body-bytes N] [--threads T] [--bind ADDR]
 *
 * Keep-alive and pipelining safe (requests are answered strictly in order; a connection stops
 * reading while a response is pending or its output is backed up, so memory per connection is
 * bounded). Endpoints:
 *   GET /             N bytes of body (default 1024), header x-upstream-id: NAME
 *   /echo             the request line and headers it received, as JSON (one header a line)
 *   /status/N         status N
 *   /delay/MS         answered after MS milliseconds (a timer; other connections go on)
 *   /reset            connection closed with RST (SO_LINGER 0), no answer
 *   /bytes/N          N bytes streamed chunked (byte i is 'a' + i % 26)
 *   /close            answered with connection: close, then closed
 *   /stats            connections accepted/active and requests served, as text
 * Any request body (content-length or chunked) is read and counted as it streams, never kept:
 * the answer carries body_bytes and the CRC-32 of the body (zlib's polynomial), in the JSON of
 * /echo and in x-body-bytes / x-body-crc32 headers on every response. Single epoll loop per
 * thread, level-triggered, SO_REUSEPORT listeners. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP (64 * 1024)    /* request head limit and read buffer */
#define OUT_HIGH (256 * 1024) /* stop parsing while this much output is pending */
#define STREAM_CHUNK (16 * 1024)

enum state {
    ST_HEAD,
    ST_BODY_CL,
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_CRLF,
    ST_TRAILER,
    ST_DELAY,
    ST_STREAM,
    ST_CLOSING
};

struct conn {
    int fd;
    enum state st;
    uint32_t events;
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_off, out_cap;
    /* the request being read */
    char method[16], path[1024];
    bool keepalive, head, has_body;
    uint64_t body_left, body_bytes;
    uint32_t crc;
    char *echo; /* JSON of the request head, for /echo */
    size_t echo_len;
    uint64_t delay_until, stream_left, stream_pos;
    struct conn *dprev, *dnext; /* on the delayed list while ST_DELAY */
};

static struct {
    uint16_t port;
    const char *id, *bind;
    size_t body_bytes;
    int threads;
} opt = {.id = "upstream", .bind = "127.0.0.1", .body_bytes = 1024, .threads = 1};

static uint64_t n_accepted, n_active, n_requests;
static uint32_t crc_table[256];
static char *body_blob;

struct worker {
    int ep, lfd;
    struct conn delayed; /* list head */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc_update(uint32_t crc, const char *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ (uint8_t)p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void out_append(struct conn *c, const void *p, size_t n)
{
    if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n) cap *= 2;
        c->out = realloc(c->out, cap);
        if (!c->out) abort();
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void out_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct conn *c, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1) n = sizeof buf - 1;
    out_append(c, buf, (size_t)n);
}

static void echo_append(struct conn *c, const char *p, size_t n)
{
    c->echo = realloc(c->echo, c->echo_len + n + 1);
    if (!c->echo) abort();
    memcpy(c->echo + c->echo_len, p, n);
    c->echo_len += n;
    c->echo[c->echo_len] = 0;
}

/* Appends s as a JSON string body (without quotes), escaping what JSON requires. */
static void echo_json_str(struct conn *c, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char e[8];
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            e[0] = '\\', e[1] = (char)ch;
            echo_append(c, e, 2);
        } else if (ch < 0x20 || ch >= 0x7f) {
            snprintf(e, sizeof e, "\\u%04x", ch);
            echo_append(c, e, 6);
        } else {
            echo_append(c, s + i, 1);
        }
    }
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

/* Status line and the headers every response carries. */
static void head_common(struct conn *c, int status)
{
    out_printf(c,
               "HTTP/1.1 %d %s\r\nx-upstream-id: %s\r\nx-body-bytes: %llu\r\n"
               "x-body-crc32: %08x\r\n%s",
               status, reason(status), opt.id, (unsigned long long)c->body_bytes, c->crc,
               c->keepalive ? "" : "connection: close\r\n");
}

static void respond(struct conn *c, int status, const char *ctype, const char *body, size_t n)
{
    head_common(c, status);
    bool no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
    if (!no_body) out_printf(c, "content-type: %s\r\ncontent-length: %zu\r\n", ctype, n);
    out_append(c, "\r\n", 2);
    if (!no_body && !c->head) out_append(c, body, n);
}

static void finish_request(struct conn *c)
{
    free(c->echo);
    c->echo = NULL;
    c->echo_len = 0;
    c->st = c->keepalive ? ST_HEAD : ST_CLOSING;
}

static void delayed_add(struct worker *w, struct conn *c)
{
    c->dnext = w->delayed.dnext;
    c->dprev = &w->delayed;
    w->delayed.dnext->dprev = c;
    w->delayed.dnext = c;
}

static void delayed_del(struct conn *c)
{
    if (!c->dnext) return;
    c->dprev->dnext = c->dnext;
    c->dnext->dprev = c->dprev;
    c->dnext = c->dprev = NULL;
}

static void close_conn(struct worker *w, struct conn *c, bool rst)
{
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    delayed_del(c);
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c->echo);
    free(c);
    __atomic_fetch_sub(&n_active, 1, __ATOMIC_RELAXED);
}

static void stream_more(struct conn *c)
{
    while (c->stream_left && c->out_len - c->out_off < OUT_HIGH) {
        size_t n = c->stream_left < STREAM_CHUNK ? (size_t)c->stream_left : STREAM_CHUNK;
        char buf[STREAM_CHUNK];
        for (size_t i = 0; i < n; i++) buf[i] = (char)('a' + (c->stream_pos + i) % 26);
        out_printf(c, "%zx\r\n", n);
        out_append(c, buf, n);
        out_append(c, "\r\n", 2);
        c->stream_left -= n;
        c->stream_pos += n;
    }
    if (!c->stream_left) {
        out_append(c, "0\r\n\r\n", 5);
        finish_request(c);
    }
}

/* The request (head and body) is complete: answer it, or arrange for the answer. Returns false
 * when the connection was closed. */
static bool dispatch(struct worker *w, struct conn *c)
{
    const char *p = c->path;
    __atomic_fetch_add(&n_requests, 1, __ATOMIC_RELAXED);
    if (strcmp(p, "/reset") == 0) {
        close_conn(w, c, true);
        return false;
    }
    if (strcmp(p, "/echo") == 0 || strncmp(p, "/echo/", 6) == 0 || strncmp(p, "/echo?", 6) == 0) {
        char tail[128];
        int n = snprintf(tail, sizeof tail,
                         "\n  },\n  \"body_bytes\": %llu,\n  \"body_crc32\": \"%08x\"\n}\n",
                         (unsigned long long)c->body_bytes, c->crc);
        echo_append(c, tail, (size_t)n);
        respond(c, 200, "application/json", c->echo, c->echo_len);
    } else if (strncmp(p, "/status/", 8) == 0) {
        int status = atoi(p + 8);
        if (status < 100 || status > 999) status = 400;
        respond(c, status, "text/plain", "status\n", 7);
    } else if (strncmp(p, "/delay/", 7) == 0) {
        c->delay_until = now_ms() + strtoull(p + 7, NULL, 10);
        c->st = ST_DELAY;
        delayed_add(w, c);
        return true;
    } else if (strncmp(p, "/bytes/", 7) == 0) {
        c->stream_left = strtoull(p + 7, NULL, 10);
        c->stream_pos = 0;
        head_common(c, 200);
        out_printf(c,
                   "content-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n");
        if (c->head) {
            finish_request(c);
            return true;
        }
        c->st = ST_STREAM;
        stream_more(c);
        return true;
    } else if (strcmp(p, "/close") == 0) {
        c->keepalive = false;
        respond(c, 200, "text/plain", "closing\n", 8);
    } else if (strcmp(p, "/stats") == 0) {
        char buf[256];
        int n = snprintf(buf, sizeof buf,
                         "connections_accepted %llu\nconnections_active %llu\nrequests %llu\n",
                         (unsigned long long)__atomic_load_n(&n_accepted, __ATOMIC_RELAXED),
                         (unsigned long long)__atomic_load_n(&n_active, __ATOMIC_RELAXED),
                         (unsigned long long)__atomic_load_n(&n_requests, __ATOMIC_RELAXED));
        respond(c, 200, "text/plain", buf, (size_t)n);
    } else if (c->has_body) {
        char buf[128];
        int n = snprintf(buf, sizeof buf, "body_bytes=%llu crc32=%08x\n",
                         (unsigned long long)c->body_bytes, c->crc);
        respond(c, 200, "text/plain", buf, (size_t)n);
    } else {
        respond(c, 200, "application/octet-stream", body_blob, opt.body_bytes);
    }
    finish_request(c);
    return true;
}

static bool hdr_is(const char *n, size_t nl, const char *want)
{
    return strlen(want) == nl && strncasecmp(n, want, nl) == 0;
}

/* Parses a complete request head of len bytes (ending in CRLFCRLF). Returns false on a
 * malformed head. */
static bool parse_head(struct conn *c, char *h, size_t len)
{
    char *eol = memmem(h, len, "\r\n", 2);
    char *sp1 = memchr(h, ' ', (size_t)(eol - h));
    if (!sp1) return false;
    char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2 || (size_t)(sp1 - h) >= sizeof c->method || (size_t)(sp2 - sp1 - 1) >= sizeof c->path)
        return false;
    memcpy(c->method, h, (size_t)(sp1 - h));
    c->method[sp1 - h] = 0;
    memcpy(c->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    c->path[sp2 - sp1 - 1] = 0;
    bool http10 = eol - sp2 - 1 == 8 && strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    c->keepalive = !http10;
    c->head = strcmp(c->method, "HEAD") == 0;
    c->has_body = false;
    c->body_left = c->body_bytes = 0;
    c->crc = 0;
    bool chunked = false;
    echo_append(c, "{\n  \"method\": \"", 15);
    echo_json_str(c, c->method, strlen(c->method));
    echo_append(c, "\",\n  \"path\": \"", 14);
    echo_json_str(c, c->path, strlen(c->path));
    echo_append(c, "\",\n  \"headers\": {", 17);
    bool first = true;
    for (char *l = eol + 2; l < h + len - 2;) {
        char *e = memmem(l, (size_t)(h + len - l), "\r\n", 2);
        char *colon = memchr(l, ':', (size_t)(e - l));
        if (!colon) return false;
        size_t nl = (size_t)(colon - l);
        char *v = colon + 1;
        while (v < e && (*v == ' ' || *v == '\t')) v++;
        char *ve = e;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        size_t vl = (size_t)(ve - v);
        echo_append(c, first ? "\n    \"" : ",\n    \"", first ? 6 : 7);
        first = false;
        for (size_t i = 0; i < nl; i++) {
            char lc = (char)tolower((unsigned char)l[i]);
            echo_json_str(c, &lc, 1);
        }
        echo_append(c, "\": \"", 4);
        echo_json_str(c, v, vl);
        echo_append(c, "\"", 1);
        if (hdr_is(l, nl, "content-length")) {
            c->body_left = strtoull(v, NULL, 10);
            c->has_body = c->body_left > 0;
        } else if (hdr_is(l, nl, "transfer-encoding")) {
            chunked = vl >= 7 && strncasecmp(ve - 7, "chunked", 7) == 0;
        } else if (hdr_is(l, nl, "connection")) {
            if (vl == 5 && strncasecmp(v, "close", 5) == 0) c->keepalive = false;
            if (vl == 10 && strncasecmp(v, "keep-alive", 10) == 0) c->keepalive = true;
        }
        l = e + 2;
    }
    if (chunked) {
        c->has_body = true;
        c->st = ST_CHUNK_SIZE;
    } else {
        c->st = c->body_left ? ST_BODY_CL : ST_HEAD;
    }
    return true;
}

static void consume(struct conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

static size_t body_take(struct conn *c, size_t off, uint64_t max)
{
    size_t n = c->in_len - off;
    if (n > max) n = (size_t)max;
    c->crc = crc_update(c->crc, c->in + off, n);
    c->body_bytes += n;
    return n;
}

static void bad_request(struct conn *c, int status)
{
    c->keepalive = false;
    respond(c, status, "text/plain", "bad request\n", 12);
    c->st = ST_CLOSING;
}

/* Parses what is buffered, answering each complete request in order. Returns false when the
 * connection was closed. */
static bool advance(struct worker *w, struct conn *c)
{
    size_t off = 0; /* parsed bytes not yet consumed */
    bool ok = true;
    while (ok && c->out_len - c->out_off < OUT_HIGH) {
        size_t avail = c->in_len - off;
        char *p = c->in + off;
        if (c->st == ST_HEAD) {
            char *end = memmem(p, avail, "\r\n\r\n", 4);
            if (!end) {
                if (avail >= IN_CAP) bad_request(c, 431);
                break;
            }
            size_t hl = (size_t)(end - p) + 4;
            if (!parse_head(c, p, hl)) {
                bad_request(c, 400);
                break;
            }
            off += hl;
            if (c->st == ST_HEAD) ok = dispatch(w, c);
        } else if (c->st == ST_BODY_CL) {
            if (!avail) break;
            size_t n = body_take(c, off, c->body_left);
            off += n;
            c->body_left -= n;
            if (!c->body_left) ok = dispatch(w, c);
        } else if (c->st == ST_CHUNK_SIZE || c->st == ST_TRAILER) {
            char *eol = memmem(p, avail, "\r\n", 2);
            if (!eol) {
                if (avail > 4096) bad_request(c, 400);
                break;
            }
            if (c->st == ST_TRAILER) {
                off += (size_t)(eol - p) + 2;
                if (eol == p) ok = dispatch(w, c);
                continue;
            }
            char *e;
            c->body_left = strtoull(p, &e, 16);
            if (e == p) {
                bad_request(c, 400);
                break;
            }
            off += (size_t)(eol - p) + 2;
            c->st = c->body_left ? ST_CHUNK_DATA : ST_TRAILER;
        } else if (c->st == ST_CHUNK_DATA) {
            if (!avail) break;
            size_t n = body_take(c, off, c->body_left);
            off += n;
            c->body_left -= n;
            if (!c->body_left) c->st = ST_CHUNK_CRLF;
        } else if (c->st == ST_CHUNK_CRLF) {
            if (avail < 2) break;
            off += 2;
            c->st = ST_CHUNK_SIZE;
        } else {
            break; /* ST_DELAY, ST_STREAM, ST_CLOSING: nothing more is read until done */
        }
    }
    if (ok) consume(c, off);
    return ok;
}

static void set_events(struct worker *w, struct conn *c)
{
    bool parsing = c->st <= ST_TRAILER;
    uint32_t ev = 0;
    if (parsing && c->out_len - c->out_off < OUT_HIGH && c->in_len < IN_CAP) ev |= EPOLLIN;
    if (c->out_len > c->out_off) ev |= EPOLLOUT;
    if (ev != c->events) {
        struct epoll_event e = {.events = ev, .data.ptr = c};
        epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &e);
        c->events = ev;
    }
}

/* Writes what is pending. Returns false when the connection was closed. */
static bool flush(struct worker *w, struct conn *c)
{
    for (;;) {
        while (c->out_off < c->out_len) {
            ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return true;
            if (n <= 0) {
                close_conn(w, c, false);
                return false;
            }
            c->out_off += (size_t)n;
        }
        c->out_off = c->out_len = 0;
        if (c->out_cap > 64 * 1024) { /* give back what a big response grew */
            free(c->out);
            c->out = NULL;
            c->out_cap = 0;
        }
        if (c->st == ST_STREAM) {
            stream_more(c);
            continue;
        }
        if (c->st == ST_CLOSING) {
            close_conn(w, c, false);
            return false;
        }
        return true;
    }
}

/* Parse, answer, write, re-arm: the one step after anything happens on a connection. */
static void progress(struct worker *w, struct conn *c)
{
    for (;;) {
        size_t in_before = c->in_len;
        enum state st_before = c->st;
        if (!advance(w, c) || !flush(w, c)) return;
        /* a flush may have finished a streamed answer or drained a backlog while pipelined
         * requests wait in the buffer: go on while that makes progress */
        if (c->st > ST_TRAILER || !c->in_len || c->out_len > c->out_off) break;
        if (c->in_len == in_before && c->st == st_before) break;
    }
    set_events(w, c);
}

static void on_readable(struct worker *w, struct conn *c)
{
    if (!c->in) c->in = malloc(IN_CAP);
    if (!c->in) abort();
    ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        close_conn(w, c, false);
        return;
    }
    c->in_len += (size_t)n;
    progress(w, c);
}

static void on_accept(struct worker *w)
{
    for (;;) {
        int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                fprintf(stderr, "upstream: accept: %s\n", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) abort();
        c->fd = fd;
        c->events = EPOLLIN;
        struct epoll_event e = {.events = c->events, .data.ptr = c};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e);
        __atomic_fetch_add(&n_accepted, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&n_active, 1, __ATOMIC_RELAXED);
    }
}

static int run_delayed(struct worker *w)
{
    uint64_t now = now_ms();
    int timeout = -1;
    for (struct conn *c = w->delayed.dnext, *next; c != &w->delayed; c = next) {
        next = c->dnext;
        if (c->delay_until <= now) {
            delayed_del(c);
            char buf[64];
            int n = snprintf(buf, sizeof buf, "delayed %s\n", c->path + 7);
            respond(c, 200, "text/plain", buf, (size_t)n);
            finish_request(c);
            progress(w, c);
        } else {
            int left = (int)(c->delay_until - now);
            if (timeout < 0 || left < timeout) timeout = left;
        }
    }
    return timeout;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[256];
    for (;;) {
        int timeout = run_delayed(w);
        int n = epoll_wait(w->ep, evs, 256, timeout);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                on_accept(w);
                continue;
            }
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                close_conn(w, c, false);
            } else if (evs[i].events & EPOLLIN) {
                on_readable(w, c);
            } else if (evs[i].events & EPOLLOUT) {
                progress(w, c);
            }
        }
    }
    return NULL;
}

static int listen_on(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(opt.port)};
    if (inet_pton(AF_INET, opt.bind, &a.sin_addr) != 1) {
        fprintf(stderr, "upstream: bad --bind address %s\n", opt.bind);
        exit(2);
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4096) != 0) {
        fprintf(stderr, "upstream: cannot listen on %s:%u: %s\n", opt.bind, opt.port,
                strerror(errno));
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"port", required_argument, NULL, 'p'},       {"id", required_argument, NULL, 'i'},
        {"body-bytes", required_argument, NULL, 'b'}, {"threads", required_argument, NULL, 't'},
        {"bind", required_argument, NULL, 'a'},       {0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "p:i:b:t:a:", longs, NULL)) != -1) {
        switch (ch) {
        case 'p':
            opt.port = (uint16_t)atoi(optarg);
            break;
        case 'i':
            opt.id = optarg;
            break;
        case 'b':
            opt.body_bytes = strtoull(optarg, NULL, 10);
            break;
        case 't':
            opt.threads = atoi(optarg);
            break;
        case 'a':
            opt.bind = optarg;
            break;
        default:
            fprintf(stderr, "usage: upstream --port P [--id NAME] [--body-bytes N] [--threads T] "
                            "[--bind ADDR]\n");
            return 2;
        }
    }
    if (!opt.port || opt.threads < 1 || opt.threads > 64) {
        fprintf(stderr, "upstream: --port is required; --threads must be 1..64\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    crc_init();
    body_blob = malloc(opt.body_bytes + 1);
    for (size_t i = 0; i < opt.body_bytes; i++) body_blob[i] = (char)('a' + i % 26);
    struct worker *ws = calloc((size_t)opt.threads, sizeof *ws);
    pthread_t *tids = calloc((size_t)opt.threads, sizeof *tids);
    for (int i = 0; i < opt.threads; i++) {
        struct worker *w = &ws[i];
        w->delayed.dnext = w->delayed.dprev = &w->delayed;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->lfd = listen_on();
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &e);
    }
    printf("upstream %s listening on %s:%u (%d threads)\n", opt.id, opt.bind, opt.port,
           opt.threads);
    fflush(stdout);
    for (int i = 1; i < opt.threads; i++) pthread_create(&tids[i], NULL, worker_main, &ws[i]);
    worker_main(&ws[0]);
    return 0;
}
