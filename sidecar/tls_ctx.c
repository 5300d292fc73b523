/* TLS contexts: an SSL_CTX built from Envoy's DownstreamTlsContext / UpstreamTlsContext
 * (certificate and key, validation context, SAN matchers, ALPN, SNI, versions, ciphers, curves),
 * the peer-certificate checks run inside BoringSSL's verification, and the client session cache.
 * Everything refused is named by its field path. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "envoy/extensions/transport_sockets/tls/v3/common.pb-c.h"
#include "envoy/type/matcher/v3/regex.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "sidecar/config.h"
#include "sidecar/tls_impl.h"

/* match_subject_alt_names and the certificate-provider fields are deprecated in the API but still
 * configured (and refused by name here). */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext CommonTlsContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate TlsCertificate;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters TlsParameters;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext ValidationCtx;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SubjectAltNameMatcher SanMatcher;
typedef Envoy__Type__Matcher__V3__StringMatcher StringMatcher;
typedef Envoy__Config__Core__V3__DataSource DataSource;

#define DATA_MAX (1u << 20) /* a certificate, key or CA bundle larger than 1 MiB is refused */

_Static_assert(RS_TLS_STAT_COUNT == RS_TLS_NSTATS, "config.h's RS_TLS_NSTATS");

const char *const rs_tls_stat_names[RS_TLS_STAT_COUNT] = {
    [RS_TLS_STAT_HANDSHAKE] = "handshake",
    [RS_TLS_STAT_SESSION_REUSED] = "session_reused",
    [RS_TLS_STAT_CONNECTION_ERROR] = "connection_error",
    [RS_TLS_STAT_FAIL_VERIFY_NO_CERT] = "fail_verify_no_cert",
    [RS_TLS_STAT_FAIL_VERIFY_ERROR] = "fail_verify_error",
    [RS_TLS_STAT_FAIL_VERIFY_SAN] = "fail_verify_san",
    [RS_TLS_STAT_HANDSHAKE_TIMEOUT] = "handshake_timeout",
};

struct build {
    struct rs_tls_ctx *ctx;
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int fail(struct build *b, const char *field,
                                                      const char *fmt, ...)
{
    if (!b->errlen) return -1;
    int n = snprintf(b->err, b->errlen, "%s: ", field);
    if (n < 0 || (size_t)n >= b->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err + n, b->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A field path for an error message ("common_tls_context.tls_params.cipher_suites"). */
#define FIELD_MAX 160
__attribute__((format(printf, 2, 3))) static void fieldf(char *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f, FIELD_MAX, fmt, ap);
    va_end(ap);
}

/* The reason BoringSSL gave for the last failure, for an error message. */
static const char *ssl_reason(void)
{
    const char *r = ERR_reason_error_string(ERR_peek_last_error());
    ERR_clear_error();
    return r ? r : "rejected by BoringSSL";
}

/* ---- data sources ---------------------------------------------------------------------------- */

struct bytes {
    uint8_t *p;
    size_t n;
};

static int read_file(struct build *b, const char *field, const char *path, struct bytes *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fail(b, field, "cannot read \"%s\": %s", path, strerror(errno));
    out->p = malloc(DATA_MAX + 1);
    out->n = out->p ? fread(out->p, 1, DATA_MAX + 1, f) : 0;
    bool bad = ferror(f) != 0;
    fclose(f);
    if (!out->p) return fail(b, field, "out of memory");
    if (bad) return fail(b, field, "cannot read \"%s\"", path);
    if (out->n > DATA_MAX) return fail(b, field, "\"%s\" is larger than 1 MiB", path);
    return 0;
}

static int load_source(struct build *b, const char *field, const DataSource *ds, struct bytes *out)
{
    *out = (struct bytes){0};
    if (!ds) return fail(b, field, "required");
    const char *s = NULL;
    switch (ds->specifier_case) {
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME:
        return read_file(b, field, ds->filename, out);
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
        out->p = malloc(ds->inline_bytes.len + 1);
        if (!out->p) return fail(b, field, "out of memory");
        if (ds->inline_bytes.len) memcpy(out->p, ds->inline_bytes.data, ds->inline_bytes.len);
        out->n = ds->inline_bytes.len;
        return 0;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
        s = ds->inline_string;
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE:
        s = getenv(ds->environment_variable);
        if (!s)
            return fail(b, field, "environment variable %s is not set", ds->environment_variable);
        break;
    default:
        return fail(b, field, "no filename, inline_bytes, inline_string or environment_variable");
    }
    out->n = strlen(s);
    out->p = malloc(out->n + 1);
    if (!out->p) return fail(b, field, "out of memory");
    memcpy(out->p, s, out->n);
    return 0;
}

/* Every PEM certificate in d, in order; NULL (with the error set) if there is none or one is bad.
 */
static STACK_OF(X509) * parse_certs(struct build *b, const char *field, const struct bytes *d)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *bio = BIO_new_mem_buf(d->p, (int)d->n);
    if (!sk || !bio) goto oom;
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            goto oom;
        }
    }
    /* the loop ends at the end of the data (PEM_R_NO_START_LINE) or at a broken certificate */
    uint32_t e = ERR_peek_last_error();
    bool at_end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
    if (!at_end || sk_X509_num(sk) == 0) {
        fail(b, field, "%s", sk_X509_num(sk) == 0 ? "no PEM certificate" : ssl_reason());
        goto out;
    }
    ERR_clear_error();
    BIO_free(bio);
    return sk;
oom:
    fail(b, field, "out of memory");
out:
    BIO_free(bio);
    sk_X509_pop_free(sk, X509_free);
    return NULL;
}

/* ---- certificate and key --------------------------------------------------------------------- */

static int check_key(struct build *b, const char *field, EVP_PKEY *key)
{
    switch (EVP_PKEY_id(key)) {
    case EVP_PKEY_RSA:
        if (EVP_PKEY_bits(key) < 2048)
            return fail(b, field, "RSA key of %d bits (2048 or more required)", EVP_PKEY_bits(key));
        return 0;
    case EVP_PKEY_EC: {
        const EC_GROUP *g = EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(key));
        int nid = g ? EC_GROUP_get_curve_name(g) : NID_undef;
        if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1)
            return fail(b, field, "ECDSA key on an unsupported curve (P-256 or P-384)");
        return 0;
    }
    default:
        return fail(b, field, "unsupported key type (ECDSA P-256/P-384 or RSA)");
    }
}

static int use_certificate(struct build *b, const TlsCertificate *tc, const char *path)
{
    char f[FIELD_MAX];
    fieldf(f, "%s.pkcs12", path);
    if (tc->pkcs12) return fail(b, f, "not supported (use certificate_chain and private_key)");
    fieldf(f, "%s.private_key_provider", path);
    if (tc->private_key_provider) return fail(b, f, "not supported");
    fieldf(f, "%s.password", path);
    if (tc->password) return fail(b, f, "encrypted private keys are not supported");
    fieldf(f, "%s.ocsp_staple", path);
    if (tc->ocsp_staple) return fail(b, f, "not supported");
    fieldf(f, "%s.signed_certificate_timestamp", path);
    if (tc->n_signed_certificate_timestamp) return fail(b, f, "not supported");

    int ret = -1;
    struct bytes chain = {0}, keyb = {0};
    STACK_OF(X509) *sk = NULL;
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    fieldf(f, "%s.certificate_chain", path);
    if (load_source(b, f, tc->certificate_chain, &chain) || !(sk = parse_certs(b, f, &chain)))
        goto out;
    SSL_CTX *ssl = b->ctx->ssl;
    if (!SSL_CTX_use_certificate(ssl, sk_X509_value(sk, 0))) {
        fail(b, f, "%s", ssl_reason());
        goto out;
    }
    for (size_t i = 1; i < sk_X509_num(sk); i++) {
        if (!SSL_CTX_add1_chain_cert(ssl, sk_X509_value(sk, i))) {
            fail(b, f, "%s", ssl_reason());
            goto out;
        }
    }
    fieldf(f, "%s.private_key", path);
    if (load_source(b, f, tc->private_key, &keyb)) goto out;
    bio = BIO_new_mem_buf(keyb.p, (int)keyb.n);
    key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    if (!key) {
        fail(b, f, "no PEM private key (%s)", ssl_reason());
        goto out;
    }
    if (check_key(b, f, key)) goto out;
    if (!SSL_CTX_use_PrivateKey(ssl, key) || !SSL_CTX_check_private_key(ssl)) {
        fail(b, f, "does not match the certificate_chain (%s)", ssl_reason());
        goto out;
    }
    ret = 0;
out:
    BIO_free(bio);
    EVP_PKEY_free(key);
    sk_X509_pop_free(sk, X509_free);
    if (keyb.p) OPENSSL_cleanse(keyb.p, keyb.n);
    free(keyb.p);
    free(chain.p);
    return ret;
}

/* ---- validation context ---------------------------------------------------------------------- */

static int add_san(struct build *b, const char *field, int gen_type, const StringMatcher *sm)
{
    struct rs_tls_ctx *ctx = b->ctx;
    if (!sm) return fail(b, field, "matcher is required");
    struct rs_san_matcher m = {.gen_type = gen_type, .icase = sm->ignore_case};
    const char *s = NULL;
    switch (sm->match_pattern_case) {
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
        m.kind = RS_SAN_EXACT, s = sm->exact;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
        m.kind = RS_SAN_PREFIX, s = sm->prefix;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
        m.kind = RS_SAN_SUFFIX, s = sm->suffix;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
        m.kind = RS_SAN_CONTAINS, s = sm->contains;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX: {
        m.kind = RS_SAN_REGEX;
        const char *pat = sm->safe_regex && sm->safe_regex->regex ? sm->safe_regex->regex : "";
        int ec;
        PCRE2_SIZE off;
        /* RE2 semantics as the router compiles them: a full match, `$` only at the very end */
        uint32_t opts =
            PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C | PCRE2_ANCHORED | PCRE2_ENDANCHORED;
        m.re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &ec, &off, NULL);
        if (!m.re) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return fail(b, field, "safe_regex: %s at offset %zu", (const char *)msg, (size_t)off);
        }
        break;
    }
    default:
        return fail(b, field,
                    "an exact, prefix, suffix, contains or safe_regex matcher is required");
    }
    if (s && !*s) return fail(b, field, "an empty pattern is not allowed (use safe_regex)");
    if (s && !(m.s = strdup(s))) return fail(b, field, "out of memory");
    struct rs_san_matcher *n = realloc(ctx->san, (ctx->n_san + 1) * sizeof *n);
    if (!n) {
        free(m.s);
        pcre2_code_free(m.re);
        return fail(b, field, "out of memory");
    }
    ctx->san = n;
    ctx->san[ctx->n_san++] = m;
    return 0;
}

static int gen_type_of(struct build *b, const char *field, int san_type)
{
    switch (san_type) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI:
        return GEN_URI;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__DNS:
        return GEN_DNS;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__EMAIL:
        return GEN_EMAIL;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__IP_ADDRESS:
        return GEN_IPADD;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__OTHER_NAME:
        return fail(b, field, "OTHER_NAME is not supported (URI, DNS, EMAIL, IP_ADDRESS)");
    default:
        return fail(b, field, "san_type is required (URI, DNS, EMAIL, IP_ADDRESS)");
    }
}

static int use_validation(struct build *b, const ValidationCtx *v, const char *path)
{
    struct rs_tls_ctx *ctx = b->ctx;
    char f[FIELD_MAX];
    static const struct {
        size_t off;
        const char *name;
    } unsupported[] = {
        {offsetof(ValidationCtx, ca_certificate_provider_instance),
         "ca_certificate_provider_instance"},
        {offsetof(ValidationCtx, system_root_certs), "system_root_certs"},
        {offsetof(ValidationCtx, require_signed_certificate_timestamp),
         "require_signed_certificate_timestamp"},
        {offsetof(ValidationCtx, crl), "crl"},
        {offsetof(ValidationCtx, custom_validator_config), "custom_validator_config"},
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        if (*(void *const *)((const char *)v + unsupported[i].off)) {
            fieldf(f, "%s.%s", path, unsupported[i].name);
            return fail(b, f, "not supported");
        }
    }
    fieldf(f, "%s.verify_certificate_spki", path);
    if (v->n_verify_certificate_spki) return fail(b, f, "not supported");
    fieldf(f, "%s.verify_certificate_hash", path);
    if (v->n_verify_certificate_hash) return fail(b, f, "not supported");
    fieldf(f, "%s.only_verify_leaf_cert_crl", path);
    if (v->only_verify_leaf_cert_crl) return fail(b, f, "not supported (no crl)");

    ctx->allow_expired = v->allow_expired_certificate;
    ctx->accept_untrusted =
        v->trust_chain_verification ==
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__TRUST_CHAIN_VERIFICATION__ACCEPT_UNTRUSTED;
    if (v->trusted_ca) {
        fieldf(f, "%s.trusted_ca", path);
        struct bytes d;
        if (load_source(b, f, v->trusted_ca, &d)) {
            free(d.p);
            return -1;
        }
        STACK_OF(X509) *sk = parse_certs(b, f, &d);
        free(d.p);
        if (!sk) return -1;
        X509_STORE *st = SSL_CTX_get_cert_store(ctx->ssl);
        for (size_t i = 0; i < sk_X509_num(sk); i++) X509_STORE_add_cert(st, sk_X509_value(sk, i));
        sk_X509_pop_free(sk, X509_free);
        ERR_clear_error(); /* a duplicate certificate in the bundle is harmless */
        /* as Envoy: an intermediate in trusted_ca is a trust anchor too */
        X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
        ctx->verify = true;
    }
    if (v->max_verify_depth) SSL_CTX_set_verify_depth(ctx->ssl, (int)v->max_verify_depth->value);
    /* Envoy: match_subject_alt_names is ignored when match_typed_subject_alt_names is given */
    for (size_t i = 0; i < v->n_match_typed_subject_alt_names; i++) {
        fieldf(f, "%s.match_typed_subject_alt_names[%zu]", path, i);
        const SanMatcher *sm = v->match_typed_subject_alt_names[i];
        int t = gen_type_of(b, f, sm->san_type);
        if (t < 0 || add_san(b, f, t, sm->matcher)) return -1;
    }
    for (size_t i = 0; !v->n_match_typed_subject_alt_names && i < v->n_match_subject_alt_names;
         i++) {
        fieldf(f, "%s.match_subject_alt_names[%zu]", path, i);
        if (add_san(b, f, -1, v->match_subject_alt_names[i])) return -1;
    }
    if (ctx->n_san && !ctx->verify) {
        /* Envoy refuses the same: a SAN is easily forged on a certificate nobody verified */
        fieldf(f, "%s.trusted_ca", path);
        return fail(b, f, "required when subject alt name matchers are configured");
    }
    return 0;
}

/* ---- SAN checks (inside verification) -------------------------------------------------------- */

static bool san_match(const struct rs_san_matcher *m, const char *v, size_t n)
{
    size_t k = m->s ? strlen(m->s) : 0;
    int (*cmp)(const char *, const char *, size_t) = m->icase ? strncasecmp : strncmp;
    switch (m->kind) {
    case RS_SAN_EXACT:
        return n == k && cmp(v, m->s, n) == 0;
    case RS_SAN_PREFIX:
        return n >= k && cmp(v, m->s, k) == 0;
    case RS_SAN_SUFFIX:
        return n >= k && cmp(v + n - k, m->s, k) == 0;
    case RS_SAN_CONTAINS:
        for (size_t i = 0; i + k <= n; i++)
            if (cmp(v + i, m->s, k) == 0) return true;
        return false;
    case RS_SAN_REGEX: {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(m->re, NULL);
        if (!md) return false;
        int rc = pcre2_match(m->re, (PCRE2_SPTR)v, n, 0, 0, md, NULL);
        pcre2_match_data_free(md);
        return rc >= 0;
    }
    }
    return false;
}

/* A SAN's value as text: URI, DNS and email are IA5 strings; an IP address is rendered. */
static size_t san_text(const GENERAL_NAME *gn, char *buf, size_t cap, const char **out)
{
    const ASN1_STRING *s = NULL;
    switch (gn->type) {
    case GEN_URI:
        s = gn->d.uniformResourceIdentifier;
        break;
    case GEN_DNS:
        s = gn->d.dNSName;
        break;
    case GEN_EMAIL:
        s = gn->d.rfc822Name;
        break;
    case GEN_IPADD: {
        const ASN1_OCTET_STRING *ip = gn->d.iPAddress;
        int af = ip->length == 4 ? AF_INET : ip->length == 16 ? AF_INET6 : -1;
        if (af < 0 || !inet_ntop(af, ip->data, buf, (socklen_t)cap)) return 0;
        *out = buf;
        return strlen(buf);
    }
    default:
        return 0;
    }
    *out = (const char *)ASN1_STRING_get0_data(s);
    return (size_t)ASN1_STRING_length(s);
}

bool rs_tls_san_ok(const struct rs_tls_ctx *ctx, X509 *cert)
{
    if (ctx->n_san == 0) return true;
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    bool ok = false;
    for (size_t i = 0; gens && !ok && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        char buf[64];
        const char *v = NULL;
        size_t n = san_text(gn, buf, sizeof buf, &v);
        if (!v || memchr(v, 0, n)) continue; /* an embedded NUL never matches */
        for (size_t j = 0; !ok && j < ctx->n_san; j++)
            if (ctx->san[j].gen_type < 0 || ctx->san[j].gen_type == gn->type)
                ok = san_match(&ctx->san[j], v, n);
    }
    GENERAL_NAMES_free(gens);
    return ok;
}

char *rs_tls_first_san(X509 *cert, int gen_type)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    char *out = NULL;
    for (size_t i = 0; gens && !out && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        if (gn->type != gen_type) continue;
        /* dNSName and uniformResourceIdentifier are both IA5Strings */
        const ASN1_STRING *s = gn->d.ia5;
        size_t n = (size_t)ASN1_STRING_length(s);
        if (memchr(ASN1_STRING_get0_data(s), 0, n)) continue; /* an embedded NUL: not a name */
        out = strndup((const char *)ASN1_STRING_get0_data(s), n);
    }
    GENERAL_NAMES_free(gens);
    return out;
}

/* BoringSSL's verification calls this for each certificate of the chain, leaf last (depth 0). */
static int on_verify(int ok, X509_STORE_CTX *st)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(st, SSL_get_ex_data_X509_STORE_CTX_idx());
    const struct rs_tls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (!ok) {
        int e = X509_STORE_CTX_get_error(st);
        bool expired = e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID;
        if (ctx->accept_untrusted || (ctx->allow_expired && expired)) return 1;
        rs_tls_conn_set_verify_fail(ssl, RS_VERIFY_ERROR);
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(st) == 0 &&
        !rs_tls_san_ok(ctx, X509_STORE_CTX_get_current_cert(st))) {
        X509_STORE_CTX_set_error(st, X509_V_ERR_APPLICATION_VERIFICATION);
        rs_tls_conn_set_verify_fail(ssl, RS_VERIFY_SAN);
        return 0;
    }
    return 1;
}

/* ---- verified chains ------------------------------------------------------------------------- */

/* A mesh peer presents the same certificate chain on every connection for the hours it is valid,
 * so a context remembers the chains it verified: keyed by the SHA-256 of the chain's DER as the
 * peer sent it, until the earliest notAfter of the verified path or VCACHE_TTL_S, whichever
 * comes first. A hit skips X.509 path building and the signature check of each certificate by
 * its issuer (a third of a full mutual-TLS handshake's public-key work); everything that is
 * particular to the connection still runs: the CertificateVerify signature, proof that the peer
 * holds the key (BoringSSL checks it outside this callback), and the SAN matchers. A context is
 * immutable, so its trust store cannot change under an entry: a new root is a new context,
 * with an empty cache. Contexts that accept untrusted or expired chains keep no cache. */
#define VCACHE_SLOTS 16
#define VCACHE_TTL_S 300

struct rs_vcache {
    pthread_mutex_t lock;
    uint32_t next; /* slot replaced next (round robin) */
    struct {
        uint8_t key[SHA256_DIGEST_LENGTH];
        int64_t until; /* 0: empty */
    } e[VCACHE_SLOTS];
};

static bool chain_key(X509_STORE_CTX *st, uint8_t key[SHA256_DIGEST_LENGTH])
{
    SHA256_CTX sha;
    SHA256_Init(&sha);
    STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(st);
    X509 *leaf = X509_STORE_CTX_get0_cert(st);
    for (size_t i = 0; i <= (sent ? sk_X509_num(sent) : 0); i++) {
        X509 *x = i == 0 ? leaf : sk_X509_value(sent, i - 1);
        uint8_t *der = NULL;
        int n = x ? i2d_X509(x, &der) : -1;
        if (n <= 0) return false;
        SHA256_Update(&sha, der, (size_t)n);
        OPENSSL_free(der);
    }
    SHA256_Final(key, &sha);
    return true;
}

/* When the verified path stops being valid (the earliest notAfter), bounded by the TTL. */
static int64_t chain_until(X509_STORE_CTX *st, int64_t now)
{
    int64_t until = now + VCACHE_TTL_S;
    STACK_OF(X509) *path = X509_STORE_CTX_get0_chain(st);
    for (size_t i = 0; path && i < sk_X509_num(path); i++) {
        int days, secs;
        if (!ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(sk_X509_value(path, i))))
            return 0; /* undecodable: not remembered */
        int64_t end = now + (int64_t)days * 86400 + secs;
        if (end < until) until = end;
    }
    return until;
}

static bool vcache_hit(struct rs_vcache *vc, const uint8_t *key, int64_t now)
{
    bool hit = false;
    pthread_mutex_lock(&vc->lock);
    for (uint32_t i = 0; i < VCACHE_SLOTS && !hit; i++)
        hit = vc->e[i].until > now && memcmp(vc->e[i].key, key, SHA256_DIGEST_LENGTH) == 0;
    pthread_mutex_unlock(&vc->lock);
    return hit;
}

static void vcache_put(struct rs_vcache *vc, const uint8_t *key, int64_t until)
{
    pthread_mutex_lock(&vc->lock);
    uint32_t slot = vc->next;
    for (uint32_t i = 0; i < VCACHE_SLOTS; i++)
        if (vc->e[i].until == 0 || memcmp(vc->e[i].key, key, SHA256_DIGEST_LENGTH) == 0) {
            slot = i;
            break;
        }
    if (slot == vc->next) vc->next = (vc->next + 1) % VCACHE_SLOTS;
    memcpy(vc->e[slot].key, key, SHA256_DIGEST_LENGTH);
    vc->e[slot].until = until;
    pthread_mutex_unlock(&vc->lock);
}

/* BoringSSL's certificate verification for the context (SSL_CTX_set_cert_verify_callback):
 * X509_verify_cert, whose per-certificate callback is on_verify, unless the chain is known. */
static int verify_chain(X509_STORE_CTX *st, void *arg)
{
    struct rs_tls_ctx *ctx = arg;
    uint8_t key[SHA256_DIGEST_LENGTH];
    int64_t now = (int64_t)time(NULL);
    bool keyed = chain_key(st, key);
    if (keyed && vcache_hit(ctx->vcache, key, now)) {
        if (rs_tls_san_ok(ctx, X509_STORE_CTX_get0_cert(st))) return 1;
        X509_STORE_CTX_set_error(st, X509_V_ERR_APPLICATION_VERIFICATION);
        rs_tls_conn_set_verify_fail(
            X509_STORE_CTX_get_ex_data(st, SSL_get_ex_data_X509_STORE_CTX_idx()), RS_VERIFY_SAN);
        return 0;
    }
    int ok = X509_verify_cert(st);
    if (ok == 1 && keyed && X509_STORE_CTX_get_error(st) == X509_V_OK) {
        int64_t until = chain_until(st, now);
        if (until > now) vcache_put(ctx->vcache, key, until);
    }
    return ok;
}

/* ---- protocol parameters --------------------------------------------------------------------- */

static int version_of(struct build *b, const char *field, int v, uint16_t dflt, uint16_t *out)
{
    switch (v) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLS_AUTO:
        *out = dflt;
        return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2:
        *out = TLS1_2_VERSION;
        return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_3:
        *out = TLS1_3_VERSION;
        return 0;
    default:
        return fail(b, field, "TLS versions below 1.2 are not supported");
    }
}

/* "a:b:c" from a repeated string, or NULL (error set) on out-of-memory. */
static char *join(char **v, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++) len += strlen(v[i]) + 1;
    char *s = malloc(len), *p = s;
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) p += sprintf(p, "%s%s", i ? ":" : "", v[i]);
    *p = 0;
    return s;
}

/* Envoy's default cipher list (non-FIPS), for TLS 1.2; TLS 1.3 suites are not configurable. */
static const char default_ciphers[] =
    "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]:"
    "[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";

static int use_params(struct build *b, const TlsParameters *p, const char *path)
{
    SSL_CTX *ssl = b->ctx->ssl;
    char f[FIELD_MAX];
    /* Envoy's defaults: 1.2 minimum; maximum 1.3 for servers, 1.2 for clients */
    uint16_t lo = TLS1_2_VERSION, hi = b->ctx->server ? TLS1_3_VERSION : TLS1_2_VERSION;
    char *ciphers = NULL, *curves = NULL;
    if (p) {
        fieldf(f, "%s.tls_minimum_protocol_version", path);
        if (version_of(b, f, p->tls_minimum_protocol_version, lo, &lo)) return -1;
        fieldf(f, "%s.tls_maximum_protocol_version", path);
        if (version_of(b, f, p->tls_maximum_protocol_version, hi, &hi)) return -1;
        if (lo > hi) return fail(b, f, "below tls_minimum_protocol_version");
        fieldf(f, "%s.signature_algorithms", path);
        if (p->n_signature_algorithms) return fail(b, f, "not supported");
        if (p->n_cipher_suites && !(ciphers = join(p->cipher_suites, p->n_cipher_suites)))
            return fail(b, path, "out of memory");
        if (p->n_ecdh_curves && !(curves = join(p->ecdh_curves, p->n_ecdh_curves))) {
            free(ciphers);
            return fail(b, path, "out of memory");
        }
    }
    int ret = 0;
    SSL_CTX_set_min_proto_version(ssl, lo);
    SSL_CTX_set_max_proto_version(ssl, hi);
    if (!SSL_CTX_set_strict_cipher_list(ssl, ciphers ? ciphers : default_ciphers)) {
        fieldf(f, "%s.cipher_suites", path);
        ret = fail(b, f, "\"%s\": %s", ciphers, ssl_reason());
    } else if (!SSL_CTX_set1_curves_list(ssl, curves ? curves : "X25519:P-256")) {
        fieldf(f, "%s.ecdh_curves", path);
        ret = fail(b, f, "\"%s\": unknown curve (X25519, P-256, P-384, P-521)", curves);
        ERR_clear_error();
    }
    free(ciphers);
    free(curves);
    return ret;
}

static int use_alpn(struct build *b, char **names, size_t n, const char *field)
{
    struct rs_tls_ctx *ctx = b->ctx;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(names[i]);
        if (k == 0 || k > 255) return fail(b, field, "protocol name of %zu bytes (1..255)", k);
        len += 1 + k;
    }
    if (!len) return 0;
    if (!(ctx->alpn = malloc(len))) return fail(b, field, "out of memory");
    for (size_t i = 0, o = 0; i < n; i++) {
        size_t k = strlen(names[i]);
        ctx->alpn[o++] = (uint8_t)k;
        memcpy(ctx->alpn + o, names[i], k);
        o += k;
    }
    ctx->alpn_len = len;
    return 0;
}

/* Server: the first of our protocols (in our order) the client also offers, as Envoy does; no
 * overlap means no ALPN rather than a failed handshake. */
static int on_alpn_select(SSL *ssl, const uint8_t **out, uint8_t *outlen, const uint8_t *in,
                          unsigned inlen, void *arg)
{
    (void)ssl;
    const struct rs_tls_ctx *ctx = arg;
    uint8_t *sel;
    if (SSL_select_next_proto(&sel, outlen, ctx->alpn, (unsigned)ctx->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Client: keep the newest session the upstream issued, for the next connection's handshake. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct rs_tls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    pthread_mutex_lock(&ctx->sess_lock);
    SSL_SESSION *old = ctx->session;
    ctx->session = sess;
    pthread_mutex_unlock(&ctx->sess_lock);
    SSL_SESSION_free(old);
    return 1; /* we keep the reference */
}

/* ---- building -------------------------------------------------------------------------------- */

static int use_common(struct build *b, const CommonTlsContext *c)
{
    struct rs_tls_ctx *ctx = b->ctx;
    const char *p = "common_tls_context";
    char f[FIELD_MAX];
    if (!c) return ctx->server ? fail(b, p, "required (a server needs a certificate)") : 0;
    static const struct {
        size_t off;
        const char *name;
    } unsupported[] = {
        {offsetof(CommonTlsContext, tls_certificate_provider_instance),
         "tls_certificate_provider_instance"},
        {offsetof(CommonTlsContext, tls_certificate_certificate_provider),
         "tls_certificate_certificate_provider"},
        {offsetof(CommonTlsContext, tls_certificate_certificate_provider_instance),
         "tls_certificate_certificate_provider_instance"},
        {offsetof(CommonTlsContext, custom_handshaker), "custom_handshaker"},
        {offsetof(CommonTlsContext, key_log), "key_log"},
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        if (*(void *const *)((const char *)c + unsupported[i].off)) {
            fieldf(f, "%s.%s", p, unsupported[i].name);
            return fail(b, f, "not supported");
        }
    }
    fieldf(f, "%s.tls_certificate_sds_secret_configs", p);
    if (c->n_tls_certificate_sds_secret_configs && !c->n_tls_certificates)
        return fail(b, f, "SDS secrets must be resolved into tls_certificates first");
    fieldf(f, "%s.tls_certificates", p);
    if (c->n_tls_certificates > 1)
        return fail(b, f, "%zu certificates: only one per context is supported",
                    c->n_tls_certificates);
    if (ctx->server && c->n_tls_certificates == 0)
        return fail(b, f, "a server context needs a certificate");
    if (c->n_tls_certificates) {
        fieldf(f, "%s.tls_certificates[0]", p);
        if (use_certificate(b, c->tls_certificates[0], f)) return -1;
    }
    fieldf(f, "%s.tls_params", p);
    if (use_params(b, c->tls_params, f)) return -1;
    fieldf(f, "%s.alpn_protocols", p);
    if (use_alpn(b, c->alpn_protocols, c->n_alpn_protocols, f)) return -1;
    switch (c->validation_context_type_case) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE__NOT_SET:
        return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT:
        fieldf(f, "%s.validation_context", p);
        return use_validation(b, c->validation_context, f);
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT:
        fieldf(f, "%s.combined_validation_context", p);
        return fail(b, f, "SDS secrets must be resolved into validation_context first");
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG:
        fieldf(f, "%s.validation_context_sds_secret_config", p);
        return fail(b, f, "SDS secrets must be resolved into validation_context first");
    default:
        return fail(b, p, "unsupported validation context type");
    }
}

static struct rs_tls_ctx *ctx_new(bool server)
{
    struct rs_tls_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    ctx->refs = 1;
    ctx->server = server;
    pthread_mutex_init(&ctx->sess_lock, NULL);
    ctx->ssl = SSL_CTX_new(TLS_method());
    if (!ctx->ssl) {
        free(ctx);
        return NULL;
    }
    SSL_CTX_set_app_data(ctx->ssl, ctx);
    return ctx;
}

/* What both kinds share once the messages are applied: verification mode and ALPN callbacks. */
static void finish(struct rs_tls_ctx *ctx)
{
    int mode = SSL_VERIFY_NONE;
    if (ctx->verify) mode = SSL_VERIFY_PEER;
    /* Envoy: a client certificate is optional unless required, or SAN matchers are configured
     * (they could never match a certificate that is absent) */
    if (ctx->require_peer_cert || (ctx->server && ctx->n_san))
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx->ssl, mode, ctx->verify ? on_verify : NULL);
    if (ctx->verify && !ctx->accept_untrusted && !ctx->allow_expired) {
        ctx->vcache = calloc(1, sizeof *ctx->vcache);
        if (ctx->vcache) {
            pthread_mutex_init(&ctx->vcache->lock, NULL);
            SSL_CTX_set_cert_verify_callback(ctx->ssl, verify_chain, ctx);
        }
    }
    /* one session ticket per full handshake, not BoringSSL's two: our pools keep only the newest
     * session, and each ticket costs a server a seal (4% of a full handshake's time for two) */
    if (ctx->server) SSL_CTX_set_num_tickets(ctx->ssl, 1);
    if (ctx->server && ctx->alpn) SSL_CTX_set_alpn_select_cb(ctx->ssl, on_alpn_select, ctx);
    if (!ctx->server && ctx->alpn) SSL_CTX_set_alpn_protos(ctx->ssl, ctx->alpn, ctx->alpn_len);
}

struct rs_tls_ctx *
rs_tls_ctx_server(const Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *m,
                  char *err, size_t errlen)
{
    struct build b = {.ctx = ctx_new(true), .err = err, .errlen = errlen};
    if (!b.ctx) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (use_common(&b, m->common_tls_context)) goto fail;
    if (m->require_sni && m->require_sni->value) {
        fail(&b, "require_sni", "not supported");
        goto fail;
    }
    if (m->ocsp_staple_policy !=
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__OCSP_STAPLE_POLICY__LENIENT_STAPLING) {
        fail(&b, "ocsp_staple_policy", "only LENIENT_STAPLING is supported");
        goto fail;
    }
    switch (m->session_ticket_keys_type_case) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_SESSION_TICKET_KEYS:
        fail(&b, "session_ticket_keys", "not supported (tickets use a per-context random key)");
        goto fail;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_SESSION_TICKET_KEYS_SDS_SECRET_CONFIG:
        fail(&b, "session_ticket_keys_sds_secret_config", "not supported");
        goto fail;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_DISABLE_STATELESS_SESSION_RESUMPTION:
        if (m->disable_stateless_session_resumption)
            SSL_CTX_set_options(b.ctx->ssl, SSL_OP_NO_TICKET);
        break;
    default:
        break;
    }
    if (m->disable_stateful_session_resumption)
        SSL_CTX_set_session_cache_mode(b.ctx->ssl, SSL_SESS_CACHE_OFF);
    if (m->session_timeout) SSL_CTX_set_timeout(b.ctx->ssl, (uint32_t)m->session_timeout->seconds);
    /* a session resumed on a verifying server must come from this context's configuration */
    static const uint8_t sid_ctx[] = "ringside";
    SSL_CTX_set_session_id_context(b.ctx->ssl, sid_ctx, sizeof sid_ctx - 1);
    b.ctx->require_peer_cert =
        m->require_client_certificate && m->require_client_certificate->value;
    if (b.ctx->require_peer_cert && !b.ctx->verify) {
        fail(&b, "require_client_certificate",
             "needs common_tls_context.validation_context.trusted_ca to verify the certificate");
        goto fail;
    }
    finish(b.ctx);
    return b.ctx;
fail:
    rs_tls_ctx_unref(b.ctx);
    return NULL;
}

struct rs_tls_ctx *
rs_tls_ctx_client(const Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *m,
                  char *err, size_t errlen)
{
    struct build b = {.ctx = ctx_new(false), .err = err, .errlen = errlen};
    if (!b.ctx) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (use_common(&b, m->common_tls_context)) goto fail;
    if (m->allow_renegotiation) {
        fail(&b, "allow_renegotiation", "not supported");
        goto fail;
    }
    if (m->enforce_rsa_key_usage && m->enforce_rsa_key_usage->value) {
        fail(&b, "enforce_rsa_key_usage", "not supported");
        goto fail;
    }
    if (m->sni && *m->sni && !(b.ctx->sni = strdup(m->sni))) {
        fail(&b, "sni", "out of memory");
        goto fail;
    }
    /* max_session_keys: default 1, 0 turns resumption off; we keep one session either way */
    b.ctx->resume = !m->max_session_keys || m->max_session_keys->value > 0;
    if (b.ctx->resume) {
        SSL_CTX_set_session_cache_mode(b.ctx->ssl,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
        SSL_CTX_sess_set_new_cb(b.ctx->ssl, on_new_session);
    }
    finish(b.ctx);
    return b.ctx;
fail:
    rs_tls_ctx_unref(b.ctx);
    return NULL;
}

struct rs_tls_ctx *rs_tls_ctx_ref(struct rs_tls_ctx *ctx)
{
    __atomic_add_fetch(&ctx->refs, 1, __ATOMIC_RELAXED);
    return ctx;
}

void rs_tls_ctx_unref(struct rs_tls_ctx *ctx)
{
    if (!ctx || __atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    SSL_CTX_free(ctx->ssl);
    SSL_SESSION_free(ctx->session);
    pthread_mutex_destroy(&ctx->sess_lock);
    if (ctx->vcache) pthread_mutex_destroy(&ctx->vcache->lock);
    free(ctx->vcache);
    for (size_t i = 0; i < ctx->n_san; i++) {
        free(ctx->san[i].s);
        pcre2_code_free(ctx->san[i].re);
    }
    free(ctx->san);
    free(ctx->alpn);
    free(ctx->sni);
    free(ctx);
}

bool rs_tls_ctx_is_server(const struct rs_tls_ctx *ctx)
{
    return ctx->server;
}

uint64_t rs_tls_ctx_stat(const struct rs_tls_ctx *ctx, enum rs_tls_stat s)
{
    return __atomic_load_n(&ctx->stats[s], __ATOMIC_RELAXED);
}
