/* libFuzzer target for sidecar/tls_inspect.c: the input is a connection's first bytes, peeked
 * from a heap buffer of exactly their length (ASan sees any read past it). Aborts when a property
 * breaks: a parsed ClientHello ends within the input, its SNI and ALPN names are NUL-terminated
 * and within their bounds, peeking exactly hello_len bytes gives the same result, and one byte
 * less asks for more (a connection is never judged before its ClientHello is complete). */
#include <stdlib.h>
#include <string.h>

#include "sidecar/tls.h"

static void check_names(const struct rs_client_hello *ch)
{
    if (ch->n_alpn > RS_TLS_MAX_ALPN) abort();
    if (memchr(ch->sni, 0, sizeof ch->sni) == NULL) abort();
    if (ch->has_sni && ch->sni[0] == 0) abort();
    for (uint32_t i = 0; i < ch->n_alpn; i++)
        if (ch->alpn[i][0] == 0 || memchr(ch->alpn[i], 0, sizeof ch->alpn[i]) == NULL) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) abort();
    memcpy(buf, data, size);
    struct rs_client_hello ch, again;
    enum rs_tls_peek r = rs_tls_peek_client_hello(buf, size, &ch);
    if (r == RS_TLS_PEEK_PARSED) {
        if (ch.hello_len == 0 || ch.hello_len > size) abort();
        check_names(&ch);
        if (rs_tls_peek_client_hello(buf, ch.hello_len, &again) != RS_TLS_PEEK_PARSED) abort();
        if (memcmp(&ch, &again, sizeof ch) != 0) abort();
        if (rs_tls_peek_client_hello(buf, ch.hello_len - 1, &again) != RS_TLS_PEEK_NEED_MORE)
            abort();
    } else if (r != RS_TLS_PEEK_NEED_MORE && r != RS_TLS_PEEK_NOT_TLS && r != RS_TLS_PEEK_INVALID) {
        abort();
    }
    free(buf);
    return 0;
}
