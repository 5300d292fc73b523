/* HTTP/1.1 codec on llhttp: this file owns head storage, the limits, the framing checks llhttp
 * leaves to its caller, and the pause/resume protocol of rs_h1_execute.
 *
 * llhttp stops (HPE_PAUSED) at four points we ask for, so that we learn where in the input they
 * are: message begin (start of the head), headers complete (end of the head: its wire size, and
 * our checks run before on_head), the last chunk (start of trailers) and message complete after
 * trailers. A caller's RS_H1_PAUSE from on_complete is a fifth. Between those points llhttp runs
 * at full speed; the only per-byte work of ours is scan_bytes() over head and trailer bytes.
 *
 * What llhttp 8.1 (strict build, no lenient flags) rejects itself: Content-Length with
 * Transfer-Encoding, any second Content-Length (same value too), non-digit/empty/overflowing
 * Content-Length, Transfer-Encoding in a request whose final coding is not chunked, chunked twice,
 * bad chunk sizes and missing CRLF after chunk data, bare CR, CTLs but NUL in values, invalid
 * token characters, whitespace before the colon of the headers it interprets, unknown methods,
 * CTLs in the request-target, versions other than 0.9/1.x/2.0. The rest is ours, below.
 *
 * Decisions: a repeated Content-Length is refused even with equal values ("42, 42" too): RFC 9110
 * §8.6 lets a recipient either reject or collapse it, and rejecting is what llhttp does and leaves
 * no disagreement with any other hop. Transfer-Encoding must be exactly "chunked" (Envoy answers
 * other codings with 501; we report BAD_MESSAGE). The request line may use several spaces between
 * its parts (RFC 9112 §3 allows whitespace-delimited parsing) and empty lines before it (§2.2). */
#include "sidecar/http1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/blk.h"

enum phase { PH_IDLE, PH_HEAD, PH_BODY, PH_TRAILERS };
enum stop { STOP_NONE, STOP_BEGIN, STOP_HEAD, STOP_TRAILERS, STOP_END, STOP_USER };
enum field_state { FS_NONE, FS_NAME, FS_VALUE };

/* scan_bytes() state, kept across input buffers. */
#define SC_PREV_CR 0x1    /* previous byte was CR */
#define SC_LINE_START 0x2 /* next byte starts a header/trailer line */
#define SC_IN_NAME 0x4    /* inside a field name */

/* A header while the head is parsed (offsets: storage may move) and once it is handed out. */
union slot {
    struct rs_h1_header pub;
    struct {
        uint32_t name_off, name_len, value_off, value_len;
    } off;
};
#define SLOT ((uint32_t)sizeof(union slot))

static const struct rs_h1_limits default_limits = {60 * 1024, 100, 0};

static struct rs_h1_parser *from_ll(llhttp_t *ll)
{
    return (struct rs_h1_parser *)(void *)((char *)ll - offsetof(struct rs_h1_parser, ll));
}

/* Records the first error (the one that caused the others) and returns llhttp's abort value. */
static int fail(struct rs_h1_parser *p, enum rs_h1_status st, const char *reason)
{
    if (!p->err) {
        p->err = (uint8_t)st;
        p->reason = reason;
    }
    return -1;
}

_Static_assert(RS_H1_HEAD_MIN == RS_BLK_SIZE, "small head storage is one cached block");

/* Head storage of the minimum size comes from the worker's block cache: a keep-alive connection
 * takes and returns one per message, and malloc would do that work for every request. */
static char *head_alloc(uint64_t cap)
{
    return cap == RS_H1_HEAD_MIN ? rs_blk_get() : malloc(cap);
}

static void head_release(struct rs_h1_parser *p)
{
    if (p->cap == RS_H1_HEAD_MIN)
        rs_blk_put(p->buf);
    else
        free(p->buf);
    p->buf = NULL;
    p->cap = 0;
}

static union slot *slot_at(struct rs_h1_parser *p, uint32_t i)
{
    return (union slot *)(void *)(p->buf + p->cap - (size_t)(i + 1) * SLOT);
}

/* Makes room for text_len + text bytes of text and nslots slots; the text keeps its offsets and
 * the slots stay packed against the end. */
static int reserve(struct rs_h1_parser *p, uint32_t text, uint32_t nslots)
{
    uint64_t need = (uint64_t)text + (uint64_t)nslots * SLOT;
    if (need <= p->cap) return 0;
    uint64_t cap = p->cap ? p->cap : RS_H1_HEAD_MIN;
    while (cap < need) cap *= 2;
    char *nb = head_alloc(cap);
    if (!nb) return fail(p, RS_H1_ERR_NO_MEMORY, "out of memory for the message head");
    if (p->buf) {
        size_t slots = (size_t)p->nslots * SLOT;
        memcpy(nb, p->buf, p->text_len);
        memcpy(nb + cap - slots, p->buf + p->cap - slots, slots);
        head_release(p);
    }
    p->buf = nb;
    p->cap = (uint32_t)cap;
    return 0;
}

static int append(struct rs_h1_parser *p, const char *at, size_t len)
{
    if (p->text_len + len > p->lim.max_header_bytes)
        return fail(p, RS_H1_ERR_HEADERS_TOO_LARGE, "headers larger than max_header_bytes");
    if (reserve(p, p->text_len + (uint32_t)len, p->nslots)) return -1;
    memcpy(p->buf + p->text_len, at, len);
    p->text_len += (uint32_t)len;
    return 0;
}

/* Back to small storage once a big head has been handed out (10k idle connections). */
static void shrink(struct rs_h1_parser *p)
{
    p->text_len = 0;
    p->nslots = 0;
    if (p->cap <= RS_H1_HEAD_MIN) return;
    head_release(p);
}

/* ---- llhttp callbacks ---- */

static int ll_on_message_begin(llhttp_t *ll)
{
    struct rs_h1_parser *p = from_ll(ll);
    p->phase = PH_HEAD;
    p->text_len = p->nslots = p->nfields = 0;
    p->method_len = p->url_len = 0;
    p->wire_bytes = 0;
    p->body_bytes = 0;
    p->field_state = FS_NONE;
    p->scan = 0; /* the start line may not begin with whitespace either, llhttp checks that */
    p->stop = STOP_BEGIN;
    return HPE_PAUSED;
}

static int ll_on_method(llhttp_t *ll, const char *at, size_t len)
{
    struct rs_h1_parser *p = from_ll(ll);
    if (append(p, at, len)) return -1;
    p->method_len += (uint32_t)len;
    return 0;
}

static int ll_on_url(llhttp_t *ll, const char *at, size_t len)
{
    struct rs_h1_parser *p = from_ll(ll);
    if (append(p, at, len)) return -1;
    p->url_len += (uint32_t)len;
    return 0;
}

static int ll_on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    struct rs_h1_parser *p = from_ll(ll);
    if (p->field_state != FS_NAME) {
        p->field_state = FS_NAME;
        if (++p->nfields > p->lim.max_headers)
            return fail(p, RS_H1_ERR_HEADERS_TOO_LARGE, "more header fields than max_headers");
        if (p->phase == PH_HEAD) {
            if (reserve(p, p->text_len, p->nslots + 1)) return -1;
            slot_at(p, p->nslots++)->off.name_off = p->text_len;
        }
    }
    /* Trailers are checked and counted but not kept: like Envoy without enable_trailers, we do
     * not forward them. */
    return p->phase == PH_HEAD ? append(p, at, len) : 0;
}

static int ll_on_header_field_complete(llhttp_t *ll)
{
    struct rs_h1_parser *p = from_ll(ll);
    p->field_state = FS_VALUE;
    if (p->phase != PH_HEAD) return 0;
    union slot *s = slot_at(p, p->nslots - 1);
    s->off.name_len = p->text_len - s->off.name_off;
    s->off.value_off = p->text_len;
    return 0;
}

static int ll_on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    struct rs_h1_parser *p = from_ll(ll);
    return p->phase == PH_HEAD ? append(p, at, len) : 0;
}

static int ll_on_header_value_complete(llhttp_t *ll)
{
    struct rs_h1_parser *p = from_ll(ll);
    p->field_state = FS_NONE;
    if (p->phase != PH_HEAD) return 0;
    union slot *s = slot_at(p, p->nslots - 1);
    s->off.value_len = p->text_len - s->off.value_off;
    return 0;
}

static int ll_on_headers_complete(llhttp_t *ll)
{
    from_ll(ll)->stop = STOP_HEAD;
    return HPE_PAUSED;
}

static int ll_on_body(llhttp_t *ll, const char *at, size_t len)
{
    struct rs_h1_parser *p = from_ll(ll);
    p->body_bytes += len;
    if (p->lim.max_body_bytes && p->body_bytes > p->lim.max_body_bytes)
        return fail(p, RS_H1_ERR_BODY_TOO_LARGE, "body larger than max_body_bytes");
    if (p->cb->on_body && p->cb->on_body(p->ud, at, len) < 0)
        return fail(p, RS_H1_ERR_CALLBACK, "on_body aborted");
    return 0;
}

static int ll_on_chunk_header(llhttp_t *ll)
{
    struct rs_h1_parser *p = from_ll(ll);
    if (ll->content_length != 0) return 0;
    /* The last chunk: what follows up to the empty line is the trailer section. */
    p->stop = STOP_TRAILERS;
    return HPE_PAUSED;
}

static int call_on_complete(struct rs_h1_parser *p)
{
    p->phase = PH_IDLE;
    int rc = p->cb->on_complete ? p->cb->on_complete(p->ud) : 0;
    if (rc < 0) return fail(p, RS_H1_ERR_CALLBACK, "on_complete aborted");
    if (rc == RS_H1_PAUSE) {
        p->stop = STOP_USER;
        return HPE_PAUSED;
    }
    return 0;
}

static int ll_on_message_complete(llhttp_t *ll)
{
    struct rs_h1_parser *p = from_ll(ll);
    if (p->phase == PH_TRAILERS) {
        /* Scan the trailers before anyone hears the message is complete. */
        p->stop = STOP_END;
        return HPE_PAUSED;
    }
    return call_on_complete(p);
}

static const llhttp_settings_t ll_settings = {
    .on_message_begin = ll_on_message_begin,
    .on_method = ll_on_method,
    .on_url = ll_on_url,
    .on_header_field = ll_on_header_field,
    .on_header_field_complete = ll_on_header_field_complete,
    .on_header_value = ll_on_header_value,
    .on_header_value_complete = ll_on_header_value_complete,
    .on_headers_complete = ll_on_headers_complete,
    .on_body = ll_on_body,
    .on_chunk_header = ll_on_chunk_header,
    .on_message_complete = ll_on_message_complete,
};

/* ---- our checks on raw head/trailer bytes ---- */

/* Bytes that change scan_bytes()'s state or fail it, inside a value or the start line (state 0)
 * and inside a field name (SC_IN_NAME): runs of other bytes are skipped without the state
 * machine, which is most of a head. */
static const uint8_t stop_in_value[256] = {['\0'] = 1, ['\r'] = 1, ['\n'] = 1};
static const uint8_t stop_in_name[256] = {
    ['\0'] = 1, ['\r'] = 1, ['\n'] = 1, [':'] = 1, [' '] = 1, ['\t'] = 1};

/* What llhttp accepts in the head but RFC 9112 forbids and smuggling uses: a bare LF as line end
 * (§2.2; llhttp takes one at the end of the request-line and of the head, and after the last
 * chunk), obs-fold (§5.2), whitespace between field name and colon (§5.1: MUST reject), and NUL
 * in a field value (§5.5). */
static int scan_bytes(struct rs_h1_parser *p, const char *from, const char *to)
{
    uint8_t sc = p->scan;
    const unsigned char *end = (const unsigned char *)to;
    for (const unsigned char *c = (const unsigned char *)from; c < end; c++) {
        if (sc == 0)
            while (c < end && !stop_in_value[*c]) c++;
        else if (sc == SC_IN_NAME)
            while (c < end && !stop_in_name[*c]) c++;
        if (c == end) break;
        if (*c == '\n') {
            if (!(sc & SC_PREV_CR)) return fail(p, RS_H1_ERR_BAD_MESSAGE, "bare LF line ending");
            sc = SC_LINE_START;
            continue;
        }
        if (*c == '\0') return fail(p, RS_H1_ERR_BAD_MESSAGE, "NUL in the message head");
        if (sc & SC_LINE_START) {
            if (*c == ' ' || *c == '\t')
                return fail(p, RS_H1_ERR_BAD_MESSAGE, "obs-fold (header continuation line)");
            if (*c == ':') return fail(p, RS_H1_ERR_BAD_MESSAGE, "empty header name");
            sc = *c == '\r' ? 0 : SC_IN_NAME;
        } else if (sc & SC_IN_NAME) {
            if (*c == ':')
                sc &= (uint8_t)~SC_IN_NAME;
            else if (*c == ' ' || *c == '\t')
                return fail(p, RS_H1_ERR_BAD_MESSAGE, "whitespace between header name and colon");
        }
        sc = (uint8_t)((sc & ~SC_PREV_CR) | (*c == '\r' ? SC_PREV_CR : 0));
    }
    p->scan = sc;
    return 0;
}

/* Accounts head/trailer bytes [p->scan_from, to) against the limit and scans them. */
static int take_wire(struct rs_h1_parser *p, const char *to)
{
    size_t n = (size_t)(to - p->scan_from);
    if (p->wire_bytes + n > p->lim.max_header_bytes)
        return fail(p, RS_H1_ERR_HEADERS_TOO_LARGE,
                    p->phase == PH_TRAILERS ? "trailers larger than max_header_bytes"
                                            : "headers larger than max_header_bytes");
    p->wire_bytes += (uint32_t)n;
    int rc = scan_bytes(p, p->scan_from, to);
    p->scan_from = to;
    return rc;
}

/* ---- head checks ---- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Value with leading/trailing OWS removed (llhttp strips the leading part only). */
static void trim(const struct rs_h1_header *h, const char **v, size_t *n)
{
    const char *s = h->value, *e = h->value + h->value_len;
    while (s < e && is_ows(*s)) s++;
    while (e > s && is_ows(e[-1])) e--;
    *v = s;
    *n = (size_t)(e - s);
}

/* RFC 9112 §3.2: origin-form for most, authority-form for CONNECT only, asterisk-form for OPTIONS
 * only, absolute-form for proxies. No CTL, SP, DEL or non-ASCII; no fragment (Envoy rejects
 * those too). */
static const char *check_target(const struct rs_h1_head *h)
{
    if (h->url_len == 0) return "empty request-target";
    for (uint32_t i = 0; i < h->url_len; i++) {
        unsigned char c = (unsigned char)h->url[i];
        if (c <= 0x20 || c >= 0x7f) return "invalid character in request-target";
        if (c == '#') return "fragment in request-target";
    }
    bool connect = h->method == HTTP_CONNECT;
    if (h->url[0] == '/') return connect ? "CONNECT needs authority-form target" : NULL;
    if (h->url_len == 1 && h->url[0] == '*')
        return h->method == HTTP_OPTIONS ? NULL : "asterisk-form target outside OPTIONS";
    if (connect) return memchr(h->url, '/', h->url_len) ? "invalid CONNECT target" : NULL;
    for (uint32_t i = 0; i + 2 < h->url_len; i++) {
        char c = h->url[i];
        if (c == ':')
            return i > 0 && h->url[i + 1] == '/' && h->url[i + 2] == '/' ? NULL
                                                                         : "invalid request-target";
        if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(i > 0 && strchr("0123456789+-.", c)))
            break;
    }
    return "invalid request-target";
}

/* Framing and Host checks that llhttp does not make; a reason string, or NULL when fine. */
static const char *check_head(struct rs_h1_parser *p, const struct rs_h1_head *h)
{
    if (h->http_major != 1 || h->http_minor > 1) return "unsupported HTTP version";
    uint32_t host = 0, te = 0;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct rs_h1_header *f = &h->headers[i];
        if (f->name_len == 0) return "empty header name";
        if (rs_h1_name_eq(f->name, f->name_len, "host")) host++;
        if (!rs_h1_name_eq(f->name, f->name_len, "transfer-encoding")) continue;
        const char *v;
        size_t n;
        trim(f, &v, &n);
        /* Only a lone "chunked", as Envoy: another coding before it would reach the upstream
         * undeclared once we re-frame the body, and one after it leaves no length (§6.3). */
        if (!rs_h1_name_eq(v, n, "chunked")) return "unsupported Transfer-Encoding";
        te++;
    }
    if (te && h->http_minor == 0) return "Transfer-Encoding in HTTP/1.0"; /* RFC 9112 §6.1 */
    if (te > 1) return "Transfer-Encoding repeated";
    if (p->kind == RS_H1_REQUEST) {
        if (host > 1) return "multiple Host headers"; /* RFC 9112 §3.2 */
        if (host == 0 && h->http_minor == 1) return "HTTP/1.1 request without Host";
        return check_target(h);
    }
    return NULL;
}

/* Converts the slots (offsets, stored from the back) into the public array in order. */
static const struct rs_h1_header *publish_headers(struct rs_h1_parser *p)
{
    uint32_t n = p->nslots;
    if (!n) return NULL;
    union slot *base = slot_at(p, n - 1);
    for (uint32_t i = 0; i < n; i++) {
        union slot *s = &base[i];
        uint32_t no = s->off.name_off, nl = s->off.name_len;
        uint32_t vo = s->off.value_off, vl = s->off.value_len;
        s->pub = (struct rs_h1_header){p->buf + no, nl, p->buf + vo, vl};
    }
    for (uint32_t i = 0; i < n / 2; i++) { /* slot 0 is the last one in memory */
        struct rs_h1_header t = base[i].pub;
        base[i].pub = base[n - 1 - i].pub;
        base[n - 1 - i].pub = t;
    }
    return &base[0].pub;
}

static bool body_until_close(const llhttp_t *ll)
{
    return !(ll->flags & (F_CHUNKED | F_CONTENT_LENGTH | F_SKIPBODY));
}

static void fill_head(struct rs_h1_parser *p, struct rs_h1_head *h)
{
    llhttp_t *ll = &p->ll;
    *h = (struct rs_h1_head){0};
    h->method = ll->method;
    h->method_str = p->buf;
    h->method_len = p->method_len;
    h->url = p->buf ? p->buf + p->method_len : NULL;
    h->url_len = p->url_len;
    h->status = ll->status_code;
    h->http_major = ll->http_major;
    h->http_minor = ll->http_minor;
    h->headers = publish_headers(p);
    h->nheaders = p->nslots;
    h->content_length = ll->flags & F_CONTENT_LENGTH ? (int64_t)ll->content_length : -1;
    h->chunked = ll->flags & F_CHUNKED;
    h->upgrade = ll->upgrade;
    h->header_bytes = p->wire_bytes;
    /* RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive". */
    bool close = ll->flags & F_CONNECTION_CLOSE;
    h->keep_alive = h->http_minor >= 1 ? !close : (ll->flags & F_CONNECTION_KEEP_ALIVE) && !close;
}

/* At the end of the head: checks, then on_head, then tell llhttp whether a body follows. */
static int on_head_done(struct rs_h1_parser *p)
{
    struct rs_h1_head h;
    llhttp_t *ll = &p->ll;
    fill_head(p, &h);
    const char *why = check_head(p, &h);
    if (why) return fail(p, RS_H1_ERR_BAD_MESSAGE, why);
    if (p->lim.max_body_bytes && h.content_length > 0 &&
        (uint64_t)h.content_length > p->lim.max_body_bytes)
        return fail(p, RS_H1_ERR_BODY_TOO_LARGE, "Content-Length above max_body_bytes");
    bool no_body = false;
    if (p->kind == RS_H1_RESPONSE) {
        /* RFC 9112 §6.3: 1xx, 204 and 304 end at the empty line whatever their headers say. */
        no_body = h.status / 100 == 1 || h.status == 204 || h.status == 304;
        if (!no_body && body_until_close(ll)) h.keep_alive = false;
    }
    int rc = p->cb->on_head ? p->cb->on_head(p->ud, &h) : 0;
    shrink(p);
    if (rc < 0) return fail(p, RS_H1_ERR_CALLBACK, "on_head aborted");
    if (rc == RS_H1_SKIP_BODY || no_body) ll->flags |= F_SKIPBODY;
    p->phase = PH_BODY;
    return 0;
}

/* ---- public ---- */

void rs_h1_init(struct rs_h1_parser *p, enum rs_h1_kind kind, const struct rs_h1_limits *lim,
                const struct rs_h1_callbacks *cb, void *ud)
{
    memset(p, 0, sizeof *p);
    llhttp_init(&p->ll, kind == RS_H1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &ll_settings);
    p->kind = (uint8_t)kind;
    p->lim = lim ? *lim : default_limits;
    if (!p->lim.max_header_bytes) p->lim.max_header_bytes = default_limits.max_header_bytes;
    if (!p->lim.max_headers) p->lim.max_headers = default_limits.max_headers;
    p->cb = cb;
    p->ud = ud;
}

/* Acts on one llhttp pause; returns 1 when rs_h1_execute must return to its caller. */
static int on_pause(struct rs_h1_parser *p, const char *at)
{
    enum stop stop = (enum stop)p->stop;
    p->stop = STOP_NONE;
    switch (stop) {
    case STOP_BEGIN:
        p->scan_from = at;
        break;
    case STOP_HEAD:
        if (take_wire(p, at) || on_head_done(p)) return 1;
        break;
    case STOP_TRAILERS:
        p->phase = PH_TRAILERS;
        p->wire_bytes = 0;
        p->nfields = 0;
        p->scan = SC_LINE_START; /* after the last chunk's line, so the byte before was LF */
        p->scan_from = at;
        break;
    case STOP_END:
        if (take_wire(p, at) || call_on_complete(p) < 0) return 1;
        if (p->stop != STOP_USER) break;
        /* The caller paused in on_complete; llhttp is paused already. */
        p->stop = STOP_NONE;
        p->paused = true;
        return 1;
    case STOP_USER:
        p->paused = true;
        return 1;
    case STOP_NONE:
        fail(p, RS_H1_ERR_BAD_MESSAGE, "unexpected parser pause");
        return 1;
    }
    llhttp_resume(&p->ll);
    return 0;
}

enum rs_h1_status rs_h1_execute(struct rs_h1_parser *p, const char *data, size_t len,
                                size_t *consumed)
{
    const char *pos = data, *end = data + len;
    *consumed = 0;
    if (p->err) return (enum rs_h1_status)p->err;
    if (p->paused || p->upgraded) return RS_H1_PAUSED;
    p->scan_from = data;
    for (;;) {
        llhttp_errno_t e = llhttp_execute(&p->ll, pos, (size_t)(end - pos));
        if (e == HPE_OK) {
            if (p->phase == PH_HEAD || p->phase == PH_TRAILERS) take_wire(p, end);
            pos = end;
            break;
        }
        if (e == HPE_PAUSED_UPGRADE) {
            /* CONNECT or Upgrade: the rest is another protocol (llhttp stops after the head). */
            p->upgraded = true;
            pos = llhttp_get_error_pos(&p->ll);
            break;
        }
        if (e != HPE_PAUSED) {
            fail(p, RS_H1_ERR_BAD_MESSAGE,
                 e == HPE_PAUSED_H2_UPGRADE ? "HTTP/2 preface on an HTTP/1 connection"
                                            : llhttp_get_error_reason(&p->ll));
            break;
        }
        pos = llhttp_get_error_pos(&p->ll);
        if (on_pause(p, pos)) break;
    }
    if (p->err) return (enum rs_h1_status)p->err;
    *consumed = (size_t)(pos - data);
    return p->paused || p->upgraded ? RS_H1_PAUSED : RS_H1_OK;
}

void rs_h1_resume(struct rs_h1_parser *p)
{
    if (p->err) return;
    if (p->upgraded) {
        p->upgraded = false;
        llhttp_resume_after_upgrade(&p->ll);
    } else if (p->paused) {
        p->paused = false;
        llhttp_resume(&p->ll);
    }
}

enum rs_h1_status rs_h1_finish(struct rs_h1_parser *p)
{
    if (p->err) return (enum rs_h1_status)p->err;
    if (p->paused || p->upgraded) return RS_H1_OK;
    llhttp_errno_t e = llhttp_finish(&p->ll);
    if (p->err) return (enum rs_h1_status)p->err;
    if (e != HPE_OK && e != HPE_PAUSED) {
        fail(p, RS_H1_ERR_BAD_MESSAGE, "connection closed before the message was complete");
        return (enum rs_h1_status)p->err;
    }
    return RS_H1_OK;
}

void rs_h1_reset(struct rs_h1_parser *p)
{
    char *buf = p->buf;
    uint32_t cap = p->cap;
    struct rs_h1_limits lim = p->lim;
    rs_h1_init(p, (enum rs_h1_kind)p->kind, &lim, p->cb, p->ud);
    p->buf = buf;
    p->cap = cap;
    shrink(p);
}

void rs_h1_trim(struct rs_h1_parser *p)
{
    if (p->phase == PH_HEAD) return;
    head_release(p);
    p->text_len = p->nslots = 0;
}

void rs_h1_free(struct rs_h1_parser *p)
{
    head_release(p);
}

bool rs_h1_upgraded(const struct rs_h1_parser *p)
{
    return p->upgraded;
}

const char *rs_h1_reason(const struct rs_h1_parser *p)
{
    return p->reason ? p->reason : "";
}

size_t rs_h1_memory(const struct rs_h1_parser *p)
{
    return p->cap;
}

bool rs_h1_name_eq(const char *a, size_t alen, const char *lower_literal)
{
    size_t i = 0;
    for (; i < alen; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c | 0x20);
        if (c != lower_literal[i] || !c) return false;
    }
    return lower_literal[i] == '\0';
}

bool rs_h1_is_hop_by_hop(const char *name, size_t len)
{
    /* by length first: this runs for every header of every message, and most names have a
     * length no hop-by-hop name has */
    switch (len) {
    case 2:
        return rs_h1_name_eq(name, len, "te");
    case 7:
        return rs_h1_name_eq(name, len, "trailer") || rs_h1_name_eq(name, len, "upgrade");
    case 10:
        return rs_h1_name_eq(name, len, "connection") || rs_h1_name_eq(name, len, "keep-alive");
    case 16:
        return rs_h1_name_eq(name, len, "proxy-connection");
    case 17:
        return rs_h1_name_eq(name, len, "transfer-encoding");
    case 18:
        return rs_h1_name_eq(name, len, "proxy-authenticate");
    case 19:
        return rs_h1_name_eq(name, len, "proxy-authorization");
    default:
        return false;
    }
}

const struct rs_h1_header *rs_h1_find(const struct rs_h1_head *h, const char *lower_name)
{
    for (uint32_t i = 0; i < h->nheaders; i++)
        if (rs_h1_name_eq(h->headers[i].name, h->headers[i].name_len, lower_name))
            return &h->headers[i];
    return NULL;
}

static bool token_eq(const char *tok, size_t tlen, const char *name, size_t len)
{
    if (tlen != len) return false;
    for (size_t i = 0; i < len; i++)
        if ((tok[i] | 0x20) != (name[i] | 0x20)) return false;
    return true;
}

bool rs_h1_connection_lists(const struct rs_h1_head *h, const char *name, size_t len)
{
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct rs_h1_header *f = &h->headers[i];
        if (!rs_h1_name_eq(f->name, f->name_len, "connection")) continue;
        const char *s = f->value, *e = f->value + f->value_len;
        while (s < e) {
            const char *comma = memchr(s, ',', (size_t)(e - s));
            const char *te = comma ? comma : e, *ts = s;
            while (ts < te && is_ows(*ts)) ts++;
            const char *tend = te;
            while (tend > ts && is_ows(tend[-1])) tend--;
            if (token_eq(ts, (size_t)(tend - ts), name, len)) return true;
            s = te + 1;
        }
    }
    return false;
}

size_t rs_h1_u64(char out[20], uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

size_t rs_h1_chunk_header(char out[20], size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[len & 0xf];
        len >>= 4;
    } while (len);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

const char *rs_h1_reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

size_t rs_h1_status_line(char *out, size_t cap, int status, bool http10)
{
    if (status < 100 || status > 999) status = 500;
    const char *reason = rs_h1_reason_phrase(status);
    size_t rl = strlen(reason);
    if (13 + rl + 2 >= cap) return 0; /* "HTTP/1.x NNN " reason CRLF, and room for a NUL */
    memcpy(out, http10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
    out[9] = (char)('0' + status / 100);
    out[10] = (char)('0' + status / 10 % 10);
    out[11] = (char)('0' + status % 10);
    out[12] = ' ';
    memcpy(out + 13, reason, rl);
    memcpy(out + 13 + rl, "\r\n", 3);
    return 13 + rl + 2;
}
