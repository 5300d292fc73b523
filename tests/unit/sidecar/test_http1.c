/* Unit tests of the HTTP/1.1 codec: incremental feeding, pipelining, zero-copy bodies, limits,
 * request-smuggling shapes and response framing. */
#include "sidecar/http1.h"

#include <stdlib.h>

#include "test.h"

/* Records what the parser reports as text, so that feeding styles can be compared. */
struct rec {
    char log[48 * 1024];
    size_t n;
    int heads, bodies_outside, completes;
    int head_rc, complete_rc, body_rc;
    const char *lo, *hi; /* the input buffer of the current rs_h1_execute */
};

static void logf_(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void logf_(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(r->log + r->n, sizeof r->log - r->n, fmt, ap);
    va_end(ap);
    if (k > 0) r->n += (size_t)k < sizeof r->log - r->n ? (size_t)k : sizeof r->log - r->n - 1;
}

static int on_head(void *ud, const struct rs_h1_head *h)
{
    struct rec *r = ud;
    r->heads++;
    logf_(r, "[%.*s %.*s %d %u.%u cl=%lld ch=%d ka=%d up=%d hb=%u", (int)h->method_len,
          h->method_str ? h->method_str : "", (int)h->url_len, h->url ? h->url : "", h->status,
          h->http_major, h->http_minor, (long long)h->content_length, h->chunked, h->keep_alive,
          h->upgrade, h->header_bytes);
    for (uint32_t i = 0; i < h->nheaders; i++)
        logf_(r, " %.*s=%.*s", (int)h->headers[i].name_len, h->headers[i].name,
              (int)h->headers[i].value_len, h->headers[i].value);
    logf_(r, "]");
    return r->head_rc;
}

static int on_body(void *ud, const char *at, size_t len)
{
    struct rec *r = ud;
    if (at < r->lo || at + len > r->hi) r->bodies_outside++;
    logf_(r, "%.*s", (int)len, at);
    return r->body_rc;
}

static int on_complete(void *ud)
{
    struct rec *r = ud;
    r->completes++;
    logf_(r, "<done>");
    return r->complete_rc;
}

static const struct rs_h1_callbacks cbs = {on_head, on_body, on_complete};

/* Feeds in pieces of `step` bytes, each copied to its own buffer (as ring buffers would be),
 * resuming after every pause; stops at an upgrade or an error. */
static enum rs_h1_status feed(struct rs_h1_parser *p, struct rec *r, const char *in, size_t len,
                              size_t step)
{
    size_t off = 0;
    enum rs_h1_status st = RS_H1_OK;
    while (off < len) {
        size_t n = len - off < step ? len - off : step, used = 0;
        char *piece = malloc(n);
        memcpy(piece, in + off, n);
        r->lo = piece;
        r->hi = piece + n;
        st = rs_h1_execute(p, piece, n, &used);
        free(piece);
        off += used;
        if (st == RS_H1_PAUSED && !rs_h1_upgraded(p)) {
            rs_h1_resume(p);
            continue;
        }
        if (st != RS_H1_OK) break;
    }
    return st;
}

/* Parses `in` whole with fresh state; result in *r. */
static enum rs_h1_status parse(enum rs_h1_kind kind, const struct rs_h1_limits *lim, const char *in,
                               size_t len, size_t step, struct rec *r, const char **reason)
{
    struct rs_h1_parser p;
    rs_h1_init(&p, kind, lim, &cbs, r);
    enum rs_h1_status st = feed(&p, r, in, len, step ? step : len);
    static char why[128];
    snprintf(why, sizeof why, "%s", rs_h1_reason(&p));
    if (reason) *reason = why;
    rs_h1_free(&p);
    return st;
}

#define S(lit) lit, sizeof(lit) - 1

static void test_simple_get(void)
{
    struct rec r = {0};
    static const char req[] = "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Y:  v  \r\n\r\n";
    CHECK_EQ_INT(parse(RS_H1_REQUEST, NULL, S(req), 0, &r, NULL), RS_H1_OK);
    CHECK_EQ_INT(r.heads, 1);
    CHECK_EQ_INT(r.completes, 1);
    char want[256];
    snprintf(want, sizeof want,
             "[GET /a?b=1 0 1.1 cl=-1 ch=0 ka=1 up=0 hb=%zu Host=example.com X-Y=v  ]<done>",
             sizeof req - 1);
    CHECK_STR(r.log, want);
}

/* Pipelined messages of every framing; any split must report exactly what whole feeding does. */
static void test_byte_at_a_time_equals_whole(void)
{
    static const char req[] = "\r\nPOST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                              "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n"
                              "Trailer-A: x\r\n\r\n"
                              "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    static const char resp[] = "HTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "3\r\nabc\r\n0\r\n\r\n"
                               "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
                               "HTTP/1.0 200 OK\r\n\r\nuntil close";
    struct rec whole = {0};
    CHECK_EQ_INT(parse(RS_H1_REQUEST, NULL, S(req), 0, &whole, NULL), RS_H1_OK);
    CHECK_EQ_INT(whole.completes, 3);
    CHECK(strstr(whole.log, "helloabcdefghijklmnopqrstuvwxyz<done>") != NULL);
    for (size_t step = 1; step < 40; step++) {
        struct rec r = {0};
        CHECK_EQ_INT(parse(RS_H1_REQUEST, NULL, S(req), step, &r, NULL), RS_H1_OK);
        CHECK_STR(r.log, whole.log);
        CHECK_EQ_INT(r.bodies_outside, 0);
    }
    struct rec rwhole = {0};
    struct rs_h1_parser p;
    rs_h1_init(&p, RS_H1_RESPONSE, NULL, &cbs, &rwhole);
    CHECK_EQ_INT(feed(&p, &rwhole, S(resp), sizeof resp), RS_H1_OK);
    CHECK_EQ_INT(rs_h1_finish(&p), RS_H1_OK);
    rs_h1_free(&p);
    CHECK_EQ_INT(rwhole.completes, 4);
    for (size_t step = 1; step < 20; step++) {
        struct rec r = {0};
        rs_h1_init(&p, RS_H1_RESPONSE, NULL, &cbs, &r);
        CHECK_EQ_INT(feed(&p, &r, S(resp), step), RS_H1_OK);
        CHECK_EQ_INT(rs_h1_finish(&p), RS_H1_OK);
        rs_h1_free(&p);
        CHECK_STR(r.log, rwhole.log);
    }
}

static void test_pipelined_pause_resume(void)
{
    static const char in[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                             "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
                             "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
    struct rec r = {.complete_rc = RS_H1_PAUSE};
    struct rs_h1_parser p;
    rs_h1_init(&p, RS_H1_REQUEST, NULL, &cbs, &r);
    r.lo = in;
    r.hi = in + sizeof in - 1;
    size_t used, off = 0;
    CHECK_EQ_INT(rs_h1_execute(&p, in, sizeof in - 1, &used), RS_H1_PAUSED);
    CHECK_EQ_INT(used, 28);
    CHECK_EQ_INT(r.completes, 1);
    CHECK(strstr(r.log, "/2") == NULL);
    /* Paused: nothing more is taken until resumed. */
    CHECK_EQ_INT(rs_h1_execute(&p, in + used, 3, &off), RS_H1_PAUSED);
    CHECK_EQ_INT(off, 0);
    off = used;
    rs_h1_resume(&p);
    CHECK_EQ_INT(rs_h1_execute(&p, in + off, sizeof in - 1 - off, &used), RS_H1_PAUSED);
    off += used;
    CHECK_EQ_INT(r.completes, 2);
    CHECK_EQ_INT(memcmp(in + off, "GET /3", 6), 0);
    rs_h1_resume(&p);
    CHECK_EQ_INT(rs_h1_execute(&p, in + off, sizeof in - 1 - off, &used), RS_H1_PAUSED);
    CHECK_EQ_INT(off + used, sizeof in - 1);
    CHECK_EQ_INT(r.completes, 3);
    rs_h1_resume(&p);
    CHECK_EQ_INT(rs_h1_execute(&p, "", 0, &used), RS_H1_OK);
    CHECK_EQ_INT(rs_h1_finish(&p), RS_H1_OK);
    rs_h1_free(&p);
}

static void test_chunked_zero_copy(void)
{
    static const char in[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
                             "4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n";
    struct rec r = {0};
    struct rs_h1_parser p;
    rs_h1_init(&p, RS_H1_REQUEST, NULL, &cbs, &r);
    r.lo = in;
    r.hi = in + sizeof in - 1;
    size_t used;
    CHECK_EQ_INT(rs_h1_execute(&p, in, sizeof in - 1, &used), RS_H1_OK);
    CHECK_EQ_INT(used, sizeof in - 1);
    CHECK_EQ_INT(r.bodies_outside, 0);
    CHECK(strstr(r.log, "ch=1") != NULL);
    CHECK(strstr(r.log, "]Wikipedia in\r\n\r\nchunks.<done>") != NULL);
    rs_h1_free(&p);
}

static void test_limits(void)
{
    struct rs_h1_limits lim = {.max_header_bytes = 64, .max_headers = 3, .max_body_bytes = 10};
    struct rec r = {0};
    const char *why;
    /* Exactly 64 bytes on the wire is fine, 65 is not, whole or split. */
    char head[80];
    int k = snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: a\r\nX: %032d\r\n\r\n", 0);
    CHECK_EQ_INT(k, 64);
    CHECK_EQ_INT(parse(RS_H1_REQUEST, &lim, head, (size_t)k, 0, &r, NULL), RS_H1_OK);
    k = snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: a\r\nX: %033d\r\n\r\n", 0);
    for (size_t step = 1; step <= (size_t)k; step += 7) {
        memset(&r, 0, sizeof r);
        CHECK_EQ_INT(parse(RS_H1_REQUEST, &lim, head, (size_t)k, step, &r, &why),
                     RS_H1_ERR_HEADERS_TOO_LARGE);
        CHECK_EQ_INT(r.heads, 0);
    }
    static const char many[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_REQUEST, &lim, S(many), 0, &r, &why), RS_H1_ERR_HEADERS_TOO_LARGE);
    CHECK(strstr(why, "max_headers") != NULL);
    /* Declared Content-Length over the limit: refused at the head, before on_head. */
    static const char cl[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_REQUEST, &lim, S(cl), 0, &r, NULL), RS_H1_ERR_BODY_TOO_LARGE);
    CHECK_EQ_INT(r.heads, 0);
    static const char ch[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n";
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_REQUEST, &lim, S(ch), 0, &r, NULL), RS_H1_ERR_BODY_TOO_LARGE);
    CHECK_EQ_INT(r.completes, 0);
    static const char ch10[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n";
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_REQUEST, &lim, S(ch10), 0, &r, NULL), RS_H1_OK);
    /* Trailers have the same size limit as headers. */
    static const char tr[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "0\r\nT: 0123456789012345678901234567890123456789012345678901234567"
                             "89\r\n\r\n";
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_REQUEST, &lim, S(tr), 0, &r, &why), RS_H1_ERR_HEADERS_TOO_LARGE);
    CHECK(strstr(why, "trailers") != NULL);
    CHECK_EQ_INT(r.completes, 0);
    /* Defaults: 60 KiB. */
    size_t n = 61 * 1024;
    char *huge = malloc(n + 64);
    k = snprintf(huge, 64, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(huge + k, 'a', n);
    memcpy(huge + k + n, "\r\n\r\n", 4);
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_REQUEST, NULL, huge, (size_t)k + n + 4, 4096, &r, NULL),
                 RS_H1_ERR_HEADERS_TOO_LARGE);
    free(huge);
}

struct bad_case {
    const char *name, *msg, *reason; /* reason: substring of rs_h1_reason, or NULL */
};

/* Every shape here must be refused with 400, whole and byte by byte, before on_head. */
static const struct bad_case bad_requests[] = {
    {"CL and TE",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: "
     "chunked\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding"},
    {"TE and CL",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: "
     "3\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding"},
    {"two CL differ",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
     "Content-Length"},
    {"two CL same", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
     "Content-Length"},
    {"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", "Content-Length"},
    {"CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\n", "Content-Length"},
    {"CL alpha", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3a\r\n\r\n", "Content-Length"},
    {"CL plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", "Content-Length"},
    {"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\n", "Content-Length"},
    {"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", "Content-Length"},
    {"CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
     "Content-Length"},
    {"TE chunked, gzip",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding"},
    {"TE gzip, chunked",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding"},
    {"TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding"},
    {"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
     "Transfer-Encoding"},
    {"TE twice",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
     "chunked\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding"},
    {"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.0"},
    {"chunk size non-hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "chunk size"},
    {"chunk size overflow",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff1\r\n",
     "overflow"},
    {"chunk size negative",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "chunk size"},
    {"chunk data no CRLF",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
     NULL},
    {"chunk size bare LF",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", NULL},
    {"chunk data bare LF",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", NULL},
    {"last chunk bare LF",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n", "bare LF"},
    {"last chunk size bare LF",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\n", NULL},
    {"trailer bare LF",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\n\r\n", NULL},
    {"trailer obs-fold",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n 2\r\n\r\n",
     NULL},
    {"chunk ext bare LF",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a\nb\r\nabc\r\n0\r\n\r\n",
     NULL},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "obs-fold"},
    {"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", "obs-fold"},
    {"bare LF request-line", "GET / HTTP/1.1\nHost: a\r\n\r\n", "bare LF"},
    {"bare LF header", "GET / HTTP/1.1\r\nHost: a\n\r\n", NULL},
    {"bare LF end of head", "GET / HTTP/1.1\r\nHost: a\r\n\n", "bare LF"},
    {"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", NULL},
    {"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", NULL},
    {"CTL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", NULL},
    {"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n", NULL},
    {"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n", "colon"},
    {"tab before colon", "GET / HTTP/1.1\r\nHost: a\r\nX\t: b\r\n\r\n", NULL},
    {"space before colon CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc", NULL},
    {"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", "empty header name"},
    {"bad header name", "GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n", NULL},
    {"bad method char", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", "method"},
    {"unknown method", "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", "method"},
    {"lower-case method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", "method"},
    {"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", NULL},
    {"CTL in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", NULL},
    {"tab in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", "request-target"},
    {"non-ASCII in target", "GET /a\xff HTTP/1.1\r\nHost: a\r\n\r\n", "request-target"},
    {"fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", "fragment"},
    {"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", NULL},
    {"asterisk outside OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", "asterisk"},
    {"CONNECT origin-form", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", NULL},
    {"bad version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", "version"},
    {"version 1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", "version"},
    {"version 2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "version"},
    {"version 0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", "version"},
    {"HTTP/0.9 request", "GET /\r\n\r\n", NULL},
    {"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", NULL},
    {"1.1 without Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", "Host"},
    {"two Host", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "multiple Host"},
};

static void test_smuggling_rejected(void)
{
    for (size_t i = 0; i < sizeof bad_requests / sizeof bad_requests[0]; i++) {
        const struct bad_case *c = &bad_requests[i];
        size_t len = strlen(c->msg);
        if (!strcmp(c->name, "NUL in value")) len = 35; /* strlen stops at the NUL */
        for (size_t step = 1; step <= len; step = step == 1 ? len : len + 1) {
            struct rec r = {0};
            const char *why = "";
            enum rs_h1_status st = parse(RS_H1_REQUEST, NULL, c->msg, len, step, &r, &why);
            bool body_before_reject = r.completes > 0;
            if (st != RS_H1_ERR_BAD_MESSAGE || body_before_reject ||
                (c->reason && !strstr(why, c->reason)))
                fprintf(stderr, "  case \"%s\" step %zu: status %d reason \"%s\" completes %d\n",
                        c->name, step, st, why, r.completes);
            CHECK_EQ_INT(st, RS_H1_ERR_BAD_MESSAGE);
            CHECK(!body_before_reject);
            if (c->reason) CHECK(strstr(why, c->reason) != NULL);
        }
    }
}

/* What RFC 9112 lets a recipient accept, and we do. */
static void test_accepted_shapes(void)
{
    static const char *const ok[] = {
        "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",              /* §2.2: leading empty line */
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",              /* asterisk-form */
        "GET http://a.example/x HTTP/1.1\r\nHost: a\r\n\r\n", /* absolute-form */
        "GET / HTTP/1.0\r\n\r\n",                             /* 1.0 needs no Host */
        "GET / HTTP/1.1\r\nHost:\r\n\r\n",                    /* empty Host (§3.2) */
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\xff\r\n\r\n",   /* HTAB and obs-text in a value */
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0003\r\n\r\nabc",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct rec r = {0};
        const char *why;
        enum rs_h1_status st = parse(RS_H1_REQUEST, NULL, ok[i], strlen(ok[i]), 0, &r, &why);
        if (st != RS_H1_OK) fprintf(stderr, "  case %zu: %d %s\n", i, st, why);
        CHECK_EQ_INT(st, RS_H1_OK);
        CHECK_EQ_INT(r.completes, 1);
    }
}

static void test_keep_alive(void)
{
    struct {
        const char *msg;
        int ka;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rec r = {0};
        CHECK_EQ_INT(parse(RS_H1_REQUEST, NULL, cases[i].msg, strlen(cases[i].msg), 0, &r, NULL),
                     RS_H1_OK);
        CHECK(strstr(r.log, cases[i].ka ? "ka=1" : "ka=0") != NULL);
    }
}

static void test_upgrade_and_connect(void)
{
    static const char ws[] = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n\x81\x05hello";
    struct rec r = {0};
    struct rs_h1_parser p;
    rs_h1_init(&p, RS_H1_REQUEST, NULL, &cbs, &r);
    size_t used;
    CHECK_EQ_INT(rs_h1_execute(&p, ws, sizeof ws - 1, &used), RS_H1_PAUSED);
    CHECK(rs_h1_upgraded(&p));
    CHECK_EQ_INT(used, sizeof ws - 1 - 7);
    CHECK(strstr(r.log, "up=1") != NULL);
    CHECK_EQ_INT(r.completes, 1);
    /* Upstream refused the upgrade: HTTP/1 goes on. */
    rs_h1_resume(&p);
    static const char next[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_EQ_INT(rs_h1_execute(&p, next, sizeof next - 1, &used), RS_H1_OK);
    CHECK_EQ_INT(r.completes, 2);
    rs_h1_free(&p);

    static const char conn[] = "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"
                               "\x16\x03\x01";
    memset(&r, 0, sizeof r);
    rs_h1_init(&p, RS_H1_REQUEST, NULL, &cbs, &r);
    CHECK_EQ_INT(rs_h1_execute(&p, conn, sizeof conn - 1, &used), RS_H1_PAUSED);
    CHECK(rs_h1_upgraded(&p));
    CHECK_EQ_INT(used, sizeof conn - 1 - 3);
    CHECK(strstr(r.log, "[CONNECT a.example:443") != NULL);
    rs_h1_free(&p);

    /* 101 response: the rest belongs to the new protocol. */
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                             "Upgrade: websocket\r\n\r\nXYZ";
    memset(&r, 0, sizeof r);
    rs_h1_init(&p, RS_H1_RESPONSE, NULL, &cbs, &r);
    CHECK_EQ_INT(rs_h1_execute(&p, sw, sizeof sw - 1, &used), RS_H1_PAUSED);
    CHECK(rs_h1_upgraded(&p));
    CHECK_EQ_INT(used, sizeof sw - 1 - 3);
    rs_h1_free(&p);
}

static void test_responses(void)
{
    struct rec r = {0};
    struct rs_h1_parser p;
    size_t used;
    /* 100-continue then the final response. */
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "
                               "2\r\n\r\nok";
    CHECK_EQ_INT(parse(RS_H1_RESPONSE, NULL, S(cont), 0, &r, NULL), RS_H1_OK);
    CHECK_EQ_INT(r.heads, 2);
    CHECK(strstr(r.log, " 100 1.1 ") != NULL);
    CHECK(strstr(r.log, "]ok<done>") != NULL);
    /* 204 and 304 have no body whatever Content-Length says. */
    static const char nb[] = "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
                             "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_RESPONSE, NULL, S(nb), 0, &r, NULL), RS_H1_OK);
    CHECK_EQ_INT(r.completes, 3);
    CHECK(strstr(r.log, "]x<done>") != NULL);
    /* Response to HEAD: the caller says there is no body. */
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    memset(&r, 0, sizeof r);
    r.head_rc = RS_H1_SKIP_BODY;
    CHECK_EQ_INT(parse(RS_H1_RESPONSE, NULL, S(head), 0, &r, NULL), RS_H1_OK);
    CHECK_EQ_INT(r.completes, 2);
    /* Read-until-close body, finished by the peer closing. */
    static const char eof[] = "HTTP/1.1 200 OK\r\n\r\nsome body";
    memset(&r, 0, sizeof r);
    rs_h1_init(&p, RS_H1_RESPONSE, NULL, &cbs, &r);
    r.lo = eof;
    r.hi = eof + sizeof eof - 1;
    CHECK_EQ_INT(rs_h1_execute(&p, eof, sizeof eof - 1, &used), RS_H1_OK);
    CHECK(strstr(r.log, "ka=0") != NULL);
    CHECK_EQ_INT(r.completes, 0);
    CHECK_EQ_INT(rs_h1_finish(&p), RS_H1_OK);
    CHECK_EQ_INT(r.completes, 1);
    CHECK(strstr(r.log, "]some body<done>") != NULL);
    rs_h1_free(&p);
    /* Truncated Content-Length body. */
    static const char trunc[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    memset(&r, 0, sizeof r);
    rs_h1_init(&p, RS_H1_RESPONSE, NULL, &cbs, &r);
    CHECK_EQ_INT(rs_h1_execute(&p, trunc, sizeof trunc - 1, &used), RS_H1_OK);
    CHECK_EQ_INT(rs_h1_finish(&p), RS_H1_ERR_BAD_MESSAGE);
    CHECK(strstr(rs_h1_reason(&p), "closed") != NULL);
    rs_h1_free(&p);
    /* Truncated head; and a close between messages is fine. */
    memset(&r, 0, sizeof r);
    rs_h1_init(&p, RS_H1_RESPONSE, NULL, &cbs, &r);
    CHECK_EQ_INT(rs_h1_finish(&p), RS_H1_OK);
    CHECK_EQ_INT(rs_h1_execute(&p, "HTTP/1.1 200 OK\r\n", 17, &used), RS_H1_OK);
    CHECK_EQ_INT(rs_h1_finish(&p), RS_H1_ERR_BAD_MESSAGE);
    rs_h1_free(&p);
    /* Chunked response with trailers; unknown transfer coding refused (Envoy: only chunked). */
    static const char chr[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "2\r\nab\r\n0\r\nGrpc-Status: 0\r\n\r\n";
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_RESPONSE, NULL, S(chr), 1, &r, NULL), RS_H1_OK);
    CHECK(strstr(r.log, "]ab<done>") != NULL);
    static const char gz[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx";
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_RESPONSE, NULL, S(gz), 0, &r, NULL), RS_H1_ERR_BAD_MESSAGE);
    static const char badst[] = "HTTP/1.1 2x0 OK\r\n\r\n";
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_RESPONSE, NULL, S(badst), 0, &r, NULL), RS_H1_ERR_BAD_MESSAGE);
    static const char clte[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: "
                               "chunked\r\n\r\n0\r\n\r\n";
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(parse(RS_H1_RESPONSE, NULL, S(clte), 0, &r, NULL), RS_H1_ERR_BAD_MESSAGE);
}

static int abort_head(void *ud, const struct rs_h1_head *h)
{
    (void)ud;
    (void)h;
    return -1;
}

static void test_errors_sticky_and_reset(void)
{
    struct rec r = {0};
    struct rs_h1_parser p;
    size_t used;
    rs_h1_init(&p, RS_H1_REQUEST, NULL, &cbs, &r);
    CHECK_EQ_INT(rs_h1_execute(&p, "BAD\r\n", 5, &used), RS_H1_ERR_BAD_MESSAGE);
    static const char ok[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_EQ_INT(rs_h1_execute(&p, ok, sizeof ok - 1, &used), RS_H1_ERR_BAD_MESSAGE);
    CHECK_EQ_INT(used, 0);
    rs_h1_reset(&p);
    CHECK_EQ_INT(rs_h1_execute(&p, ok, sizeof ok - 1, &used), RS_H1_OK);
    CHECK_EQ_INT(r.completes, 1);
    rs_h1_free(&p);

    static const struct rs_h1_callbacks ab = {abort_head, NULL, NULL};
    rs_h1_init(&p, RS_H1_REQUEST, NULL, &ab, &r);
    CHECK_EQ_INT(rs_h1_execute(&p, ok, sizeof ok - 1, &used), RS_H1_ERR_CALLBACK);
    rs_h1_free(&p);
    memset(&r, 0, sizeof r);
    r.body_rc = -1;
    static const char post[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab";
    CHECK_EQ_INT(parse(RS_H1_REQUEST, NULL, S(post), 0, &r, NULL), RS_H1_ERR_CALLBACK);
}

static void test_memory_stays_small(void)
{
    struct rec r = {0};
    struct rs_h1_parser p;
    size_t used;
    CHECK(sizeof p <= 256);
    rs_h1_init(&p, RS_H1_REQUEST, NULL, &cbs, &r);
    CHECK_EQ_INT(rs_h1_memory(&p), 0);
    /* A 20 KiB head grows storage, which goes back to the minimum after on_head. */
    size_t n = 20 * 1024;
    char *big = malloc(n + 128);
    int k = snprintf(big, 128, "GET / HTTP/1.1\r\nHost: a\r\nCookie: ");
    memset(big + k, 'c', n);
    int k2 = snprintf(big + k + n, 64, "\r\nX-Last: end\r\n\r\n");
    r.lo = big;
    r.hi = big + k + n + k2;
    CHECK_EQ_INT(rs_h1_execute(&p, big, (size_t)k + n + (size_t)k2, &used), RS_H1_OK);
    CHECK(strstr(r.log, " X-Last=end]") != NULL);
    CHECK(rs_h1_memory(&p) <= RS_H1_HEAD_MIN);
    free(big);
    static const char ok[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_EQ_INT(rs_h1_execute(&p, ok, sizeof ok - 1, &used), RS_H1_OK);
    CHECK_EQ_INT(rs_h1_memory(&p), RS_H1_HEAD_MIN);
    rs_h1_trim(&p);
    CHECK_EQ_INT(rs_h1_memory(&p), 0);
    CHECK_EQ_INT(rs_h1_execute(&p, ok, sizeof ok - 1, &used), RS_H1_OK);
    CHECK_EQ_INT(r.completes, 3);
    rs_h1_free(&p);
}

static void test_helpers(void)
{
    (void)rs_test_failures; /* test.h defines it; gcc -Werror=unused-variable otherwise */
    char out[20];
    CHECK_EQ_INT(rs_h1_chunk_header(out, 0), 3);
    CHECK_EQ_INT(memcmp(out, "0\r\n", 3), 0);
    CHECK_EQ_INT(rs_h1_chunk_header(out, 0x1a2b), 6);
    CHECK_EQ_INT(memcmp(out, "1a2b\r\n", 6), 0);
    CHECK_EQ_INT(rs_h1_chunk_header(out, SIZE_MAX), 18);
    CHECK_EQ_INT(memcmp(out, "ffffffffffffffff\r\n", 18), 0);
    CHECK_STR(rs_h1_reason_phrase(404), "Not Found");
    CHECK_STR(rs_h1_reason_phrase(431), "Request Header Fields Too Large");
    CHECK_STR(rs_h1_reason_phrase(299), "Unknown");
    char line[64];
    CHECK_EQ_INT(rs_h1_status_line(line, sizeof line, 503, false), 34);
    CHECK_STR(line, "HTTP/1.1 503 Service Unavailable\r\n");
    CHECK_EQ_INT(rs_h1_status_line(line, 10, 200, false), 0);
    CHECK(rs_h1_name_eq("Content-Length", 14, "content-length"));
    CHECK(!rs_h1_name_eq("Content-Lengt", 13, "content-length"));
    CHECK(!rs_h1_name_eq("Content-Lengthx", 15, "content-length"));
    CHECK(rs_h1_is_hop_by_hop("Transfer-Encoding", 17));
    CHECK(rs_h1_is_hop_by_hop("TE", 2));
    CHECK(rs_h1_is_hop_by_hop("Proxy-Connection", 16));
    CHECK(!rs_h1_is_hop_by_hop("Host", 4));
    struct rs_h1_header hs[] = {{"Host", 4, "a", 1}, {"Connection", 10, "close, X-Foo ,bar", 17}};
    struct rs_h1_head h = {.headers = hs, .nheaders = 2};
    CHECK(rs_h1_find(&h, "host") == &hs[0]);
    CHECK(rs_h1_find(&h, "te") == NULL);
    CHECK(rs_h1_connection_lists(&h, "x-foo", 5));
    CHECK(rs_h1_connection_lists(&h, "BAR", 3));
    CHECK(!rs_h1_connection_lists(&h, "x-fo", 4));
}

RUN_TESTS(TEST_CASE(test_simple_get), TEST_CASE(test_byte_at_a_time_equals_whole),
          TEST_CASE(test_pipelined_pause_resume), TEST_CASE(test_chunked_zero_copy),
          TEST_CASE(test_limits), TEST_CASE(test_smuggling_rejected),
          TEST_CASE(test_accepted_shapes), TEST_CASE(test_keep_alive),
          TEST_CASE(test_upgrade_and_connect), TEST_CASE(test_responses),
          TEST_CASE(test_errors_sticky_and_reset), TEST_CASE(test_memory_stays_small),
          TEST_CASE(test_helpers))
