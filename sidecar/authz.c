/* RBAC on the data path (see authz.h): the inputs a connection gives the engine, and the network
 * filter's decision. The HTTP filter's per-request decision lives in hcm.c, where the request
 * headers are. */
#include "sidecar/authz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "sidecar/config.h"
#include "sidecar/log.h"
#include "sidecar/tls.h"

void rs_authz_conn_input(struct rs_rbac_input *in, const struct rs_conn *c,
                         const struct sockaddr *peer, const struct sockaddr *local)
{
    in->peer_principal = rs_tls_peer_principal(c);
    in->source = peer;
    in->remote = NULL;
    in->destination = local;
    in->server_name = rs_tls_sni(c);
}

bool rs_authz_xff_addr(const char *xff, size_t len, uint32_t skip, struct sockaddr_storage *out)
{
    size_t end = len;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',') start--;
        if (skip == 0) {
            size_t a = start, b = end;
            while (a < b && (xff[a] == ' ' || xff[a] == '\t')) a++;
            while (b > a && (xff[b - 1] == ' ' || xff[b - 1] == '\t')) b--;
            char ip[INET6_ADDRSTRLEN];
            if (b - a == 0 || b - a >= sizeof ip) return false;
            memcpy(ip, xff + a, b - a);
            ip[b - a] = 0;
            memset(out, 0, sizeof *out);
            struct sockaddr_in *v4 = (struct sockaddr_in *)out;
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
            if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
                v4->sin_family = AF_INET;
                return true;
            }
            if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
                v6->sin6_family = AF_INET6;
                return true;
            }
            return false;
        }
        if (start == 0) return false;
        skip--;
        end = start - 1;
    }
}

bool rs_authz_network_denied(struct rs_stats_shard *sh, const struct rs_filter_chain *fc,
                             const struct rs_conn *c, const struct sockaddr *peer,
                             const struct sockaddr *local, const char *where, char *details,
                             size_t cap)
{
    struct rs_rbac_input in = {0};
    rs_authz_conn_input(&in, c, peer, local);
    for (uint32_t i = 0; i < fc->nrbac; i++) {
        const char *policy;
        if (!rs_rbac_stage_denies(&fc->rbac[i], fc->rbac[i].f, sh, &in, &policy)) continue;
        rs_rbac_denied_details(policy, details, cap);
        if (rs_log_min <= RS_LOG_DEBUG) {
            char pa[64];
            rs_addr_str(peer, pa, sizeof pa);
            rs_debug("%s: connection from %s (principal \"%s\") denied by %s: %s", where, pa,
                     in.peer_principal ? in.peer_principal : "-", fc->rbac[i].name, details);
        }
        return true;
    }
    return false;
}
