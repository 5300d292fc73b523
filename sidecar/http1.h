/* HTTP/1.1 codec: an incremental, resumable message parser on llhttp 8.1 (strict, no lenient
 * flags) with the framing checks a proxy needs against request smuggling, Envoy-style limits, and
 * small helpers for writing heads and chunked bodies.
 *
 * Ownership: the parser copies the message head (request-line/status-line and header fields) into
 * its own growable storage, because fields may span input buffers; body bytes are never copied,
 * on_body points into the caller's input buffer. */
#ifndef RS_SIDECAR_HTTP1_H
#define RS_SIDECAR_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

enum rs_h1_kind { RS_H1_REQUEST, RS_H1_RESPONSE };

struct rs_h1_header {
    const char *name;
    uint32_t name_len;
    const char *value; /* optional whitespace around the value already stripped */
    uint32_t value_len;
};

/* The parsed head of one message; valid only during on_head (it points into parser storage). */
struct rs_h1_head {
    int method; /* llhttp_method_t, requests */
    const char *method_str;
    uint32_t method_len;
    const char *url; /* request-target as sent */
    uint32_t url_len;
    int status; /* responses */
    uint8_t http_major, http_minor;
    const struct rs_h1_header *headers;
    uint32_t nheaders;
    int64_t content_length; /* -1 when absent */
    /* keep_alive per RFC 9112 §9.3; false for a response whose body ends at close (unless the
     * caller answers SKIP_BODY for a HEAD, when the connection may persist). upgrade: CONNECT, or
     * Upgrade + Connection: upgrade (requests) / 101 (responses): the parser stops after this
     * message with RS_H1_PAUSED and rs_h1_upgraded(). A 2xx to CONNECT looks like any response:
     * answer SKIP_BODY from on_head and RS_H1_PAUSE from on_complete, the rest is the tunnel. */
    bool chunked, keep_alive, upgrade;
    uint32_t header_bytes; /* size of the head on the wire, request/status line to empty line */
};

/* Return values of the callbacks besides 0 and <0 (abort). */
#define RS_H1_SKIP_BODY 1 /* from on_head: no body follows (response to HEAD, CONNECT 2xx) */
#define RS_H1_PAUSE 2     /* from on_complete: stop right after this message */

/* A 1xx response is a message of its own (on_head, on_complete) followed by the final one. Trailers
 * are checked and counted against the limits but not reported (Envoy without enable_trailers). */
struct rs_h1_callbacks {
    int (*on_head)(void *ud, const struct rs_h1_head *h);
    int (*on_body)(void *ud, const char *at, size_t len); /* de-framed; `at` is in the input */
    int (*on_complete)(void *ud);
};

struct rs_h1_limits {
    uint32_t max_header_bytes; /* wire size of the head (and of trailers); Envoy default 60 KiB */
    uint32_t max_headers;      /* Envoy max_headers_count default 100 */
    uint64_t max_body_bytes;   /* de-framed body; 0 = unlimited */
};

enum rs_h1_status {
    RS_H1_OK = 0,
    RS_H1_PAUSED,                /* on_complete asked to stop, or the connection upgraded */
    RS_H1_ERR_BAD_MESSAGE,       /* 400 (502 when parsing an upstream response) */
    RS_H1_ERR_HEADERS_TOO_LARGE, /* 431 */
    RS_H1_ERR_BODY_TOO_LARGE,    /* 413 */
    RS_H1_ERR_CALLBACK,          /* a callback aborted */
    RS_H1_ERR_NO_MEMORY,         /* head storage could not grow: close the connection */
};

/* Head storage starts at this size, grows by doubling up to what the limits need and shrinks back
 * to it after each on_head, so an idle keep-alive connection holds at most this much. */
#define RS_H1_HEAD_MIN 1024

/* Embeddable; all fields private. ~200 bytes plus head storage (none until the first byte,
 * none after rs_h1_trim). */
struct rs_h1_parser {
    llhttp_t ll;
    const struct rs_h1_callbacks *cb;
    void *ud;
    struct rs_h1_limits lim;
    char *buf;             /* head text from the front, header slots from the back */
    const char *reason;    /* static string of the last error */
    const char *scan_from; /* start of the head/trailer bytes not yet scanned, this execute only */
    uint64_t body_bytes;
    uint32_t cap, text_len, nslots, nfields;
    uint32_t wire_bytes; /* head or trailer bytes seen so far */
    uint32_t method_len, url_len;
    uint8_t kind, phase, stop, field_state, scan;
    uint8_t err; /* enum rs_h1_status, sticky until rs_h1_reset */
    bool paused, upgraded;
};

/* Prepares p for a new connection. lim and cb are copied/referenced: cb must outlive p. NULL lim
 * means Envoy's defaults (60 KiB, 100 headers, unlimited body). Allocates nothing. */
void rs_h1_init(struct rs_h1_parser *p, enum rs_h1_kind kind, const struct rs_h1_limits *lim,
                const struct rs_h1_callbacks *cb, void *ud);

/* Parses len bytes. *consumed is how many were used: all of them unless the result is PAUSED
 * (the rest, e.g. the next pipelined request or upgraded-protocol bytes, stays with the caller,
 * who passes it again after rs_h1_resume) or an error. Errors are sticky until rs_h1_reset. */
enum rs_h1_status rs_h1_execute(struct rs_h1_parser *p, const char *data, size_t len,
                                size_t *consumed);

/* Continues after PAUSED. After an upgrade (head.upgrade, e.g. CONNECT or 101) only call this if
 * the upgrade was refused and HTTP/1 continues on the connection. */
void rs_h1_resume(struct rs_h1_parser *p);

/* The peer closed: completes a read-until-close response body (calls on_complete) or reports a
 * message cut short as RS_H1_ERR_BAD_MESSAGE. OK between messages. */
enum rs_h1_status rs_h1_finish(struct rs_h1_parser *p);

/* Back to the state after rs_h1_init (new connection, or after an error); keeps small storage. */
void rs_h1_reset(struct rs_h1_parser *p);

/* Releases head storage while no head is being parsed (idle connection); no-op otherwise. */
void rs_h1_trim(struct rs_h1_parser *p);

void rs_h1_free(struct rs_h1_parser *p);

/* True when the last PAUSED was an upgrade (CONNECT, Upgrade + 101): the rest is a tunnel. */
bool rs_h1_upgraded(const struct rs_h1_parser *p);

/* Human reason of the last error for logs, e.g. "both Content-Length and Transfer-Encoding". */
const char *rs_h1_reason(const struct rs_h1_parser *p);

/* Bytes of head storage held now (for the admin page's per-connection memory accounting). */
size_t rs_h1_memory(const struct rs_h1_parser *p);

/* The fixed hop-by-hop list (RFC 9110 §7.6.1 plus the legacy ones): connection, keep-alive,
 * proxy-connection, transfer-encoding, te, trailer, upgrade, proxy-authenticate,
 * proxy-authorization. Names listed in the Connection header are hop-by-hop too: check those with
 * rs_h1_connection_lists(). `te: trailers` toward an HTTP/2 upstream (gRPC) is the caller's call.
 */
bool rs_h1_is_hop_by_hop(const char *name, size_t len);

/* True when the head's Connection header(s) list the token name (case-insensitive). */
bool rs_h1_connection_lists(const struct rs_h1_head *h, const char *name, size_t len);

/* Case-insensitive equality of a (alen bytes) with a lower-case NUL-terminated literal. */
bool rs_h1_name_eq(const char *a, size_t alen, const char *lower_literal);

/* First header named lower_name, or NULL. */
const struct rs_h1_header *rs_h1_find(const struct rs_h1_head *h, const char *lower_name);

/* Writes v in decimal to out (no terminator); returns its length (at most 20). Header values are
 * formatted per request, where snprintf's format interpretation is most of the cost. */
size_t rs_h1_u64(char out[20], uint64_t v);

/* Writes "<hex len>\r\n" to out; returns its length (at most 18). */
size_t rs_h1_chunk_header(char out[20], size_t len);

/* The last chunk and empty trailer section that end a chunked body. */
#define RS_H1_LAST_CHUNK "0\r\n\r\n"

/* Reason phrase for a status code ("Not Found"), "Unknown" for codes without one. */
const char *rs_h1_reason_phrase(int status);

/* Writes "HTTP/1.1 <status> <reason>\r\n" (or HTTP/1.0) into out; returns the length, or 0 when
 * cap is too small. */
size_t rs_h1_status_line(char *out, size_t cap, int status, bool http10);

#endif
