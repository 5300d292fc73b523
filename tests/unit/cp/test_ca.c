/* The mesh CA: the root is created once (key 0600) and loaded after; a half-present or
 * mismatched root is refused by name; a workload certificate verifies against the root
 * (X509_verify_cert), carries the SPIFFE URI SAN, the leaf key usages and EKUs, and the
 * backdated validity. */
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "xds/cp/ca.h"

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rs_test_ca.XXXXXX");
    if (!mkdtemp(tmpdir)) abort();
}

static void rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", dir);
}

static X509 *x509_of(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, (int)strlen(pem));
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    return x;
}

static void test_root_created_then_loaded(void)
{
    make_tmpdir();
    char dir[300], path[400], err[512];
    snprintf(dir, sizeof dir, "%s/ca", tmpdir);
    struct cp_ca_opts o = {.dir = dir};
    struct cp_ca *ca = cp_ca_open(&o, err, sizeof err);
    CHECK(ca != NULL);
    if (!ca) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_INT(cp_ca_created(ca), 1);
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, CP_CA_ROOT_KEY);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    X509 *root = x509_of(cp_ca_root_pem(ca));
    CHECK(root && X509_check_ca(root) == 1);
    /* Self-signed, P-256, ten years. */
    EVP_PKEY *pk = root ? X509_get_pubkey(root) : NULL;
    CHECK(pk && X509_verify(root, pk) == 1);
    CHECK(pk && EVP_PKEY_id(pk) == EVP_PKEY_EC && EVP_PKEY_bits(pk) == 256);
    EVP_PKEY_free(pk);
    int days = 0, secs = 0;
    CHECK(root &&
          ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(root), X509_get0_notAfter(root)) &&
          days >= 3650 && days <= 3651);
    char *first = strdup(cp_ca_root_pem(ca));
    cp_ca_free(ca);
    /* The second start loads the same root. */
    ca = cp_ca_open(&o, err, sizeof err);
    CHECK(ca && cp_ca_created(ca) == 0);
    CHECK(ca && strcmp(cp_ca_root_pem(ca), first) == 0);
    cp_ca_free(ca);
    /* The same root given as files. */
    char cert_path[400];
    snprintf(cert_path, sizeof cert_path, "%s/%s", dir, CP_CA_ROOT_CERT);
    struct cp_ca_opts files = {.root_cert = cert_path, .root_key = path};
    ca = cp_ca_open(&files, err, sizeof err);
    CHECK(ca && strcmp(cp_ca_root_pem(ca), first) == 0);
    cp_ca_free(ca);
    X509_free(root);
    free(first);
    rm_tree(tmpdir);
}

static void test_bad_roots_refused(void)
{
    make_tmpdir();
    char a[300], b[300], path[400], err[512];
    snprintf(a, sizeof a, "%s/a", tmpdir);
    snprintf(b, sizeof b, "%s/b", tmpdir);
    struct cp_ca_opts oa = {.dir = a}, ob = {.dir = b};
    cp_ca_free(cp_ca_open(&oa, err, sizeof err));
    cp_ca_free(cp_ca_open(&ob, err, sizeof err));
    /* A key without its certificate: never silently replaced. */
    snprintf(path, sizeof path, "%s/%s", a, CP_CA_ROOT_CERT);
    unlink(path);
    CHECK(cp_ca_open(&oa, err, sizeof err) == NULL);
    CHECK(strstr(err, "refusing to replace") != NULL);
    /* a's key with b's certificate. */
    char cert_b[400];
    snprintf(cert_b, sizeof cert_b, "%s/%s", b, CP_CA_ROOT_CERT);
    snprintf(path, sizeof path, "%s/%s", a, CP_CA_ROOT_KEY);
    struct cp_ca_opts mixed = {.root_cert = cert_b, .root_key = path};
    CHECK(cp_ca_open(&mixed, err, sizeof err) == NULL);
    CHECK(strstr(err, "does not match") != NULL);
    /* Not PEM at all, and a cert without its key. */
    struct cp_ca_opts garbage = {.root_cert = "/etc/hostname", .root_key = path};
    CHECK(cp_ca_open(&garbage, err, sizeof err) == NULL);
    CHECK(strstr(err, "not a PEM certificate") != NULL);
    struct cp_ca_opts half = {.root_cert = cert_b};
    CHECK(cp_ca_open(&half, err, sizeof err) == NULL);
    rm_tree(tmpdir);
}

static int has_uri_san(X509 *x, const char *uri)
{
    int crit = 0, found = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    for (size_t i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        if (gn->type != GEN_URI) continue;
        const ASN1_IA5STRING *s = gn->d.uniformResourceIdentifier;
        found |= (size_t)ASN1_STRING_length(s) == strlen(uri) &&
                 memcmp(ASN1_STRING_get0_data(s), uri, strlen(uri)) == 0;
    }
    GENERAL_NAMES_free(gens);
    return found && crit == 1;
}

static void test_workload_certificate(void)
{
    make_tmpdir();
    char dir[300], err[512], id[256];
    snprintf(dir, sizeof dir, "%s/ca", tmpdir);
    struct cp_ca_opts o = {.dir = dir};
    struct cp_ca *ca = cp_ca_open(&o, err, sizeof err);
    CHECK(ca != NULL);
    if (!ca) return;
    CHECK(cp_ca_spiffe_id(id, sizeof id, "cluster.local", "default", "reviews") == 0);
    CHECK_STR(id, "spiffe://cluster.local/ns/default/sa/reviews");
    char small[16];
    CHECK(cp_ca_spiffe_id(small, sizeof small, "cluster.local", "default", "reviews") < 0);
    struct cp_ca_cert c;
    time_t before = time(NULL);
    CHECK(cp_ca_issue(ca, id, 10, &c, err, sizeof err) == 0);
    X509 *root = x509_of(cp_ca_root_pem(ca)), *leaf = x509_of(c.cert_pem);
    CHECK(leaf != NULL);
    /* It verifies against the root, as a peer's validation context will check it. */
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, root);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    CHECK(X509_STORE_CTX_init(ctx, store, leaf, NULL) == 1);
    CHECK(X509_verify_cert(ctx) == 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    CHECK(has_uri_san(leaf, "spiffe://cluster.local/ns/default/sa/reviews"));
    CHECK(X509_check_ca(leaf) == 0);
    CHECK((X509_get_extended_key_usage(leaf) & (XKU_SSL_SERVER | XKU_SSL_CLIENT)) ==
          (XKU_SSL_SERVER | XKU_SSL_CLIENT));
    CHECK((X509_get_key_usage(leaf) & (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT)) ==
          (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
    CHECK((X509_get_key_usage(leaf) & KU_KEY_CERT_SIGN) == 0);
    /* Valid from a minute back to ttl ahead. */
    CHECK(c.not_after - c.not_before == 70);
    CHECK(c.not_before >= (int64_t)before - 61 && c.not_before <= (int64_t)time(NULL) - 59);
    int days = -1, secs = -1;
    CHECK(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)));
    CHECK_EQ_INT(days, 0);
    CHECK_EQ_INT(secs, 70);
    /* The key is the certificate's, P-256. */
    BIO *b = BIO_new_mem_buf(c.key_pem, (int)strlen(c.key_pem));
    EVP_PKEY *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    CHECK(key && X509_check_private_key(leaf, key) == 1);
    CHECK(key && EVP_PKEY_id(key) == EVP_PKEY_EC && EVP_PKEY_bits(key) == 256);
    /* A second certificate for the same identity has its own key. */
    struct cp_ca_cert d;
    CHECK(cp_ca_issue(ca, id, 10, &d, err, sizeof err) == 0);
    CHECK(strcmp(c.key_pem, d.key_pem) != 0 && strcmp(c.cert_pem, d.cert_pem) != 0);
    cp_ca_cert_clear(&d);
    EVP_PKEY_free(key);
    X509_free(leaf);
    X509_free(root);
    cp_ca_cert_clear(&c);
    CHECK(c.cert_pem == NULL && c.key_pem == NULL);
    cp_ca_free(ca);
    rm_tree(tmpdir);
}

RUN_TESTS(TEST_CASE(test_root_created_then_loaded), TEST_CASE(test_bad_roots_refused),
          TEST_CASE(test_workload_certificate))
