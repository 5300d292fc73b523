/* The mesh certificate authority of ringside-cp: one root (ECDSA P-256, self-signed, CA:TRUE,
 * ten years) kept in a directory or given as files, and short-lived SPIFFE workload certificates
 * signed by it, as istiod's built-in CA issues them. */
#ifndef XDS_CP_CA_H
#define XDS_CP_CA_H

#include <stddef.h>
#include <stdint.h>

struct cp_ca;

/* Where the root comes from: root_cert and root_key (both, PEM files) if given; otherwise dir,
 * holding root-cert.pem and root-key.pem, created with a new root when both are absent (the
 * directory 0700, the key 0600). */
struct cp_ca_opts {
    const char *dir;
    const char *root_cert, *root_key;
};

/* A workload certificate: PEM text (NUL-terminated) and its validity in Unix seconds. */
struct cp_ca_cert {
    char *cert_pem; /* the leaf only: the root is served apart (ROOTCA) */
    char *key_pem;  /* PKCS#8 */
    int64_t not_before, not_after;
};

#define CP_CA_ROOT_CERT "root-cert.pem"
#define CP_CA_ROOT_KEY "root-key.pem"

/* Loads or creates the root. NULL with err set (naming the file and what is wrong) on failure. */
struct cp_ca *cp_ca_open(const struct cp_ca_opts *opts, char *err, size_t errlen);

void cp_ca_free(struct cp_ca *ca);

/* 1 if cp_ca_open created the root (first start), 0 if it loaded one. */
int cp_ca_created(const struct cp_ca *ca);

/* The root certificate as PEM (owned by ca). */
const char *cp_ca_root_pem(const struct cp_ca *ca);

/* Writes spiffe://<trust_domain>/ns/<ns>/sa/<sa> into out; -1 if it does not fit. */
int cp_ca_spiffe_id(char *out, size_t len, const char *trust_domain, const char *ns,
                    const char *sa);

/* Issues a certificate for spiffe_id with a fresh P-256 key: URI SAN spiffe_id (critical, the
 * subject is empty as in Istio's workload certificates), digitalSignature+keyEncipherment,
 * serverAuth+clientAuth, valid from now - 60 s (clock skew) to now + ttl_s. Fills out (free
 * with cp_ca_cert_clear); 0, or -1 with err set. */
int cp_ca_issue(struct cp_ca *ca, const char *spiffe_id, uint64_t ttl_s, struct cp_ca_cert *out,
                char *err, size_t errlen);

void cp_ca_cert_clear(struct cp_ca_cert *c);

#endif
