/* The TLS transport: BoringSSL driven from the connection's completions through a BIO of our own.
 * BoringSSL reads records straight out of the received ring buffer (the BIO points at it during
 * on_recv) and SSL_read decrypts into a buffer of the loop's pool that goes up with
 * rs_conn_deliver like a received one (a protocol forwarding it references it, no copy);
 * plaintext the protocol writes is SSL_write'n into a heap buffer the BIO appends to, which
 * leaves as one segment through rs_conn_queue_wire. So bytes are copied only where TLS must (into
 * BoringSSL's record buffer, and the decryption and encryption themselves). Nothing here ever
 * waits on the socket: a handshake advances by one step for each batch of bytes that arrives. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "sidecar/blk.h"
#include "sidecar/conn.h"
#include "sidecar/tls_impl.h"

enum tls_state {
    TLS_HANDSHAKE, /* records of the handshake in flight */
    TLS_OPEN,      /* application data flows */
    TLS_FAILED,    /* handshake or record error reported: nothing more moves */
};

struct tls_conn {
    struct rs_conn *c;
    struct rs_tls_ctx *ctx;
    SSL *ssl;
    const uint8_t *in; /* the received bytes BoringSSL reads next (during on_recv only) */
    size_t in_n;
    char *out; /* records BoringSSL wrote, not yet queued */
    size_t out_n, out_cap;
    enum tls_state state;
    enum rs_tls_verify_fail vfail;
    bool eof_delivered;  /* on_eof passed up (close_notify or FIN) */
    bool notify_sent;    /* our close_notify queued */
    bool shut_pending;   /* the protocol half-closed during the handshake (tls_shutdown) */
    struct rs_seg *held; /* plaintext written during the handshake, in order */
    uint32_t n_held, cap_held;
    struct rs_timer timer; /* handshake deadline */
    void (*on_handshake)(struct rs_conn *c, int err);
    struct rs_stats_shard *shard; /* also counted here (listener/cluster ssl.*), or NULL */
    rs_stat_id stats[RS_TLS_STAT_COUNT];
    char *peer_uri_san;
    char alpn[256];
    char *peer_names;  /* rs_tls_peer_subject etc.: computed on first use, freed with t */
    char *peer_pem[2]; /* rs_tls_peer_pem_urlenc: the certificate, the chain; on first use */
};

static const struct rs_transport tls_transport;

static struct tls_conn *tls_of(const struct rs_conn *c)
{
    return c->tp == &tls_transport ? c->tp_state : NULL;
}

/* Counts on the context and, when the connection has one, in its owner's ssl.* stats. */
static void count(struct tls_conn *t, enum rs_tls_stat s)
{
    rs_tls_ctx_count(t->ctx, s);
    if (t->shard) rs_stat_inc(t->shard, t->stats[s]);
}

/* As conn.c releases a segment it no longer needs. */
static void seg_release(struct rs_loop *loop, struct rs_seg *s)
{
    if (s->bid >= 0)
        rs_buf_unref(loop, (uint32_t)s->bid);
    else if (s->bid == RS_SEG_BLK)
        rs_blk_put(s->heap);
    else
        free(s->heap);
}

static void drop_held(struct tls_conn *t)
{
    for (uint32_t i = 0; i < t->n_held; i++) seg_release(t->c->loop, &t->held[i]);
    free(t->held);
    t->held = NULL;
    t->n_held = t->cap_held = 0;
}

/* Moves every record BoringSSL produced to the connection's output queue, without a copy. */
static int flush_wire(struct tls_conn *t)
{
    if (t->out_n == 0) return 0;
    struct rs_seg seg = {.p = t->out, .len = (uint32_t)t->out_n, .bid = -1, .heap = t->out};
    t->out = NULL;
    t->out_n = t->out_cap = 0;
    return rs_conn_queue_wire(t->c, &seg);
}

/* ---- the BIO between BoringSSL and the connection -------------------------------------------- */

static int bio_read(BIO *b, char *buf, int len)
{
    struct tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->in_n == 0) {
        BIO_set_retry_read(b); /* SSL_ERROR_WANT_READ: the next receive continues */
        return -1;
    }
    size_t n = (size_t)len < t->in_n ? (size_t)len : t->in_n;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_n -= n;
    return (int)n;
}

static int bio_write(BIO *b, const char *buf, int len)
{
    struct tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t need = t->out_n + (size_t)len;
    if (need > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap * 2 : 4096;
        while (cap < need) cap *= 2;
        char *p = realloc(t->out, cap);
        if (!p) return -1; /* a hard error: the connection fails */
        t->out = p;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_n, buf, (size_t)len);
    t->out_n = need;
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* records are queued by flush_wire, after each step */
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    bio_method = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(), "ringside");
    if (!bio_method) return;
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
}

/* Reports the end of a handshake or the connection's TLS failure, once. */
static void fail(struct tls_conn *t, int err)
{
    struct rs_conn *c = t->c;
    bool in_handshake = t->state == TLS_HANDSHAKE;
    t->state = TLS_FAILED;
    rs_timer_cancel(c->loop, &t->timer);
    drop_held(t);
    /* the alert saying why, if BoringSSL wrote one: sent now, as the owner closes the
     * connection on the error below and a close drops what is queued */
    if (flush_wire(t) == 0) rs_conn_send_now(c);
    ERR_clear_error();
    if (in_handshake && t->on_handshake) t->on_handshake(c, err);
    c->h->on_error(c, err);
}

/* Classifies a failed handshake for the stats and the error code. */
static int handshake_error(struct tls_conn *t)
{
    uint32_t e = ERR_peek_error();
    if (t->vfail == RS_VERIFY_OK && ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
        t->vfail = RS_VERIFY_NO_CERT;
    switch (t->vfail) {
    case RS_VERIFY_NO_CERT:
        count(t, RS_TLS_STAT_FAIL_VERIFY_NO_CERT);
        return -EACCES;
    case RS_VERIFY_ERROR:
        count(t, RS_TLS_STAT_FAIL_VERIFY_ERROR);
        return -EACCES;
    case RS_VERIFY_SAN:
        count(t, RS_TLS_STAT_FAIL_VERIFY_SAN);
        return -EACCES;
    default:
        count(t, RS_TLS_STAT_CONNECTION_ERROR);
        return -EPROTO;
    }
}

static int encrypt(struct tls_conn *t, struct rs_seg *seg)
{
    int ret = 0;
    if (seg->len && SSL_write(t->ssl, seg->p, (int)seg->len) != (int)seg->len) ret = -EPROTO;
    seg_release(t->c->loop, seg);
    return ret;
}

static void established(struct tls_conn *t)
{
    struct rs_conn *c = t->c;
    t->state = TLS_OPEN;
    rs_timer_cancel(c->loop, &t->timer);
    count(t, RS_TLS_STAT_HANDSHAKE);
    if (SSL_session_reused(t->ssl)) count(t, RS_TLS_STAT_SESSION_REUSED);
    X509 *peer = SSL_get_peer_certificate(t->ssl);
    if (peer) {
        t->peer_uri_san = rs_tls_first_san(peer, GEN_URI);
        X509_free(peer);
    }
    const uint8_t *a;
    unsigned alen;
    SSL_get0_alpn_selected(t->ssl, &a, &alen);
    if (alen >= sizeof t->alpn) alen = 0; /* cannot be: ALPN names are at most 255 bytes */
    if (alen) memcpy(t->alpn, a, alen);
    t->alpn[alen] = 0;
    if (t->on_handshake) t->on_handshake(c, 0);
    /* what the protocol wrote while the handshake ran, in order */
    int err = 0;
    for (uint32_t i = 0; i < t->n_held; i++) {
        if (!err && !(c->flags & RS_CONN_CLOSED))
            err = encrypt(t, &t->held[i]);
        else
            seg_release(c->loop, &t->held[i]);
    }
    t->n_held = 0;
    if (!err) err = flush_wire(t);
    if (err && !(c->flags & RS_CONN_CLOSED)) {
        count(t, RS_TLS_STAT_CONNECTION_ERROR);
        fail(t, err);
        return;
    }
    if (t->shut_pending && !(c->flags & RS_CONN_CLOSED)) {
        rs_tls_close_notify(c);
        rs_conn_shutdown_wire(c);
    }
}

/* One handshake step: 1 while it needs more bytes, 0 once established, -1 after failing. */
static int handshake(struct tls_conn *t)
{
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        established(t);
        return t->state == TLS_OPEN ? 0 : -1;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (flush_wire(t) == 0) return 1;
        count(t, RS_TLS_STAT_CONNECTION_ERROR);
        fail(t, -ENOMEM);
        return -1;
    }
    fail(t, handshake_error(t));
    return -1;
}

/* Decrypts everything buffered and hands it up; a close_notify becomes on_eof. */
static void read_plain(struct tls_conn *t)
{
    static _Thread_local char spare[16384]; /* one TLS record's plaintext at most */
    struct rs_conn *c = t->c;
    while (t->state == TLS_OPEN && !(c->flags & RS_CONN_CLOSED)) {
        /* Plaintext goes into a buffer of the loop's pool, handed up like a received one: a
         * protocol forwarding it keeps a reference instead of copying it. Only when the pool is
         * exhausted does it land in a per-thread buffer (valid during the call: copied). */
        int32_t bid = rs_buf_alloc(c->loop);
        char *buf = bid >= 0 ? rs_buf_data(c->loop, (uint32_t)bid) : spare;
        size_t cap =
            bid >= 0 && c->loop->br.bufsize < sizeof spare ? c->loop->br.bufsize : sizeof spare;
        int n = SSL_read(t->ssl, buf, (int)cap);
        if (n > 0) rs_conn_deliver(c, bid, buf, (size_t)n);
        if (bid >= 0) rs_buf_unref(c->loop, (uint32_t)bid);
        if (n > 0) continue;
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ) return;
        if (e == SSL_ERROR_ZERO_RETURN) {
            if (!t->eof_delivered) {
                t->eof_delivered = true;
                rs_conn_deliver_eof(c);
            }
            return;
        }
        count(t, RS_TLS_STAT_CONNECTION_ERROR);
        fail(t, -EPROTO);
        return;
    }
}

static void tls_on_recv(struct rs_conn *c, int32_t bid, const char *data, size_t len)
{
    (void)bid;
    struct tls_conn *t = c->tp_state;
    if (t->state == TLS_FAILED || t->eof_delivered) return;
    /* BoringSSL keeps a partial record in its own buffer, so everything is consumed here
     * unless the connection ends first (close_notify, failure, close) */
    t->in = (const uint8_t *)data;
    t->in_n = len;
    if (t->state == TLS_OPEN || handshake(t) == 0) {
        read_plain(t);
        if (t->state == TLS_OPEN && flush_wire(t) != 0) { /* key updates, tickets, alerts */
            count(t, RS_TLS_STAT_CONNECTION_ERROR);
            fail(t, -ENOMEM);
        }
    }
    t->in = NULL;
    t->in_n = 0;
}

static int tls_write(struct rs_conn *c, struct rs_seg *seg)
{
    struct tls_conn *t = c->tp_state;
    if (t->state == TLS_FAILED || t->notify_sent) {
        seg_release(c->loop, seg); /* the error was reported already */
        return 0;
    }
    if (t->state == TLS_HANDSHAKE) {
        if (t->n_held == t->cap_held) {
            uint32_t cap = t->cap_held ? t->cap_held * 2 : 4;
            struct rs_seg *n = realloc(t->held, cap * sizeof *n);
            if (!n) {
                seg_release(c->loop, seg);
                return -ENOMEM;
            }
            t->held = n;
            t->cap_held = cap;
        }
        t->held[t->n_held++] = *seg;
        return 0;
    }
    int err = encrypt(t, seg);
    return err ? err : flush_wire(t);
}

static void tls_on_eof(struct rs_conn *c)
{
    struct tls_conn *t = c->tp_state;
    if (t->state == TLS_FAILED) return;
    if (t->state == TLS_HANDSHAKE) {
        count(t, RS_TLS_STAT_CONNECTION_ERROR);
        fail(t, -ECONNRESET);
        return;
    }
    /* a FIN without close_notify is a truncation; the protocol's own framing tells whether it
     * matters (HTTP/1.1 bodies), as with Envoy */
    if (!t->eof_delivered) {
        t->eof_delivered = true;
        rs_conn_deliver_eof(c);
    }
}

static void tls_destroy(struct rs_conn *c)
{
    struct tls_conn *t = c->tp_state;
    rs_timer_cancel(c->loop, &t->timer);
    drop_held(t);
    SSL_free(t->ssl);
    free(t->out);
    free(t->peer_uri_san);
    free(t->peer_names);
    free(t->peer_pem[0]);
    free(t->peer_pem[1]);
    rs_tls_ctx_unref(t->ctx);
    free(t);
    c->tp_state = NULL;
}

/* A half-close: close_notify then the FIN; during the handshake both wait for its end, after the
 * bytes it holds (established). */
static void tls_shutdown(struct rs_conn *c)
{
    struct tls_conn *t = c->tp_state;
    if (t->state == TLS_HANDSHAKE) {
        t->shut_pending = true;
        return;
    }
    rs_tls_close_notify(c);
    rs_conn_shutdown_wire(c);
}

static const struct rs_transport tls_transport = {
    .name = "tls",
    .on_recv = tls_on_recv,
    .write = tls_write,
    .on_eof = tls_on_eof,
    .shutdown = tls_shutdown,
    .destroy = tls_destroy,
};

void rs_tls_conn_set_verify_fail(SSL *ssl, enum rs_tls_verify_fail why)
{
    struct tls_conn *t = SSL_get_app_data(ssl);
    if (t) t->vfail = why;
}

static void on_timeout(struct rs_loop *loop, struct rs_timer *tm)
{
    (void)loop;
    struct tls_conn *t = (struct tls_conn *)((char *)tm - offsetof(struct tls_conn, timer));
    rs_tls_handshake_timeout(t->c);
}

bool rs_tls_handshake_timeout(struct rs_conn *c)
{
    struct tls_conn *t = tls_of(c);
    if (!t || t->state != TLS_HANDSHAKE) return false;
    count(t, RS_TLS_STAT_HANDSHAKE_TIMEOUT);
    count(t, RS_TLS_STAT_CONNECTION_ERROR);
    fail(t, -ETIMEDOUT);
    return true;
}

static int set_client_opts(struct tls_conn *t, const struct rs_tls_opts *o)
{
    const char *sni = o && o->sni ? o->sni : t->ctx->sni;
    if (sni && !SSL_set_tlsext_host_name(t->ssl, sni)) return -EINVAL;
    if (o && o->n_alpn) {
        uint8_t wire[512];
        size_t n = 0;
        for (size_t i = 0; i < o->n_alpn; i++) {
            size_t k = strlen(o->alpn[i]);
            if (k == 0 || k > 255 || n + 1 + k > sizeof wire) return -EINVAL;
            wire[n++] = (uint8_t)k;
            memcpy(wire + n, o->alpn[i], k);
            n += k;
        }
        if (SSL_set_alpn_protos(t->ssl, wire, (unsigned)n) != 0) return -ENOMEM;
    }
    if (t->ctx->resume) {
        pthread_mutex_lock(&t->ctx->sess_lock);
        if (t->ctx->session) SSL_set_session(t->ssl, t->ctx->session);
        pthread_mutex_unlock(&t->ctx->sess_lock);
    }
    return 0;
}

int rs_tls_attach(struct rs_conn *c, struct rs_tls_ctx *ctx, const struct rs_tls_opts *opts)
{
    struct tls_conn *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    t->c = c;
    t->ctx = rs_tls_ctx_ref(ctx);
    t->timer.cb = on_timeout;
    t->on_handshake = opts ? opts->on_handshake : NULL;
    if (opts && opts->shard && opts->stats) {
        t->shard = opts->shard;
        memcpy(t->stats, opts->stats, sizeof t->stats);
    }
    pthread_once(&bio_once, bio_method_init);
    t->ssl = SSL_new(ctx->ssl);
    BIO *bio = bio_method ? BIO_new(bio_method) : NULL;
    int err = -ENOMEM;
    if (!t->ssl || !bio) {
        BIO_free(bio);
        goto fail;
    }
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio); /* ssl owns it from here, for both directions */
    SSL_set_app_data(t->ssl, t);
    if (ctx->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if ((err = set_client_opts(t, opts)) != 0) goto fail;
    }
    rs_conn_set_transport(c, &tls_transport, t);
    if (opts && opts->handshake_timeout_ms)
        rs_timer_arm(c->loop, &t->timer, opts->handshake_timeout_ms);
    if (!ctx->server) {
        /* the ClientHello waits in the output queue until the connect completes */
        int r = SSL_do_handshake(t->ssl);
        if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            rs_conn_set_transport(c, &rs_transport_plain, NULL);
            err = -EPROTO;
            goto fail;
        }
        if ((err = flush_wire(t)) != 0) {
            rs_conn_set_transport(c, &rs_transport_plain, NULL);
            goto fail;
        }
    }
    return 0;
fail:
    rs_timer_cancel(c->loop, &t->timer);
    SSL_free(t->ssl);
    free(t->out);
    rs_tls_ctx_unref(t->ctx);
    free(t);
    return err;
}

void rs_tls_close_notify(struct rs_conn *c)
{
    struct tls_conn *t = tls_of(c);
    if (!t || t->state != TLS_OPEN || t->notify_sent) return;
    t->notify_sent = true;
    (void)SSL_shutdown(t->ssl); /* 0: ours is written, the peer's not yet seen */
    ERR_clear_error();
    (void)flush_wire(t);
}

bool rs_tls_is_tls(const struct rs_conn *c)
{
    return tls_of(c) != NULL;
}

bool rs_tls_handshake_done(const struct rs_conn *c)
{
    const struct tls_conn *t = tls_of(c);
    return t && t->state == TLS_OPEN;
}

const char *rs_tls_peer_uri_san(const struct rs_conn *c)
{
    const struct tls_conn *t = tls_of(c);
    return t && t->state == TLS_OPEN ? t->peer_uri_san : NULL;
}

const char *rs_tls_alpn(const struct rs_conn *c)
{
    const struct tls_conn *t = tls_of(c);
    return t && t->state == TLS_OPEN && t->alpn[0] ? t->alpn : NULL;
}

const char *rs_tls_sni(const struct rs_conn *c)
{
    const struct tls_conn *t = tls_of(c);
    return t && t->state == TLS_OPEN ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

const char *rs_tls_version(const struct rs_conn *c)
{
    const struct tls_conn *t = tls_of(c);
    return t && t->state == TLS_OPEN ? SSL_get_version(t->ssl) : NULL;
}

bool rs_tls_session_reused(const struct rs_conn *c)
{
    const struct tls_conn *t = tls_of(c);
    return t && t->state == TLS_OPEN && SSL_session_reused(t->ssl);
}

/* ---- peer and local certificate names (access log, XFCC, RBAC principals) ------------------- */

enum { PN_SUBJECT, PN_DNS, PN_LOCAL_URI, PN_HASH, PN_COUNT };

/* Envoy prints subjects in RFC 2253 form ("CN=a,O=b"). */
static char *name_rfc2253(X509_NAME *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return NULL;
    char *out = NULL;
    if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
        const uint8_t *p;
        size_t len;
        if (BIO_mem_contents(b, &p, &len))
            out = strndup(len ? (const char *)p : "", len); /* empty subject: p is NULL */
    }
    BIO_free(b);
    return out;
}

static char *cert_sha256_hex(X509 *cert)
{
    uint8_t md[32];
    unsigned n = 0;
    if (!X509_digest(cert, EVP_sha256(), md, &n) || n != sizeof md) return NULL;
    char *out = malloc(65);
    if (!out) return NULL;
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = "0123456789abcdef"[md[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
    }
    out[64] = 0;
    return out;
}

/* The names are computed once, after the handshake, into one block of NUL-separated strings
 * (an empty string: the certificate has no such name). */
static const char *peer_name(const struct rs_conn *c, int which)
{
    struct tls_conn *t = tls_of(c);
    if (!t || t->state != TLS_OPEN) return NULL;
    if (!t->peer_names) {
        char *v[PN_COUNT] = {0};
        X509 *peer = SSL_get_peer_certificate(t->ssl);
        if (peer) {
            v[PN_SUBJECT] = name_rfc2253(X509_get_subject_name(peer));
            v[PN_DNS] = rs_tls_first_san(peer, GEN_DNS);
            v[PN_HASH] = cert_sha256_hex(peer);
            X509_free(peer);
        }
        X509 *local = SSL_get_certificate(t->ssl); /* not referenced */
        if (local) v[PN_LOCAL_URI] = rs_tls_first_san(local, GEN_URI);
        size_t len = 0;
        for (int i = 0; i < PN_COUNT; i++) len += (v[i] ? strlen(v[i]) : 0) + 1;
        char *blk = malloc(len), *p = blk;
        for (int i = 0; i < PN_COUNT; i++) {
            size_t n = v[i] ? strlen(v[i]) : 0;
            if (p) {
                memcpy(p, v[i] ? v[i] : "", n + 1);
                p += n + 1;
            }
            free(v[i]);
        }
        if (!blk) return NULL; /* out of memory: no name this time */
        t->peer_names = blk;
    }
    const char *p = t->peer_names;
    for (int i = 0; i < which; i++) p += strlen(p) + 1;
    return *p ? p : NULL;
}

const char *rs_tls_peer_subject(const struct rs_conn *c)
{
    return peer_name(c, PN_SUBJECT);
}

const char *rs_tls_peer_dns_san(const struct rs_conn *c)
{
    return peer_name(c, PN_DNS);
}

const char *rs_tls_local_uri_san(const struct rs_conn *c)
{
    return peer_name(c, PN_LOCAL_URI);
}

const char *rs_tls_peer_cert_sha256(const struct rs_conn *c)
{
    return peer_name(c, PN_HASH);
}

/* Writes p[0..n) URL-encoded (RFC 3986: all but unreserved characters as %XX) at o; returns the
 * end. */
static char *urlenc(char *o, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *o++ = (char)ch;
        } else {
            *o++ = '%';
            *o++ = "0123456789ABCDEF"[ch >> 4];
            *o++ = "0123456789ABCDEF"[ch & 15];
        }
    }
    return o;
}

/* The first n DER certificates of certs in PEM, URL-encoded: "-----BEGIN%20CERTIFICATE-----%0A
 * MIIB..." as Envoy puts them in XFCC's Cert and Chain. */
static char *pem_urlenc(const STACK_OF(CRYPTO_BUFFER) * certs, size_t n)
{
    static const char head[] = "-----BEGIN CERTIFICATE-----\n",
                      tail[] = "-----END CERTIFICATE-----\n";
    size_t cap = 1, b64max = 0;
    for (size_t i = 0; i < n; i++) {
        size_t b64 = (CRYPTO_BUFFER_len(sk_CRYPTO_BUFFER_value(certs, i)) + 2) / 3 * 4;
        if (b64 > b64max) b64max = b64;
        cap +=
            3 * (sizeof head + sizeof tail + b64 + b64 / 64 + 1); /* all of it escaped, at most */
    }
    char *out = malloc(cap), *o = out;
    uint8_t *b64 = malloc(b64max + 1);
    if (!out || !b64) {
        free(out);
        free(b64);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const CRYPTO_BUFFER *der = sk_CRYPTO_BUFFER_value(certs, i);
        size_t bl = EVP_EncodeBlock(b64, CRYPTO_BUFFER_data(der), CRYPTO_BUFFER_len(der));
        o = urlenc(o, head, sizeof head - 1);
        for (size_t j = 0; j < bl; j += 64) { /* PEM's lines of 64 */
            o = urlenc(o, (const char *)b64 + j, bl - j < 64 ? bl - j : 64);
            o = urlenc(o, "\n", 1);
        }
        o = urlenc(o, tail, sizeof tail - 1);
    }
    free(b64);
    *o = 0;
    return out;
}

const char *rs_tls_peer_pem_urlenc(const struct rs_conn *c, bool chain)
{
    struct tls_conn *t = tls_of(c);
    if (!t || t->state != TLS_OPEN) return NULL;
    if (!t->peer_pem[chain]) {
        const STACK_OF(CRYPTO_BUFFER) *certs = SSL_get0_peer_certificates(t->ssl);
        size_t n = certs ? sk_CRYPTO_BUFFER_num(certs) : 0;
        if (n == 0) return NULL;
        t->peer_pem[chain] = pem_urlenc(certs, chain ? n : 1);
    }
    return t->peer_pem[chain];
}

const char *rs_tls_peer_principal(const struct rs_conn *c)
{
    const struct tls_conn *t = tls_of(c);
    if (!t || t->state != TLS_OPEN) return NULL;
    const char *p = t->peer_uri_san;
    if (!p) p = rs_tls_peer_dns_san(c);
    if (!p) p = rs_tls_peer_subject(c);
    return p ? p : "";
}
