/* tls_speed: what BoringSSL's public-key operations cost on one core, and the full mutual-TLS
 * handshake rate that bounds a TLS server on that core (bench/README.md, "mTLS").
 *
 *   tls_speed [--secs S] [--json]
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
 * pays: a server reaches only a fraction of it. */
#include <openssl/curve25519.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/nid.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

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

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"secs", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    double secs = 1;
    bool json = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "s:jh", longs, NULL)) != -1) {
        if (ch == 's')
            secs = strtod(optarg, NULL);
        else if (ch == 'j')
            json = true;
        else {
            fprintf(ch == 'h' ? stdout : stderr, "usage: tls_speed [--secs S] [--json]\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    if (secs <= 0 || optind != argc) {
        fprintf(stderr, "usage: tls_speed [--secs S] [--json]\n");
        return 2;
    }
    struct material m = {0};
    if (!material_init(&m)) {
        fprintf(stderr, "tls_speed: P-256 key setup failed\n");
        return 1;
    }
    struct rate r[OPS];
    for (int op = 0; op < OPS; op++) {
        if (!measure((enum op)op, &m, secs / OPS, &r[op])) {
            fprintf(stderr, "tls_speed: %s failed\n", op_names[op]);
            return 1;
        }
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
    }
    EC_KEY_free(m.key);
    return 0;
}
