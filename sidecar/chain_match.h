/* Filter chain selection at accept time: Envoy's FilterChainMatch precedence and the unified
 * filter_chain_matcher (xds.type.matcher.v3.Matcher over destination port / IP, source IP /
 * port, transport and application protocol inputs, as istiod generates for virtualInbound).
 *
 * What can be known at accept time without reading bytes: the local (original destination)
 * and remote addresses. The transport protocol is always "raw_buffer" (no TLS yet), the server
 * name and application protocols are never known (no TLS or HTTP inspection): a chain that
 * requires them never matches, as the decision table documents. */
#ifndef RS_CHAIN_MATCH_H
#define RS_CHAIN_MATCH_H

#include <sys/socket.h>

#include "sidecar/config.h"

/* The chain for a connection with this local (destination) and remote (source) address, or
 * NULL (no_filter_chain_match: close it). Thread-safe, allocation-free. */
struct rs_filter_chain *rs_listener_pick_chain(const struct rs_listener *l,
                                               const struct sockaddr *local,
                                               const struct sockaddr *remote);

#endif
