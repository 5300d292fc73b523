/* tls_speed: what BoringSSL's public-key operations cost on one core, and the full mutual-TLS
 * handshake rate that bounds a TLS server on that core (bench/README.md, "mTLS").
 *
 *   tls_speed [--secs S] [--pki DIR] [--json]
 *
 * Measures, one after the other on the calling thread (run it under `taskset -c CPU`):
 *   sign     ECDSA P-256 signatures of a SHA-256 digest (ECDSA_sign): the server's
 *            CertificateVerify
 *   verify   ECDSA P-256 verifications (ECDSA_verify) of such a signature: the client's
 *            CertificateVerify, and the client leaf's signature by the root
 *   x25519   X25519 key agreements: a fresh key pair (X25519_keypair) and the shared secret with
 *            the peer's public key (X25519), what a TLS 1.3 server does for an X25519 key share
 * Each op runs in batches until S seconds of this thread's CPU time (CLOCK_THREAD_CPUTIME_ID)
 * have passed; the rates are ops per CPU-second (and per wall second, which is lower when the
 * core is shared). The derived limit, per CPU-second:
 *
 *   handshakes/s = 1 / (1/sign + 2/verify + 1/x25519)
 *
 * It leaves out what is not public-key work (SHA-256 of the transcript, HKDF, AES-GCM of the
 * handshake records, certificate parsing, the kernel's TCP work), which a real handshake also
 * pays: a server reaches only a fraction of it.
 *
 * With --pki DIR (bench/mtls.sh's files: root.pem, server.pem/.key, client.pem/.key), also whole
 * handshakes in memory: a client and a server SSL joined by a BIO pair on this thread, TLS 1.3,
 * X25519, the server requiring and verifying the client certificate against the root and
 * issuing its session tickets (BoringSSL's defaults), the client offering no session. Only the
 * server's calls are timed (SSL_new to SSL_free): what BoringSSL itself spends on the server side
 * of a full mTLS handshake with no sockets, no event loop and no proxy around it. */
#include <openssl/curve25519.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/nid.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 50

enum op { OP_SIGN, OP_VERIFY, OP_X25519, OPS };
static const char *const op_names[OPS] = {"sign", "verify", "x25519"};

struct rate {
    uint64_t ops;
    double cpu_s, wall_s;
};

struct material {
    EC_KEY *key;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    uint8_t sig[80]; /* a DER ECDSA P-256 signature is at most 72 bytes */
    unsigned sig_len;
    uint8_t peer_pub[32];
};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One operation; false when BoringSSL reports a failure (which would make the figure a lie). */
static bool run_op(enum op op, struct material *m)
{
    uint8_t sig[sizeof m->sig], priv[32], pub[32], shared[32];
    unsigned len = sizeof sig;
    switch (op) {
    case OP_SIGN:
        return ECDSA_sign(0, m->digest, sizeof m->digest, sig, &len, m->key) == 1;
    case OP_VERIFY:
        return ECDSA_verify(0, m->digest, sizeof m->digest, m->sig, m->sig_len, m->key) == 1;
    case OP_X25519:
        X25519_keypair(pub, priv);
        return X25519(shared, priv, m->peer_pub) == 1;
    default:
        return false;
    }
}

static bool measure(enum op op, struct material *m, double secs, struct rate *r)
{
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC), c1;
    r->ops = 0;
    do {
        for (int i = 0; i < BATCH; i++)
            if (!run_op(op, m)) return false;
        r->ops += BATCH;
        c1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    } while (c1 - c0 < secs);
    r->cpu_s = c1 - c0;
    r->wall_s = clock_s(CLOCK_MONOTONIC) - w0;
    return true;
}

static bool material_init(struct material *m)
{
    static const char msg[] = "TLS 1.3, server CertificateVerify";
    uint8_t peer_priv[32];
    m->key = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    if (!m->key || !EC_KEY_generate_key(m->key)) return false;
    SHA256((const uint8_t *)msg, sizeof msg - 1, m->digest);
    m->sig_len = sizeof m->sig;
    if (!ECDSA_sign(0, m->digest, sizeof m->digest, m->sig, &m->sig_len, m->key)) return false;
    X25519_keypair(m->peer_pub, peer_priv);
    return true;
}

static double per_cpu_s(const struct rate *r)
{
    return (double)r->ops / r->cpu_s;
}

/* --- whole handshakes in memory (--pki) ------------------------------------------------- */

/* A TLS 1.3 context with X25519, this leaf and key, verifying the peer against DIR/root.pem. */
static SSL_CTX *pki_ctx(const char *dir, const char *leaf, bool server)
{
    char cert[4096], key[4096], root[4096];
    snprintf(cert, sizeof cert, "%s/%s.pem", dir, leaf);
    snprintf(key, sizeof key, "%s/%s.key", dir, leaf);
    snprintf(root, sizeof root, "%s/root.pem", dir);
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set1_curves_list(ctx, "X25519") ||
        !SSL_CTX_use_certificate_chain_file(ctx, cert) ||
        !SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) ||
        !SSL_CTX_load_verify_locations(ctx, root, NULL)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    if (!server) SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

/* One full handshake; the server's CPU time added to *server_s. */
static bool handshake_once(SSL_CTX *cctx, SSL_CTX *sctx, double *server_s)
{
    double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    SSL *srv = SSL_new(sctx);
    *server_s += clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
    SSL *cli = SSL_new(cctx);
    BIO *cb = NULL, *sb = NULL;
    bool ok = false;
    if (!srv || !cli || !BIO_new_bio_pair(&cb, 0, &sb, 0)) goto out;
    SSL_set_bio(cli, cb, cb);
    SSL_set_bio(srv, sb, sb);
    SSL_set_connect_state(cli);
    SSL_set_accept_state(srv);
    /* Each side runs until it waits for the other; a full handshake takes a few turns. */
    for (int turn = 0; turn < 16 && !ok; turn++) {
        int c = SSL_do_handshake(cli);
        if (c != 1 && SSL_get_error(cli, c) != SSL_ERROR_WANT_READ) break;
        t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        int r = SSL_do_handshake(srv);
        *server_s += clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
        if (r != 1 && SSL_get_error(srv, r) != SSL_ERROR_WANT_READ) break;
        ok = c == 1 && r == 1;
    }
    ok = ok && !SSL_session_reused(srv);
out:
    SSL_free(cli);
    t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    SSL_free(srv);
    *server_s += clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
    return ok;
}

/* Full handshakes for about secs of this thread's CPU time (both sides). */
static bool measure_handshakes(const char *dir, double secs, struct rate *r)
{
    SSL_CTX *sctx = pki_ctx(dir, "server", true), *cctx = pki_ctx(dir, "client", false);
    bool ok = sctx && cctx;
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC);
    r->ops = 0;
    r->cpu_s = 0;
    while (ok && clock_s(CLOCK_THREAD_CPUTIME_ID) - c0 < secs) {
        ok = handshake_once(cctx, sctx, &r->cpu_s);
        r->ops += ok;
    }
    r->wall_s = clock_s(CLOCK_MONOTONIC) - w0;
    if (!ok) ERR_print_errors_fp(stderr);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return ok;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"secs", required_argument, NULL, 's'},
        {"pki", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    double secs = 1;
    bool json = false;
    const char *pki = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "s:p:jh", longs, NULL)) != -1) {
        if (ch == 's')
            secs = strtod(optarg, NULL);
        else if (ch == 'p')
            pki = optarg;
        else if (ch == 'j')
            json = true;
        else {
            fprintf(ch == 'h' ? stdout : stderr,
                    "usage: tls_speed [--secs S] [--pki DIR] [--json]\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    if (secs <= 0 || optind != argc) {
        fprintf(stderr, "usage: tls_speed [--secs S] [--pki DIR] [--json]\n");
        return 2;
    }
    struct material m = {0};
    if (!material_init(&m)) {
        fprintf(stderr, "tls_speed: P-256 key setup failed\n");
        return 1;
    }
    struct rate r[OPS], hs = {0};
    for (int op = 0; op < OPS; op++) {
        if (!measure((enum op)op, &m, secs / OPS, &r[op])) {
            fprintf(stderr, "tls_speed: %s failed\n", op_names[op]);
            return 1;
        }
    }
    /* the client's work is about as much again: twice the time for the server's share */
    if (pki && !measure_handshakes(pki, 2 * secs / OPS, &hs)) {
        fprintf(stderr, "tls_speed: in-memory handshakes with the certificates in %s failed\n",
                pki);
        return 1;
    }
    /* The server side of a full mutual-TLS 1.3 handshake with ECDSA P-256 certificates and an
     * X25519 key share: one sign, two verifies, one key agreement. */
    double t =
        1 / per_cpu_s(&r[OP_SIGN]) + 2 / per_cpu_s(&r[OP_VERIFY]) + 1 / per_cpu_s(&r[OP_X25519]);
    if (json) {
        printf("{");
        for (int op = 0; op < OPS; op++)
            printf(
                "\"%s\": {\"ops\": %llu, \"cpu_s\": %.4f, \"wall_s\": %.4f, \"per_cpu_s\": %.1f, "
                "\"per_wall_s\": %.1f}, ",
                op_names[op], (unsigned long long)r[op].ops, r[op].cpu_s, r[op].wall_s,
                per_cpu_s(&r[op]), (double)r[op].ops / r[op].wall_s);
        if (pki)
            printf("\"handshake_in_memory\": {\"handshakes\": %llu, \"server_cpu_s\": %.4f, "
                   "\"server_per_cpu_s\": %.1f}, ",
                   (unsigned long long)hs.ops, hs.cpu_s, per_cpu_s(&hs));
        printf("\"handshake_limit_per_cpu_s\": %.1f, \"formula\": \"1 / (1/sign + 2/verify + "
               "1/x25519)\"}\n",
               1 / t);
    } else {
        for (int op = 0; op < OPS; op++)
            printf("%-7s %10.0f /CPU-s  (%llu in %.3f CPU-s, %.3f s wall)\n", op_names[op],
                   per_cpu_s(&r[op]), (unsigned long long)r[op].ops, r[op].cpu_s, r[op].wall_s);
        printf("server side of a full mTLS handshake (1 sign + 2 verify + 1 x25519): "
               "%.0f /CPU-s\n",
               1 / t);
        if (pki)
            printf(
                "full mTLS handshakes in memory, server side: %.0f /CPU-s (%llu in %.3f CPU-s)\n",
                per_cpu_s(&hs), (unsigned long long)hs.ops, hs.cpu_s);
    }
    EC_KEY_free(m.key);
    return 0;
}
