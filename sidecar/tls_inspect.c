/* The TLS inspector: tells a TLS connection from plaintext by its first bytes and reads the
 * ClientHello's SNI, ALPN list and highest offered version (RFC 8446 4.1.2, RFC 6066 3,
 * RFC 7301 3.1), for filter-chain matching on transport_protocol, server_names and
 * application_protocols before any TLS state exists. Untrusted bytes: every length is checked
 * against what is left, and a ClientHello larger than RS_TLS_HELLO_MAX is refused. */
#include <string.h>

#include "sidecar/tls.h"

#define REC_HANDSHAKE 0x16
#define HS_CLIENT_HELLO 0x01
#define REC_MAX (16384 + 2048) /* TLSCiphertext bound; a plaintext record is smaller */
#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
#define EXT_SUPPORTED_VERSIONS 43

struct cur {
    const uint8_t *p;
    size_t n;
    bool bad;
};

static uint32_t take(struct cur *c, size_t k)
{
    if (c->bad || c->n < k) {
        c->bad = true;
        return 0;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < k; i++) v = v << 8 | c->p[i];
    c->p += k;
    c->n -= k;
    return v;
}

/* A sub-cursor over the next k bytes (a length-prefixed vector's body). */
static struct cur sub(struct cur *c, size_t k)
{
    struct cur s = {c->p, k, c->bad || c->n < k};
    if (s.bad) {
        c->bad = true;
        s.n = 0;
        return s;
    }
    c->p += k;
    c->n -= k;
    return s;
}

static void parse_sni(struct cur e, struct rs_client_hello *out)
{
    struct cur list = sub(&e, take(&e, 2));
    while (!list.bad && list.n) {
        uint32_t type = take(&list, 1);
        struct cur name = sub(&list, take(&list, 2));
        if (list.bad || type != 0 || out->has_sni) continue;
        if (name.n == 0 || name.n >= sizeof out->sni || memchr(name.p, 0, name.n)) continue;
        memcpy(out->sni, name.p, name.n);
        out->sni[name.n] = 0;
        out->has_sni = true;
    }
}

static void parse_alpn(struct cur e, struct rs_client_hello *out)
{
    struct cur list = sub(&e, take(&e, 2));
    while (!list.bad && list.n) {
        struct cur name = sub(&list, take(&list, 1));
        /* an empty name is a protocol error; one with a NUL could never match a configured name */
        if (list.bad || name.n == 0 || memchr(name.p, 0, name.n)) continue;
        if (out->n_alpn == RS_TLS_MAX_ALPN || name.n > RS_TLS_ALPN_NAME_MAX) {
            out->alpn_truncated = true;
            continue;
        }
        memcpy(out->alpn[out->n_alpn], name.p, name.n);
        out->alpn[out->n_alpn][name.n] = 0;
        out->n_alpn++;
    }
}

static void parse_versions(struct cur e, struct rs_client_hello *out)
{
    struct cur list = sub(&e, take(&e, 1));
    while (!list.bad && list.n >= 2) {
        uint16_t v = (uint16_t)take(&list, 2);
        bool grease = (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff); /* RFC 8701 */
        if (!grease && v > out->max_version && v <= 0x0304) out->max_version = v;
    }
}

/* The ClientHello body (after the 4-byte handshake header). */
static bool parse_hello(struct cur h, struct rs_client_hello *out)
{
    out->max_version = (uint16_t)take(&h, 2);
    take(&h, 32); /* random */
    uint32_t sid = take(&h, 1);
    if (sid > 32) return false; /* legacy_session_id */
    sub(&h, sid);
    uint32_t ncs = take(&h, 2);
    if (ncs < 2 || ncs % 2) return false;
    sub(&h, ncs);
    uint32_t ncm = take(&h, 1);
    if (ncm < 1) return false; /* compression methods */
    sub(&h, ncm);
    if (h.bad) return false;
    if (h.n == 0) return true; /* no extensions (a TLS 1.2-only client may send none) */
    struct cur exts = sub(&h, take(&h, 2));
    if (h.bad || h.n != 0) return false;
    uint16_t legacy = out->max_version;
    out->max_version = 0;
    while (exts.n) {
        uint32_t type = take(&exts, 2);
        struct cur e = sub(&exts, take(&exts, 2));
        if (exts.bad) return false;
        if (type == EXT_SERVER_NAME)
            parse_sni(e, out);
        else if (type == EXT_ALPN)
            parse_alpn(e, out);
        else if (type == EXT_SUPPORTED_VERSIONS)
            parse_versions(e, out);
    }
    if (out->max_version == 0) out->max_version = legacy;
    return true;
}

enum rs_tls_peek rs_tls_peek_client_hello(const uint8_t *buf, size_t len,
                                          struct rs_client_hello *out)
{
    memset(out, 0, sizeof *out);
    /* a handshake record of SSL 3.0 / TLS 1.x: 0x16 0x03 */
    if (len >= 1 && buf[0] != REC_HANDSHAKE) return RS_TLS_PEEK_NOT_TLS;
    if (len >= 2 && buf[1] != 0x03) return RS_TLS_PEEK_NOT_TLS;
    /* the handshake message may span records: gather their payloads (bounded) */
    static _Thread_local uint8_t hs[4 + RS_TLS_HELLO_MAX];
    size_t hs_len = 0, off = 0;
    for (;;) {
        if (len - off < 5) return RS_TLS_PEEK_NEED_MORE;
        const uint8_t *r = buf + off;
        size_t rlen = (size_t)r[3] << 8 | r[4];
        if (r[0] != REC_HANDSHAKE || r[1] != 0x03 || rlen == 0 || rlen > REC_MAX)
            return off == 0 && r[0] != REC_HANDSHAKE ? RS_TLS_PEEK_NOT_TLS : RS_TLS_PEEK_INVALID;
        if (len - off - 5 < rlen) {
            /* judge what is there already: a wrong message type need not wait */
            if (off == 0 && len > 5 && buf[5] != HS_CLIENT_HELLO) return RS_TLS_PEEK_INVALID;
            return RS_TLS_PEEK_NEED_MORE;
        }
        size_t k = rlen < sizeof hs - hs_len ? rlen : sizeof hs - hs_len;
        memcpy(hs + hs_len, r + 5, k);
        hs_len += k;
        off += 5 + rlen;
        if (hs_len >= 1 && hs[0] != HS_CLIENT_HELLO) return RS_TLS_PEEK_INVALID;
        if (hs_len < 4) continue;
        size_t mlen = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];
        if (mlen > RS_TLS_HELLO_MAX) return RS_TLS_PEEK_INVALID;
        if (hs_len < 4 + mlen) continue;
        out->hello_len = off;
        if (!parse_hello((struct cur){hs + 4, mlen, false}, out)) {
            memset(out, 0, sizeof *out);
            return RS_TLS_PEEK_INVALID;
        }
        return RS_TLS_PEEK_PARSED;
    }
}
