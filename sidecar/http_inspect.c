/* The HTTP inspector (see http_inspect.h). */
#include "sidecar/http_inspect.h"

#include <string.h>

enum rs_http_peek rs_http_peek_protocol(const char *p, size_t n, const char **proto)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const size_t pl = sizeof preface - 1;
    *proto = NULL;
    if (memcmp(p, preface, n < pl ? n : pl) == 0) {
        if (n < pl) return RS_HTTP_PEEK_NEED_MORE;
        *proto = "h2c";
        return RS_HTTP_PEEK_DONE;
    }
    /* METHOD SP target SP HTTP/1.x CRLF: the first byte that cannot belong to one decides */
    size_t i = 0, sp1 = 0, sp2 = 0, lim = n < RS_HTTP_INSPECT_MAX ? n : RS_HTTP_INSPECT_MAX;
    for (; i < lim && p[i] != '\n'; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == ' ') {
            if (i == 0 || (sp1 && sp2)) return RS_HTTP_PEEK_DONE;
            if (!sp1)
                sp1 = i;
            else
                sp2 = i;
        } else if (ch == '\r') {
            if (i + 1 < lim && p[i + 1] != '\n') return RS_HTTP_PEEK_DONE;
        } else if (ch < 0x21 || ch > 0x7e) {
            return RS_HTTP_PEEK_DONE;
        } else if (!sp1 && !(ch >= 'A' && ch <= 'Z') && ch != '-' && ch != '_') {
            return RS_HTTP_PEEK_DONE; /* methods are upper-case tokens */
        }
    }
    if (i == lim) return n < RS_HTTP_INSPECT_MAX ? RS_HTTP_PEEK_NEED_MORE : RS_HTTP_PEEK_DONE;
    if (i == 0) return RS_HTTP_PEEK_DONE;
    size_t end = p[i - 1] == '\r' ? i - 1 : i;
    if (!sp2 || sp2 == sp1 + 1 || end != sp2 + 9 || memcmp(p + sp2 + 1, "HTTP/1.", 7) != 0)
        return RS_HTTP_PEEK_DONE;
    char minor = p[sp2 + 8];
    *proto = minor == '1' ? "http/1.1" : minor == '0' ? "http/1.0" : NULL;
    return RS_HTTP_PEEK_DONE;
}
