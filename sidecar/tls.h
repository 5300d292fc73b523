/* TLS with BoringSSL: contexts built from Envoy's UpstreamTlsContext / DownstreamTlsContext, the
 * TLS transport (server and client mode) that plugs into a connection behind rs_transport, and
 * the TLS inspector that peeks at a connection's first bytes for a ClientHello.
 *
 * A context is immutable once built and refcounted: every connection holds a reference, so a
 * rotated certificate is a new context used by new handshakes while established connections
 * keep the one they started with. Contexts may be shared by all workers. */
#ifndef RS_TLS_H
#define RS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "sidecar/stats.h"

struct rs_conn;
struct rs_tls_ctx;

/* Handshake outcomes, counted per context as Envoy's ssl.* listener/cluster stats. */
enum rs_tls_stat {
    RS_TLS_STAT_HANDSHAKE,           /* ssl.handshake: completed handshakes */
    RS_TLS_STAT_SESSION_REUSED,      /* ssl.session_reused */
    RS_TLS_STAT_CONNECTION_ERROR,    /* ssl.connection_error: protocol error, reset, timeout */
    RS_TLS_STAT_FAIL_VERIFY_NO_CERT, /* ssl.fail_verify_no_cert: required peer cert missing */
    RS_TLS_STAT_FAIL_VERIFY_ERROR,   /* ssl.fail_verify_error: chain not trusted, expired, ... */
    RS_TLS_STAT_FAIL_VERIFY_SAN,     /* ssl.fail_verify_san: no SAN matcher matched */
    RS_TLS_STAT_HANDSHAKE_TIMEOUT,   /* handshakes cut off by rs_tls_handshake_timeout */
    RS_TLS_STAT_COUNT
};
extern const char *const rs_tls_stat_names[RS_TLS_STAT_COUNT]; /* "handshake", ... */

/* Builds a server context from a DownstreamTlsContext, or a client context from an
 * UpstreamTlsContext. On failure returns NULL and writes an error naming the field
 * ("common_tls_context.tls_certificates[0].private_key: ...") into err. Certificate files are read
 * here, once. Fields that would change behaviour and are not implemented (SDS secret configs,
 * private key providers, pkcs12, CRLs, SPKI/hash pinning, session ticket keys, ...) are refused by
 * name: the caller resolves SDS secrets into tls_certificates / validation_context first. */
struct rs_tls_ctx *
rs_tls_ctx_server(const Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *m,
                  char *err, size_t errlen);
struct rs_tls_ctx *
rs_tls_ctx_client(const Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *m,
                  char *err, size_t errlen);
struct rs_tls_ctx *rs_tls_ctx_ref(struct rs_tls_ctx *ctx);
void rs_tls_ctx_unref(struct rs_tls_ctx *ctx); /* NULL is ignored */
bool rs_tls_ctx_is_server(const struct rs_tls_ctx *ctx);
/* A stat's value, summed over all connections and workers that used ctx. */
uint64_t rs_tls_ctx_stat(const struct rs_tls_ctx *ctx, enum rs_tls_stat s);

/* Per-connection options for rs_tls_attach (all optional). */
struct rs_tls_opts {
    const char *sni;         /* client: overrides the context's `sni` (Istio's
                                outbound_.<port>_.<subset>_.<host>); copied */
    const char *const *alpn; /* client: overrides the context's alpn_protocols */
    size_t n_alpn;
    uint32_t handshake_timeout_ms; /* > 0: the handshake fails with -ETIMEDOUT after this */
    /* Called once when the handshake ends: err 0 (peer verified, identity and ALPN available),
     * or a negative errno after which the connection's on_error follows (see rs_tls_attach). */
    void (*on_handshake)(struct rs_conn *c, int err);
    /* Also counts each enum rs_tls_stat into stats[s] of shard (a listener's or cluster's
     * ssl.* stats on the calling worker; the ids are copied). */
    struct rs_stats_shard *shard;
    const rs_stat_id *stats;
};

/* Puts TLS between c's socket and its protocol, before any byte moves: a server context waits
 * for the ClientHello, a client context queues its ClientHello at once (sent when the connect
 * completes). Takes a reference on ctx. The protocol keeps reading on (rs_conn_read_start) during
 * the handshake; bytes it writes before the handshake completes are held and encrypted after.
 * A failed handshake, a TLS protocol error or a timeout reports c->h->on_error(c, err) with
 * -EPROTO (handshake or record error), -EACCES (peer certificate refused: untrusted, expired,
 * missing, SAN mismatch), -ECONNRESET (the peer closed mid-handshake) or -ETIMEDOUT, after which
 * the protocol closes the connection as for any error (rs_conn_close_after_flush lets the alert
 * saying why reach the peer; rs_conn_close drops it). In TLS 1.3 a client's handshake ends before
 * the server has judged its certificate: a refusal then reaches the client as -EPROTO after
 * on_handshake(0). A close_notify from the peer arrives as on_eof. Returns 0, or -ENOMEM /
 * -EINVAL (an SNI or ALPN option BoringSSL refuses). */
int rs_tls_attach(struct rs_conn *c, struct rs_tls_ctx *ctx, const struct rs_tls_opts *opts);

/* Queues a close_notify alert (call before rs_conn_close_after_flush so the peer sees a clean end
 * rather than a truncation; rs_conn_shutdown_write sends one itself). No-op on a non-TLS
 * connection. */
void rs_tls_close_notify(struct rs_conn *c);

/* Fails a handshake still in progress with -ETIMEDOUT (for a caller that runs its own timer
 * instead of opts.handshake_timeout_ms). Returns true if it did. Call from a timer, never from
 * inside a connection callback of c. */
bool rs_tls_handshake_timeout(struct rs_conn *c);

/* After the handshake (NULL before it, or on a non-TLS connection): the peer certificate's
 * first URI SAN (the SPIFFE ID, "spiffe://td/ns/x/sa/y"), the negotiated ALPN protocol, the SNI
 * the client sent (server side) and the TLS version ("TLSv1.3"). Valid while c is open. */
bool rs_tls_is_tls(const struct rs_conn *c);
bool rs_tls_handshake_done(const struct rs_conn *c);
const char *rs_tls_peer_uri_san(const struct rs_conn *c);
const char *rs_tls_alpn(const struct rs_conn *c);
const char *rs_tls_sni(const struct rs_conn *c);
const char *rs_tls_version(const struct rs_conn *c);
bool rs_tls_session_reused(const struct rs_conn *c);
/* More of the certificates after the handshake (NULL before it, on a non-TLS connection, or when
 * the certificate has no such name), computed on first use and valid while c is open: the peer
 * certificate's subject in RFC 2253 form ("CN=a,O=b"), its first DNS SAN, the SHA-256 of its DER
 * in lower-case hex (Envoy's %DOWNSTREAM_PEER_FINGERPRINT_256%, XFCC's Hash), and the first URI
 * SAN of our own certificate. */
const char *rs_tls_peer_subject(const struct rs_conn *c);
const char *rs_tls_peer_dns_san(const struct rs_conn *c);
const char *rs_tls_peer_cert_sha256(const struct rs_conn *c);
const char *rs_tls_local_uri_san(const struct rs_conn *c);
/* The peer's certificate (chain false) or the chain it sent, leaf first (chain true), in PEM,
 * URL-encoded: XFCC's Cert and Chain. Computed on first use, valid while c is open; NULL as above
 * or out of memory. */
const char *rs_tls_peer_pem_urlenc(const struct rs_conn *c, bool chain);
/* The principal RBAC's `authenticated` matcher sees, as Envoy: the peer's URI SAN, else its DNS
 * SAN, else its subject; "" for a TLS peer with none (no client certificate), NULL when c is not
 * a TLS connection past its handshake. */
const char *rs_tls_peer_principal(const struct rs_conn *c);

/* ---- TLS inspector --------------------------------------------------------------------------- */

#define RS_TLS_HELLO_MAX 16384 /* larger ClientHellos are refused (Envoy's tls_inspector bound) */
#define RS_TLS_MAX_ALPN 8
#define RS_TLS_ALPN_NAME_MAX 63

enum rs_tls_peek {
    RS_TLS_PEEK_NEED_MORE, /* consistent so far: wait for more bytes */
    RS_TLS_PEEK_NOT_TLS,   /* not a TLS handshake record: plaintext (raw_buffer) */
    RS_TLS_PEEK_PARSED,    /* a complete ClientHello: out is filled */
    RS_TLS_PEEK_INVALID,   /* a TLS handshake record whose ClientHello is malformed or too large */
};

struct rs_client_hello {
    bool has_sni;
    char sni[256]; /* host_name, NUL-terminated */
    uint32_t n_alpn;
    char alpn[RS_TLS_MAX_ALPN][RS_TLS_ALPN_NAME_MAX + 1];
    bool alpn_truncated;  /* more, or longer, protocol names than fit above */
    uint16_t max_version; /* highest offered: 0x0304 with supported_versions, else legacy_version */
    size_t hello_len;     /* wire bytes through the end of the ClientHello's last record */
};

/* Parses the first bytes of a connection (any bytes: never reads past len, never fails
 * otherwise). The ClientHello may span several handshake records. */
enum rs_tls_peek rs_tls_peek_client_hello(const uint8_t *buf, size_t len,
                                          struct rs_client_hello *out);

#endif
