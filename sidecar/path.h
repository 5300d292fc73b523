/* Request path normalization as Envoy's HTTP connection manager does it before filters and
 * routing (HttpConnectionManager.normalize_path, merge_slashes, path_with_escaped_slashes_action;
 * Istio turns on normalize_path by default). The normalized path replaces :path, so it is both
 * what routes and RBAC see and what the upstream receives.
 *
 * The steps run in Envoy's order: escaped slashes first, then RFC 3986 §6.2.2 normalization,
 * then slash merging. Only the path is touched; the query, from the first '?', is copied as is.
 * No allocation: the caller owns both buffers. */
#ifndef RS_PATH_H
#define RS_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* HttpConnectionManager.PathWithEscapedSlashesAction, for %2F and %5C in any letter case. */
enum rs_path_slashes {
    RS_PATH_SLASHES_KEEP,                  /* KEEP_UNCHANGED (and the default) */
    RS_PATH_SLASHES_REJECT,                /* REJECT_REQUEST: 400 */
    RS_PATH_SLASHES_UNESCAPE_AND_FORWARD,  /* decode to '/' and '\\', then normalize */
    RS_PATH_SLASHES_UNESCAPE_AND_REDIRECT, /* as FORWARD, but answer 307 to the result */
};

struct rs_path_opts {
    bool normalize;     /* normalize_path: RFC 3986 §6.2.2 plus '\\' taken for '/' */
    bool merge_slashes; /* merge_slashes: "//a///b" -> "/a/b" */
    enum rs_path_slashes escaped_slashes;
};

enum rs_path_result {
    RS_PATH_OK,        /* out holds the normalized request-target, different from the input */
    RS_PATH_UNCHANGED, /* out holds a copy of the input: the caller may keep its original */
    RS_PATH_REJECT,    /* answer 400: no leading '/', bad %-encoding, %00, or an escaped slash
                          under RS_PATH_SLASHES_REJECT */
    RS_PATH_REDIRECT,  /* answer 307 with Location set to out (UNESCAPE_AND_REDIRECT, only when
                          the path had an escaped slash) */
    RS_PATH_TOO_LONG,  /* out is too small; cap >= len is always enough */
};

/* Normalizes the origin-form request-target in[0..len) into out[0..cap) and sets *out_len on
 * OK, UNCHANGED and REDIRECT. The result is never longer than the input. The caller handles '*'
 * and absolute-form before calling; a path not starting with '/' is rejected whatever the
 * options. Reads only in[0..len), which need not be NUL-terminated; out is not NUL-terminated
 * and must not overlap in. Linear in len. A cap below len may give TOO_LONG even when the final
 * result would fit, because the %-decoded path is laid out in out before dot-segments go. */
enum rs_path_result rs_path_normalize(const char *in, size_t len, const struct rs_path_opts *o,
                                      char *out, size_t cap, size_t *out_len);

#endif
