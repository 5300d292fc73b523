/* libFuzzer target for sidecar/rbac.c: the input is RBAC rules as YAML (what a control plane
 * sends), a NUL, then request fields one a line: method, path, peer principal, SNI, and the value
 * of header x-v (the only other header). The rules are compiled (a refusal must carry a message)
 * and evaluated on the request as HTTP and as a connection, from IPv4, IPv6 and IPv4-mapped
 * peers. Aborts when a property breaks: a result the action cannot give, ALLOW allowing without
 * a policy name or denying with one, DENY allowing with one, LOG denying with one (it denies only
 * when a regex cannot decide) or logging without one. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/rbac/v3/rbac.pb-c.h"
#include "sidecar/rbac.h"
#include "xds/pbload.h"

struct fields {
    const char *v[5];
    size_t n[5];
};

static bool header(void *ctx, const char *lname, size_t len, const char **value, size_t *vlen)
{
    const struct fields *f = ctx;
    if (len != 3 || memcmp(lname, "x-v", 3) != 0 || !f->v[4]) return false;
    *value = f->v[4], *vlen = f->n[4];
    return true;
}

static void check(const struct rs_rbac *r, const struct rs_rbac_input *in)
{
    const char *pol = NULL;
    enum rs_rbac_result res = rs_rbac_eval(r, in, &pol);
    switch (rs_rbac_action(r)) {
    case RS_RBAC_ACTION_ALLOW:
        if (res == RS_RBAC_ALLOWED && !pol) abort();
        if (res == RS_RBAC_DENIED && pol) abort();
        if (res != RS_RBAC_ALLOWED && res != RS_RBAC_DENIED) abort();
        break;
    case RS_RBAC_ACTION_DENY:
        if (res == RS_RBAC_ALLOWED && pol) abort();
        if (res != RS_RBAC_ALLOWED && res != RS_RBAC_DENIED) abort();
        break;
    default:
        /* LOG never denies, except when a regex cannot decide (fail closed). */
        if (res == RS_RBAC_DENIED && pol) abort();
        if (res == RS_RBAC_LOGGED && !pol) abort();
        if (res == RS_RBAC_NOT_LOGGED && pol) abort();
        if (res == RS_RBAC_ALLOWED) abort();
    }
}

static void run(const struct rs_rbac *r, struct fields *f)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(8080)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(9000)};
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    inet_pton(AF_INET, "10.1.2.3", &v4.sin_addr);
    inet_pton(AF_INET6, "2001:db8::7", &v6.sin6_addr);
    inet_pton(AF_INET6, "::ffff:10.9.0.1", &mapped.sin6_addr);
    const struct sockaddr *addrs[] = {(void *)&v4, (void *)&v6, (void *)&mapped};
    for (int i = 0; i < 3; i++) {
        struct rs_rbac_input in = {
            .peer_principal = f->v[2],
            .source = addrs[i],
            .remote = addrs[(i + 1) % 3],
            .destination = addrs[(i + 2) % 3],
            .server_name = f->v[3],
            .http = true,
            .method = f->v[0],
            .method_len = f->n[0],
            .path = f->v[1],
            .path_len = f->n[1],
            .authority = "a.b:80",
            .authority_len = 6,
            .header = header,
            .ctx = f,
        };
        check(r, &in);
        in.http = false;
        check(r, &in);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, 0, size);
    size_t ylen = nul ? (size_t)(nul - text) : size;
    char err[512] = "";
    ProtobufCMessage *m =
        xds_load_yaml(&envoy__config__rbac__v3__rbac__descriptor, text, ylen, 0, err, sizeof err);
    if (!m) return 0;
    struct rs_rbac *r = rs_rbac_compile((const void *)m, err, sizeof err);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!r) {
        if (!err[0]) abort();
        return 0;
    }
    /* The request fields, NUL-terminated copies (principal and SNI are C strings). */
    size_t rest = nul ? size - ylen - 1 : 0;
    char *req = malloc(rest + 1);
    if (!req) abort();
    if (rest) memcpy(req, nul + 1, rest);
    req[rest] = 0;
    struct fields f = {{0}, {0}};
    char *p = req;
    for (int i = 0; i < 5 && p; i++) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        f.v[i] = p, f.n[i] = strlen(p);
        p = nl ? nl + 1 : NULL;
    }
    run(r, &f);
    free(req);
    rs_rbac_free(r);
    return 0;
}
