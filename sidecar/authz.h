/* The RBAC filters on the data path: what a connection or a request looks like to the RBAC
 * engine (sidecar/rbac.h), and the network filter's once-per-connection decision that the TCP
 * proxy and the HTTP connection manager both run before any downstream byte goes upstream. */
#ifndef RS_AUTHZ_H
#define RS_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "sidecar/rbac.h"

struct rs_conn;
struct rs_filter_chain;
struct rs_stats_shard;

/* Fills the connection part of an RBAC input: the verified peer's principal (NULL when c is not
 * TLS), the peer and local (original destination) addresses and the SNI. */
void rs_authz_conn_input(struct rs_rbac_input *in, const struct rs_conn *c,
                         const struct sockaddr *peer, const struct sockaddr *local);

/* Envoy's getLastAddressFromXFF: the IP address `skip` entries from the end of an
 * x-forwarded-for value (port 0). False when there are not that many entries or the entry is not
 * an IP address. */
bool rs_authz_xff_addr(const char *xff, size_t len, uint32_t skip, struct sockaddr_storage *out);

/* The filter chain's envoy.filters.network.rbac stages, run once when the peer is known (at
 * accept for plaintext, at the end of the TLS handshake). Counts allowed/denied/shadow_* in
 * shard sh; on a denial writes Envoy's connection termination details
 * ("rbac_access_denied_matched_policy[<policy>]") into details, logs the peer at debug level
 * (`<where>` names the caller) and returns true: the caller closes the connection. */
bool rs_authz_network_denied(struct rs_stats_shard *sh, const struct rs_filter_chain *fc,
                             const struct rs_conn *c, const struct sockaddr *peer,
                             const struct sockaddr *local, const char *where, char *details,
                             size_t cap);

#endif
