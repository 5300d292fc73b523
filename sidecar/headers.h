/* Building HTTP/1.1 message heads and editing a request's header list: what the HTTP connection
 * manager does to every request and response, kept apart from its session and stream logic. */
#ifndef RS_HEADERS_H
#define RS_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sidecar/router.h"

struct rs_conn;

/* A message head being built. It starts in a cached block (heads are rarely larger) and moves to
 * malloc'd memory only if it outgrows it; rs_obuf_send hands it to the connection either way. */
struct rs_obuf {
    char *p;
    size_t len, cap;
    bool oom, blk;
};

void rs_obuf_put(struct rs_obuf *b, const void *d, size_t n);
void rs_obuf_str(struct rs_obuf *b, const char *s);
/* Appends "name: value\r\n". */
void rs_obuf_hdr(struct rs_obuf *b, const char *n, size_t nl, const char *v, size_t vl);
void rs_obuf_free(struct rs_obuf *b);
/* Queues the head on c (which then owns the memory); -1 when it could not be built or queued. */
int rs_obuf_send(struct rs_obuf *b, struct rs_conn *c);

#define RS_MAX_HDRS 512

/* A request's headers while they are edited: pointers into the parsed head (valid during the
 * head callback) or into `scratch` for values made here. A removed header has n == NULL. */
struct rs_hdr {
    const char *n, *v;
    uint32_t nl, vl;
};

struct rs_hdrs {
    struct rs_hdr h[RS_MAX_HDRS];
    uint32_t n;
    char scratch[4096];
    size_t used;
};

/* Index of the first header named lname (case-insensitive), or -1. */
int rs_hdrs_find(const struct rs_hdrs *hs, const char *lname, size_t len);
void rs_hdrs_remove(struct rs_hdrs *hs, const char *lname, size_t len);
void rs_hdrs_add(struct rs_hdrs *hs, const char *n, size_t nl, const char *v, size_t vl);
/* Copies a value into the list's scratch space; NULL when it is full. */
const char *rs_hdrs_keep(struct rs_hdrs *hs, const char *v, size_t vl);
/* Applies Envoy's header edit levels in order (removals, then adds with their append actions;
 * %VAR% values expanded with fv). */
void rs_hdrs_apply_edits(struct rs_hdrs *hs, const struct rs_header_edits *const *lv, size_t nlv,
                         const struct rs_route_format_vars *fv);

/* Loopback and private ranges: Envoy's default notion of an internal peer. */
bool rs_addr_is_internal(const struct sockaddr *sa);
/* The IP of an address, without port. */
void rs_addr_ip(const struct sockaddr *sa, char *out, size_t cap);
/* A version-4 UUID from 128 random bits, as x-request-id carries it. */
void rs_uuid4(uint64_t a, uint64_t b, char out[37]);

#endif
