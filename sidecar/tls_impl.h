/* TLS internals shared by tls_ctx.c (contexts) and tls.c (the transport). */
#ifndef RS_TLS_IMPL_H
#define RS_TLS_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <openssl/ssl.h>
#include <pcre2.h>
#include <pthread.h>

#include "sidecar/tls.h"

/* One of match_typed_subject_alt_names (or of the legacy match_subject_alt_names: any type). */
enum rs_san_kind { RS_SAN_EXACT, RS_SAN_PREFIX, RS_SAN_SUFFIX, RS_SAN_CONTAINS, RS_SAN_REGEX };
struct rs_san_matcher {
    int gen_type; /* GEN_URI, GEN_DNS, GEN_EMAIL, GEN_IPADD; -1 = any */
    enum rs_san_kind kind;
    bool icase;
    char *s;
    pcre2_code *re;
};

struct rs_tls_ctx {
    int refs;
    bool server;
    SSL_CTX *ssl;
    char *sni;     /* client: default SNI */
    uint8_t *alpn; /* wire format (length-prefixed names) */
    size_t alpn_len;
    bool verify;            /* trusted_ca given: the peer's chain is verified */
    bool require_peer_cert; /* server: require_client_certificate */
    bool allow_expired;     /* allow_expired_certificate */
    bool accept_untrusted;  /* trust_chain_verification: ACCEPT_UNTRUSTED */
    struct rs_san_matcher *san;
    size_t n_san;
    uint64_t stats[RS_TLS_STAT_COUNT];
    struct rs_vcache *vcache; /* peer chains verified lately (tls_ctx.c), or NULL */
    /* client session resumption: the latest session the upstream gave us (max_session_keys 1) */
    pthread_mutex_t sess_lock;
    SSL_SESSION *session;
    bool resume;
};

/* Why a peer certificate was refused (set by the verify callback, read by the transport). */
enum rs_tls_verify_fail { RS_VERIFY_OK, RS_VERIFY_NO_CERT, RS_VERIFY_ERROR, RS_VERIFY_SAN };

static inline void rs_tls_ctx_count(struct rs_tls_ctx *ctx, enum rs_tls_stat s)
{
    __atomic_add_fetch(&ctx->stats[s], 1, __ATOMIC_RELAXED);
}

/* Whether cert's SANs satisfy ctx's matchers (true when there are none). */
bool rs_tls_san_ok(const struct rs_tls_ctx *ctx, X509 *cert);
/* The first SAN of a type (GEN_URI, GEN_DNS) of cert, malloc'd, or NULL. */
char *rs_tls_first_san(X509 *cert, int gen_type);

/* The transport's per-connection state for an SSL (SSL app data), and its verify result. */
void rs_tls_conn_set_verify_fail(SSL *ssl, enum rs_tls_verify_fail why);

#endif
