/* Message-head building, header-list editing and small address helpers for the HTTP connection
 * manager. */
#include "sidecar/headers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "sidecar/blk.h"
#include "sidecar/conn.h"

void rs_obuf_put(struct rs_obuf *b, const void *d, size_t n)
{
    if (b->oom || n == 0) return; /* d may be NULL for an empty body */
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : RS_BLK_SIZE;
        while (cap < b->len + n) cap *= 2;
        char *np = cap == RS_BLK_SIZE ? rs_blk_get() : malloc(cap);
        if (!np) {
            b->oom = true;
            return;
        }
        if (b->len) memcpy(np, b->p, b->len);
        if (b->blk)
            rs_blk_put(b->p);
        else
            free(b->p);
        b->p = np;
        b->cap = cap;
        b->blk = cap == RS_BLK_SIZE;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

void rs_obuf_free(struct rs_obuf *b)
{
    if (b->blk)
        rs_blk_put(b->p);
    else
        free(b->p);
    b->p = NULL;
}

/* Queues the head on c (which then owns the memory); -1 when it could not be built or queued. */
int rs_obuf_send(struct rs_obuf *b, struct rs_conn *c)
{
    if (b->oom) {
        rs_obuf_free(b);
        return -1;
    }
    int ret = b->blk ? rs_conn_write_blk(c, b->p, b->len) : rs_conn_write_heap(c, b->p, b->len);
    b->p = NULL;
    return ret;
}

void rs_obuf_str(struct rs_obuf *b, const char *s)
{
    rs_obuf_put(b, s, strlen(s));
}

void rs_obuf_hdr(struct rs_obuf *b, const char *n, size_t nl, const char *v, size_t vl)
{
    rs_obuf_put(b, n, nl);
    rs_obuf_put(b, ": ", 2);
    rs_obuf_put(b, v, vl);
    rs_obuf_put(b, "\r\n", 2);
}

int rs_hdrs_find(const struct rs_hdrs *hs, const char *lname, size_t len)
{
    for (uint32_t i = 0; i < hs->n; i++)
        if (hs->h[i].n && hs->h[i].nl == len && strncasecmp(hs->h[i].n, lname, len) == 0)
            return (int)i;
    return -1;
}

void rs_hdrs_remove(struct rs_hdrs *hs, const char *lname, size_t len)
{
    for (uint32_t i = 0; i < hs->n; i++)
        if (hs->h[i].n && hs->h[i].nl == len && strncasecmp(hs->h[i].n, lname, len) == 0)
            hs->h[i].n = NULL;
}

void rs_hdrs_add(struct rs_hdrs *hs, const char *n, size_t nl, const char *v, size_t vl)
{
    if (hs->n < RS_MAX_HDRS) hs->h[hs->n++] = (struct rs_hdr){n, v, (uint32_t)nl, (uint32_t)vl};
}

const char *rs_hdrs_keep(struct rs_hdrs *hs, const char *v, size_t vl)
{
    if (hs->used + vl > sizeof hs->scratch) return NULL;
    char *p = hs->scratch + hs->used;
    memcpy(p, v, vl);
    hs->used += vl;
    return p;
}

void rs_hdrs_apply_edits(struct rs_hdrs *hs, const struct rs_header_edits *const *lv, size_t nlv,
                         const struct rs_route_format_vars *fv)
{
    for (size_t l = 0; l < nlv; l++) {
        for (uint32_t k = 0; k < lv[l]->n_remove; k++)
            rs_hdrs_remove(hs, lv[l]->remove[k].name, lv[l]->remove[k].len);
        for (uint32_t k = 0; k < lv[l]->n_add; k++) {
            const struct rs_header_add *a = &lv[l]->add[k];
            bool exists = rs_hdrs_find(hs, a->name, a->name_len) >= 0;
            if (a->action == RS_HDR_ADD_IF_ABSENT && exists) continue;
            if (a->action == RS_HDR_OVERWRITE_IF_EXISTS && !exists) continue;
            const char *v = a->value;
            ssize_t vl = a->value_len;
            if (a->has_format) {
                char tmp[1024];
                vl = rs_route_format_value(a, fv, tmp, sizeof tmp);
                if (vl < 0 || !(v = rs_hdrs_keep(hs, tmp, (size_t)vl))) continue;
            }
            if (vl == 0 && !a->keep_empty_value) continue;
            if (a->action != RS_HDR_APPEND_IF_EXISTS_OR_ADD)
                rs_hdrs_remove(hs, a->name, a->name_len);
            rs_hdrs_add(hs, a->name, a->name_len, v, (size_t)vl);
        }
    }
}

bool rs_addr_is_internal(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127 || (a >> 24) == 10 || (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t loop[16] = {[15] = 1};
        return memcmp(b, loop, 16) == 0 || (b[0] & 0xfe) == 0xfc;
    }
    return false;
}

void rs_addr_ip(const struct sockaddr *sa, char *out, size_t cap)
{
    out[0] = '\0';
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

static void hex_put(char *out, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--, v >>= 4) out[i] = hex[v & 0xf];
}

void rs_uuid4(uint64_t a, uint64_t b, char out[37])
{
    a = (a & ~0xf000ull) | 0x4000ull;                        /* version 4 */
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull; /* variant 10 */
    /* 8-4-4-4-12 lowercase hex, as "%08x-%04x-%04x-%04x-%012llx" of the same bits */
    hex_put(out, a >> 32, 8);
    out[8] = '-';
    hex_put(out + 9, a >> 16, 4);
    out[13] = '-';
    hex_put(out + 14, a, 4);
    out[18] = '-';
    hex_put(out + 19, b >> 48, 4);
    out[23] = '-';
    hex_put(out + 24, b, 12);
    out[36] = '\0';
}
