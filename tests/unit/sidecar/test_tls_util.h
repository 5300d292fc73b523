/* Test certificates made with BoringSSL at test time (no committed keys): ECDSA P-256 CAs and
 * leaves with SPIFFE URI SANs, written as PEM files into a temporary directory. */
#ifndef RS_TEST_TLS_UTIL_H
#define RS_TEST_TLS_UTIL_H

#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_cert {
    X509 *x;
    EVP_PKEY *key;
};

static EVP_PKEY *test_key(void)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EVP_PKEY *k = EVP_PKEY_new();
    if (!ec || !k || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(k, ec)) abort();
    return k;
}

static EVP_PKEY *test_rsa_key(unsigned bits)
{
    RSA *rsa = RSA_new();
    BIGNUM *e = BN_new();
    EVP_PKEY *k = EVP_PKEY_new();
    if (!rsa || !e || !k || !BN_set_word(e, RSA_F4) ||
        !RSA_generate_key_ex(rsa, (int)bits, e, NULL) || !EVP_PKEY_assign_RSA(k, rsa))
        abort();
    BN_free(e);
    return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    if (!e || !X509_add_ext(x, e, -1)) abort();
    X509_EXTENSION_free(e);
}

/* A certificate for cn valid from days_from to days_to (relative to now), signed by ca (NULL:
 * self-signed CA). san: "URI:spiffe://...,DNS:..." or NULL. */
static struct test_cert test_cert_make_key(const char *cn, const struct test_cert *ca,
                                           const char *san, long days_from, long days_to,
                                           EVP_PKEY *key)
{
    static long serial = 1;
    struct test_cert c = {X509_new(), key};
    X509 *x = c.x;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), days_from * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), days_to * 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1, 0);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca->x) : name);
    X509_set_pubkey(x, c.key);
    X509 *issuer = ca ? ca->x : x;
    if (!ca) {
        add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
        add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    if (san) add_ext(x, issuer, NID_subject_alt_name, san);
    if (!X509_sign(x, ca ? ca->key : c.key, EVP_sha256())) abort();
    return c;
}

static struct test_cert test_cert_make(const char *cn, const struct test_cert *ca, const char *san,
                                       long days_from, long days_to)
{
    return test_cert_make_key(cn, ca, san, days_from, days_to, test_key());
}

static void test_cert_free(struct test_cert *c)
{
    X509_free(c->x);
    EVP_PKEY_free(c->key);
}

/* Writes dir/<name>.pem (certificate) and dir/<name>.key (private key). */
static void test_cert_write(const struct test_cert *c, const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.pem", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || !PEM_write_X509(f, c->x)) abort();
    fclose(f);
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    f = fopen(path, "w");
    if (!f || !PEM_write_PrivateKey(f, c->key, NULL, NULL, 0, NULL, NULL)) abort();
    fclose(f);
}

#endif
