/* The HTTP inspector: what a plaintext connection's first bytes say about its protocol, and when
 * it waits for more. */
#include "sidecar/http_inspect.h"
#include "tests/unit/test.h"

struct row {
    const char *in;
    enum rs_http_peek want;
    const char *proto;
};

static void test_detection(void)
{
    static const struct row rows[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", RS_HTTP_PEEK_DONE, "http/1.1"},
        {"POST /x?y=1 HTTP/1.0\r\n", RS_HTTP_PEEK_DONE, "http/1.0"},
        {"GET / HTTP/1.1\n", RS_HTTP_PEEK_DONE, "http/1.1"}, /* a bare LF ends the line too */
        {"M-SEARCH * HTTP/1.1\r\n", RS_HTTP_PEEK_DONE, "http/1.1"},
        {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", RS_HTTP_PEEK_DONE, "h2c"},
        {"PRI * HTTP/2.0\r\n", RS_HTTP_PEEK_NEED_MORE, NULL}, /* the preface so far */
        {"GET / HTT", RS_HTTP_PEEK_NEED_MORE, NULL},
        {"GET / HTTP/1.1\r", RS_HTTP_PEEK_NEED_MORE, NULL},
        {"", RS_HTTP_PEEK_NEED_MORE, NULL},
        {"get / HTTP/1.1\r\n", RS_HTTP_PEEK_DONE, NULL},      /* lower-case method */
        {"GET / HTTP/2.0\r\n", RS_HTTP_PEEK_DONE, NULL},      /* not HTTP/1 */
        {"GET / HTTP/1.2\r\n", RS_HTTP_PEEK_DONE, NULL},      /* no such minor */
        {"GET  / HTTP/1.1\r\n", RS_HTTP_PEEK_DONE, NULL},     /* empty target */
        {"GET / HTTP/1.1 x\r\n", RS_HTTP_PEEK_DONE, NULL},    /* three spaces */
        {"GET /\r HTTP/1.1\r\n", RS_HTTP_PEEK_DONE, NULL},    /* a CR inside the line */
        {"\x16\x03\x01\x02\x00", RS_HTTP_PEEK_DONE, NULL},    /* TLS */
        {"SSH-2.0-OpenSSH_9.2\r\n", RS_HTTP_PEEK_DONE, NULL}, /* a digit in the "method" */
        {"\n", RS_HTTP_PEEK_DONE, NULL},
        {" GET / HTTP/1.1\r\n", RS_HTTP_PEEK_DONE, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *proto = "unset";
        enum rs_http_peek r = rs_http_peek_protocol(rows[i].in, strlen(rows[i].in), &proto);
        if (r != rows[i].want ||
            (rows[i].proto ? !proto || strcmp(proto, rows[i].proto) != 0 : proto != NULL)) {
            fprintf(stderr, "  row %zu \"%s\": got %d %s\n", i, rows[i].in, r,
                    proto ? proto : "(null)");
            CHECK(0);
        }
    }
}

/* A request line longer than the bound is not HTTP, rather than a wait without end. */
static void test_bound(void)
{
    static char line[RS_HTTP_INSPECT_MAX + 64];
    memset(line, 'a', sizeof line);
    memcpy(line, "GET /", 5);
    const char *proto;
    CHECK(rs_http_peek_protocol(line, RS_HTTP_INSPECT_MAX - 1, &proto) == RS_HTTP_PEEK_NEED_MORE);
    CHECK(rs_http_peek_protocol(line, RS_HTTP_INSPECT_MAX, &proto) == RS_HTTP_PEEK_DONE &&
          proto == NULL);
    memcpy(line + sizeof line - 11, " HTTP/1.1\n", 10);
    CHECK(rs_http_peek_protocol(line, sizeof line - 1, &proto) == RS_HTTP_PEEK_DONE && !proto);
}

int main(void)
{
    static const struct rs_test_case cases[] = {
        TEST_CASE(test_detection),
        TEST_CASE(test_bound),
    };
    return rs_run_tests(cases, (int)(sizeof cases / sizeof cases[0]));
}
