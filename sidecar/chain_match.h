/* Filter chain selection at accept time: Envoy's FilterChainMatch precedence and the unified
 * filter_chain_matcher (xds.type.matcher.v3.Matcher over destination port / IP, source IP /
 * port, server name, transport and application protocol inputs, as istiod generates for
 * virtualInbound).
 *
 * The local (original destination) and remote addresses are known at accept; the transport
 * protocol, SNI and application protocols come from the listener's TLS and HTTP inspectors
 * (server.c) when it has them, else the connection is raw_buffer with neither. */
#ifndef RS_CHAIN_MATCH_H
#define RS_CHAIN_MATCH_H

#include <sys/socket.h>

#include "sidecar/config.h"

/* The chain for a connection with this local (destination) and remote (source) address and what
 * inspection found (NULL: raw_buffer, nothing else), or NULL (no_filter_chain_match: close it).
 * Thread-safe, allocation-free. */
struct rs_filter_chain *rs_listener_pick_chain(const struct rs_listener *l,
                                               const struct sockaddr *local,
                                               const struct sockaddr *remote,
                                               const struct rs_conn_meta *meta);

#endif
