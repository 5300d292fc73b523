/* Workload identities and their SDS secrets: one certificate per mesh workload (keyed by its
 * address, as nodes are), the Secret resources built from it, and the rotation schedule. */
#include "xds/cp/sds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "xds/cp/log.h"

typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret Secret;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate TlsCertificate;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext ValidationCtx;
typedef Envoy__Config__Core__V3__DataSource DataSource;

struct ident {
    char *address;
    char spiffe[512];
    struct cp_ca_cert cert;
    uint64_t rotate_at_ms;
};

struct cp_sds {
    struct cp_ca *ca;
    uint64_t rotate_every_ms;
    uint64_t (*now_ms)(void);
    struct ident *ids;
    size_t n_ids, cap_ids;
    struct cp_sds_stats stats;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct cp_sds *cp_sds_new(struct cp_ca *ca, uint64_t rotate_every_ms)
{
    struct cp_sds *sds = calloc(1, sizeof *sds);
    if (!sds) abort(); /* control path */
    sds->ca = ca;
    sds->rotate_every_ms = rotate_every_ms;
    sds->now_ms = wall_ms;
    return sds;
}

static void ident_clear(struct ident *id)
{
    free(id->address);
    cp_ca_cert_clear(&id->cert);
}

void cp_sds_free(struct cp_sds *sds)
{
    if (!sds) return;
    for (size_t i = 0; i < sds->n_ids; i++) ident_clear(&sds->ids[i]);
    free(sds->ids);
    free(sds);
}

void cp_sds_set_clock(struct cp_sds *sds, uint64_t (*now_ms)(void))
{
    sds->now_ms = now_ms;
}

const struct cp_sds_stats *cp_sds_stats(const struct cp_sds *sds)
{
    return &sds->stats;
}

static struct ident *find(const struct cp_sds *sds, const char *address)
{
    for (size_t i = 0; i < sds->n_ids; i++)
        if (strcmp(sds->ids[i].address, address) == 0) return &sds->ids[i];
    return NULL;
}

const struct cp_ca_cert *cp_sds_cert(const struct cp_sds *sds, const char *address)
{
    const struct ident *id = find(sds, address);
    return id && id->cert.cert_pem ? &id->cert : NULL;
}

/* Issues id's certificate for spiffe; keeps the previous one if signing fails (logged). */
static int issue(struct cp_sds *sds, struct ident *id, const char *spiffe, uint64_t ttl_ms)
{
    struct cp_ca_cert c;
    char err[512];
    uint64_t ttl_s = ttl_ms / 1000 ? ttl_ms / 1000 : 1;
    if (cp_ca_issue(sds->ca, spiffe, ttl_s, &c, err, sizeof err) < 0) {
        sds->stats.failed++;
        cp_log(CP_LOG_ERROR, "certificate for %s (%s) not issued: %s", spiffe, id->address, err);
        return -1;
    }
    int rotation = id->cert.cert_pem != NULL;
    cp_ca_cert_clear(&id->cert);
    id->cert = c;
    if (spiffe != id->spiffe) snprintf(id->spiffe, sizeof id->spiffe, "%s", spiffe);
    /* Istio's agent renews at 50-80% of the lifetime (SECRET_GRACE_PERIOD_RATIO); 2/3 leaves a
     * third of it for a push that is slow to land. */
    uint64_t period = sds->rotate_every_ms ? sds->rotate_every_ms : ttl_ms * 2 / 3;
    id->rotate_at_ms = sds->now_ms() + (period ? period : 1);
    sds->stats.issued++;
    if (rotation) sds->stats.rotated++;
    cp_log(rotation ? CP_LOG_DEBUG : CP_LOG_INFO, "certificate %s for %s (%s), valid %llus",
           rotation ? "rotated" : "issued", spiffe, id->address, (unsigned long long)ttl_s);
    return 0;
}

static struct ident *ident_for(struct cp_sds *sds, const struct cp_mesh *m,
                               const struct cp_workload *w)
{
    char spiffe[512];
    if (cp_ca_spiffe_id(spiffe, sizeof spiffe, m->options.trust_domain, w->ns, w->service_account) <
        0)
        return NULL;
    struct ident *id = find(sds, w->address);
    if (!id) {
        if (sds->n_ids == sds->cap_ids) {
            sds->cap_ids = sds->cap_ids ? sds->cap_ids * 2 : 8;
            sds->ids = realloc(sds->ids, sds->cap_ids * sizeof *sds->ids);
            if (!sds->ids) abort();
        }
        id = &sds->ids[sds->n_ids++];
        memset(id, 0, sizeof *id);
        id->address = strdup(w->address);
        if (!id->address) abort();
    }
    /* A mesh edit that changes the workload's namespace, account or the trust domain changes
     * who it is: a certificate for the old identity must not be served again. */
    if (!id->cert.cert_pem || strcmp(id->spiffe, spiffe) != 0)
        issue(sds, id, spiffe, m->options.cert_ttl_ms);
    return id->cert.cert_pem ? id : NULL;
}

static DataSource *inline_pem(DataSource *ds, const char *pem)
{
    envoy__config__core__v3__data_source__init(ds);
    ds->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
    ds->inline_bytes.data = (uint8_t *)pem;
    ds->inline_bytes.len = strlen(pem);
    return ds;
}

static struct cp_resource packed(const char *name, const Secret *sec)
{
    struct cp_resource r = {0};
    r.name = strdup(name);
    r.len = protobuf_c_message_get_packed_size(&sec->base);
    r.bytes = malloc(r.len ? r.len : 1);
    if (!r.name || !r.bytes) abort();
    protobuf_c_message_pack(&sec->base, r.bytes);
    return r;
}

static struct cp_resource default_secret(const struct ident *id)
{
    DataSource chain, key;
    TlsCertificate tc;
    envoy__extensions__transport_sockets__tls__v3__tls_certificate__init(&tc);
    tc.certificate_chain = inline_pem(&chain, id->cert.cert_pem);
    tc.private_key = inline_pem(&key, id->cert.key_pem);
    Secret sec;
    envoy__extensions__transport_sockets__tls__v3__secret__init(&sec);
    sec.name = CP_SDS_DEFAULT;
    sec.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE;
    sec.tls_certificate = &tc;
    return packed(CP_SDS_DEFAULT, &sec);
}

static struct cp_resource root_secret(const struct cp_sds *sds)
{
    DataSource ca;
    ValidationCtx vc;
    envoy__extensions__transport_sockets__tls__v3__certificate_validation_context__init(&vc);
    vc.trusted_ca = inline_pem(&ca, cp_ca_root_pem(sds->ca));
    Secret sec;
    envoy__extensions__transport_sockets__tls__v3__secret__init(&sec);
    sec.name = CP_SDS_ROOTCA;
    sec.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT;
    sec.validation_context = &vc;
    return packed(CP_SDS_ROOTCA, &sec);
}

void cp_sds_fill(struct cp_sds *sds, const struct cp_mesh *m, const struct cp_workload *w,
                 struct cp_resources *r)
{
    struct cp_resource *v = calloc(2, sizeof *v);
    if (!v) abort();
    size_t n = 0;
    v[n++] = root_secret(sds);
    const struct ident *id = w ? ident_for(sds, m, w) : NULL;
    if (id) v[n++] = default_secret(id);
    cp_resources_set(r, CP_SDS, v, n);
}

size_t cp_sds_rotate(struct cp_sds *sds, const struct cp_mesh *m)
{
    size_t n = 0;
    uint64_t now = sds->now_ms();
    for (size_t i = 0; i < sds->n_ids;) {
        struct ident *id = &sds->ids[i];
        if (!cp_mesh_workload_by_ip(m, id->address)) {
            ident_clear(id);
            *id = sds->ids[--sds->n_ids];
            continue;
        }
        if (now >= id->rotate_at_ms && issue(sds, id, id->spiffe, m->options.cert_ttl_ms) == 0) n++;
        i++;
    }
    return n;
}
