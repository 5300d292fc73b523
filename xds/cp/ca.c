/* The mesh CA: the root's life (load, or create once and keep), and workload certificates in
 * Istio's shape (empty subject, critical SPIFFE URI SAN, leaf key usages, short validity). */
#include "xds/cp/ca.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ROOT_DAYS 3650
#define BACKDATE_S 60 /* istiod backdates not-before for clock skew between workloads */

struct cp_ca {
    X509 *root;
    EVP_PKEY *key;
    char *root_pem;
    int created;
};

static int ssl_fail(char *err, size_t errlen, const char *what)
{
    char e[160];
    ERR_error_string_n(ERR_get_error(), e, sizeof e);
    ERR_clear_error();
    snprintf(err, errlen, "%s: %s", what, e);
    return -1;
}

static EVP_PKEY *new_p256_key(void)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EVP_PKEY *k = EVP_PKEY_new();
    if (!ec || !k || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(k, ec)) {
        EC_KEY_free(ec);
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

/* A random positive 127-bit serial, as RFC 5280 4.1.2.2 asks (unique per issuer). */
static int random_serial(X509 *x)
{
    uint8_t b[16];
    RAND_bytes(b, sizeof b);
    b[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    int ok = e && X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok;
}

static char *pem_of(int (*write)(BIO *, void *), void *obj)
{
    BIO *b = BIO_new(BIO_s_mem());
    const uint8_t *data;
    size_t len;
    char *out = NULL;
    if (b && write(b, obj) && BIO_mem_contents(b, &data, &len) && (out = malloc(len + 1))) {
        memcpy(out, data, len);
        out[len] = '\0';
    }
    BIO_free(b);
    return out;
}

static int write_x509(BIO *b, void *x)
{
    return PEM_write_bio_X509(b, x);
}

static int write_key(BIO *b, void *k)
{
    return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

/* ---- the root -------------------------------------------------------------------------------- */

static X509 *make_root(EVP_PKEY *key)
{
    X509 *x = X509_new();
    if (!x) return NULL;
    X509_NAME *name = X509_get_subject_name(x);
    int ok = X509_set_version(x, X509_VERSION_3) && random_serial(x) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) &&
             X509_gmtime_adj(X509_getm_notAfter(x), (long)ROOT_DAYS * 86400) &&
             X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const uint8_t *)"ringside-cp", -1,
                                        -1, 0) &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                        (const uint8_t *)"Ringside mesh root CA", -1, -1, 0) &&
             X509_set_issuer_name(x, name) && X509_set_pubkey(x, key) &&
             add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") &&
             add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") &&
             add_ext(x, x, NID_subject_key_identifier, "hash") && X509_sign(x, key, EVP_sha256());
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes text to path, created exclusively with mode (a concurrent first start loses cleanly). */
static int write_new_file(const char *path, const char *text, mode_t mode, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "short write");
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    if (close(fd) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int create_root(struct cp_ca *ca, const char *dir, const char *cert_path,
                       const char *key_path, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    ca->key = new_p256_key();
    if (!ca->key) return ssl_fail(err, errlen, "generating the root key");
    ca->root = make_root(ca->key);
    if (!ca->root) return ssl_fail(err, errlen, "making the root certificate");
    char *key_pem = pem_of(write_key, ca->key);
    ca->root_pem = pem_of(write_x509, ca->root);
    if (!key_pem || !ca->root_pem) {
        free(key_pem);
        return ssl_fail(err, errlen, "encoding the root");
    }
    /* The key first: a crash between the two leaves a key without a certificate, which the
     * next start reports rather than silently replacing. */
    int rc = write_new_file(key_path, key_pem, 0600, err, errlen);
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    if (rc == 0) rc = write_new_file(cert_path, ca->root_pem, 0644, err, errlen);
    ca->created = rc == 0;
    return rc;
}

static int load_root(struct cp_ca *ca, const char *cert_path, const char *key_path, char *err,
                     size_t errlen)
{
    char what[600];
    BIO *b = BIO_new_file(cert_path, "r");
    ca->root = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    snprintf(what, sizeof what, "%s: not a PEM certificate", cert_path);
    if (!ca->root) return ssl_fail(err, errlen, what);
    b = BIO_new_file(key_path, "r");
    ca->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    snprintf(what, sizeof what, "%s: not a PEM private key", key_path);
    if (!ca->key) return ssl_fail(err, errlen, what);
    if (!X509_check_private_key(ca->root, ca->key)) {
        ERR_clear_error();
        snprintf(err, errlen, "%s does not match the certificate %s", key_path, cert_path);
        return -1;
    }
    if (X509_check_ca(ca->root) != 1) {
        snprintf(err, errlen, "%s: not a CA certificate (basicConstraints CA:TRUE needed)",
                 cert_path);
        return -1;
    }
    ca->root_pem = pem_of(write_x509, ca->root);
    return ca->root_pem ? 0 : ssl_fail(err, errlen, "encoding the root");
}

struct cp_ca *cp_ca_open(const struct cp_ca_opts *o, char *err, size_t errlen)
{
    struct cp_ca *ca = calloc(1, sizeof *ca);
    if (!ca) abort(); /* control path */
    char cert_path[4096], key_path[4096];
    int rc;
    if (o->root_cert || o->root_key) {
        if (!o->root_cert || !o->root_key) {
            snprintf(err, errlen, "a root certificate and its key go together");
            rc = -1;
        } else {
            rc = load_root(ca, o->root_cert, o->root_key, err, errlen);
        }
    } else if (!o->dir) {
        snprintf(err, errlen, "no CA directory and no root given");
        rc = -1;
    } else {
        snprintf(cert_path, sizeof cert_path, "%s/%s", o->dir, CP_CA_ROOT_CERT);
        snprintf(key_path, sizeof key_path, "%s/%s", o->dir, CP_CA_ROOT_KEY);
        int have_cert = access(cert_path, F_OK) == 0, have_key = access(key_path, F_OK) == 0;
        if (have_cert && have_key)
            rc = load_root(ca, cert_path, key_path, err, errlen);
        else if (!have_cert && !have_key)
            rc = create_root(ca, o->dir, cert_path, key_path, err, errlen);
        else {
            snprintf(err, errlen, "%s: has %s but not %s: refusing to replace a root", o->dir,
                     have_cert ? CP_CA_ROOT_CERT : CP_CA_ROOT_KEY,
                     have_cert ? CP_CA_ROOT_KEY : CP_CA_ROOT_CERT);
            rc = -1;
        }
    }
    if (rc < 0) {
        cp_ca_free(ca);
        return NULL;
    }
    return ca;
}

void cp_ca_free(struct cp_ca *ca)
{
    if (!ca) return;
    X509_free(ca->root);
    EVP_PKEY_free(ca->key);
    free(ca->root_pem);
    free(ca);
}

int cp_ca_created(const struct cp_ca *ca)
{
    return ca->created;
}

const char *cp_ca_root_pem(const struct cp_ca *ca)
{
    return ca->root_pem;
}

int cp_ca_spiffe_id(char *out, size_t len, const char *td, const char *ns, const char *sa)
{
    int n = snprintf(out, len, "spiffe://%s/ns/%s/sa/%s", td, ns, sa);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* ---- workload certificates ------------------------------------------------------------------- */

/* The URI SAN built as a GENERAL_NAME, not through the config-string parser: an identity is
 * data, never syntax. Critical, because the subject is empty (RFC 5280 4.2.1.6). */
static int add_uri_san(X509 *x, const char *uri)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    int ok = gens && gn && ia5 && ASN1_STRING_set(ia5, uri, (int)strlen(uri));
    if (ok) {
        GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
        ia5 = NULL;
        ok = sk_GENERAL_NAME_push(gens, gn) != 0;
        if (ok) gn = NULL;
    }
    X509_EXTENSION *ext = ok ? X509V3_EXT_i2d(NID_subject_alt_name, 1, gens) : NULL;
    ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
    return ok;
}

int cp_ca_issue(struct cp_ca *ca, const char *spiffe_id, uint64_t ttl_s, struct cp_ca_cert *out,
                char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    EVP_PKEY *key = new_p256_key();
    X509 *x = X509_new();
    time_t now = time(NULL);
    int ok = key && x && X509_set_version(x, X509_VERSION_3) && random_serial(x) &&
             X509_time_adj_ex(X509_getm_notBefore(x), 0, -BACKDATE_S, &now) &&
             X509_time_adj_ex(X509_getm_notAfter(x), 0, (long)ttl_s, &now) &&
             X509_set_issuer_name(x, X509_get_subject_name(ca->root)) && X509_set_pubkey(x, key) &&
             add_ext(x, ca->root, NID_basic_constraints, "CA:FALSE") &&
             add_ext(x, ca->root, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
             add_ext(x, ca->root, NID_ext_key_usage, "serverAuth,clientAuth") &&
             add_ext(x, ca->root, NID_authority_key_identifier, "keyid") &&
             add_uri_san(x, spiffe_id) && X509_sign(x, ca->key, EVP_sha256());
    if (ok) {
        out->cert_pem = pem_of(write_x509, x);
        out->key_pem = pem_of(write_key, key);
        ok = out->cert_pem && out->key_pem;
    }
    X509_free(x);
    EVP_PKEY_free(key);
    if (!ok) {
        cp_ca_cert_clear(out);
        char what[600];
        snprintf(what, sizeof what, "issuing a certificate for %s", spiffe_id);
        return ssl_fail(err, errlen, what);
    }
    out->not_before = (int64_t)now - BACKDATE_S;
    out->not_after = (int64_t)now + (int64_t)ttl_s;
    return 0;
}

void cp_ca_cert_clear(struct cp_ca_cert *c)
{
    if (c->key_pem) OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
    free(c->cert_pem);
    free(c->key_pem);
    memset(c, 0, sizeof *c);
}
