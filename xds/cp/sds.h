/* Workload secrets for SDS, as Istio's agent serves them: `default` (the workload's certificate
 * chain and key) and `ROOTCA` (the mesh root as validation context). One certificate per mesh
 * workload, issued when its node first connects, shared by all of that node's streams, and
 * re-issued at 2/3 of its lifetime (or every rotate_every_ms, for tests). */
#ifndef XDS_CP_SDS_H
#define XDS_CP_SDS_H

#include <stddef.h>
#include <stdint.h>

#include "xds/cp/ca.h"
#include "xds/cp/gen.h"
#include "xds/cp/mesh.h"

#define CP_SDS_DEFAULT "default"
#define CP_SDS_ROOTCA "ROOTCA"

struct cp_sds;

struct cp_sds_stats {
    uint64_t issued, rotated, failed;
};

/* Secrets signed by ca (borrowed: it must outlive sds). rotate_every_ms: 0 to rotate at 2/3 of
 * the mesh's cert_ttl, or a fixed period. */
struct cp_sds *cp_sds_new(struct cp_ca *ca, uint64_t rotate_every_ms);

void cp_sds_free(struct cp_sds *sds);

/* Replaces the clock (wall-clock milliseconds) the rotation schedule reads; for tests. */
void cp_sds_set_clock(struct cp_sds *sds, uint64_t (*now_ms)(void));

/* Sets r's SDS resources for the node of workload w in mesh m: ROOTCA, and default when w is not
 * NULL (its certificate is issued first if there is none yet or its SPIFFE ID changed). A node
 * that is no mesh workload gets ROOTCA only: the CA signs only identities the mesh declares. */
void cp_sds_fill(struct cp_sds *sds, const struct cp_mesh *m, const struct cp_workload *w,
                 struct cp_resources *r);

/* Re-issues the certificates whose rotation time has come (and forgets workloads gone from m).
 * Returns how many were re-issued: the caller then refills and pushes SDS to its streams. */
size_t cp_sds_rotate(struct cp_sds *sds, const struct cp_mesh *m);

/* The current certificate of the workload at address, or NULL. */
const struct cp_ca_cert *cp_sds_cert(const struct cp_sds *sds, const char *address);

const struct cp_sds_stats *cp_sds_stats(const struct cp_sds *sds);

#endif
