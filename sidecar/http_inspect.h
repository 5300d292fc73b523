/* The HTTP inspector (envoy.filters.listener.http_inspector): the application protocol of a
 * plaintext connection from its first bytes, for filter chain matching. */
#ifndef RS_HTTP_INSPECT_H
#define RS_HTTP_INSPECT_H

#include <stddef.h>

#define RS_HTTP_INSPECT_MAX 8192 /* a request line not ended within this many bytes is not HTTP */

enum rs_http_peek {
    RS_HTTP_PEEK_NEED_MORE, /* consistent with a request line so far: wait for more bytes */
    RS_HTTP_PEEK_DONE, /* decided: *proto is "http/1.0", "http/1.1", "h2c" or NULL (not HTTP) */
};

/* Looks at a connection's first n bytes (never past them): "h2c" for the HTTP/2 connection
 * preface, "http/1.x" for a request line `METHOD SP target SP HTTP/1.x CRLF` whose method is an
 * upper-case token, NULL for anything else. */
enum rs_http_peek rs_http_peek_protocol(const char *p, size_t n, const char **proto);

#endif
