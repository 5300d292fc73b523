/* Tests for sidecar/access_log.c: Envoy's default format byte for byte, REQ fallback and
 * truncation, JSON typing, response flags, compile errors and the buffered file sink. */
#include "sidecar/access_log.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct hdr {
    const char *name, *value;
};

struct hdrs {
    const struct hdr *req, *resp, *trailers;
};

static const char *lookup(const struct hdr *h, const char *name, size_t *len)
{
    for (; h && h->name; h++)
        if (strcmp(h->name, name) == 0) {
            *len = strlen(h->value);
            return h->value;
        }
    return NULL;
}

static const char *req_header(void *ctx, const char *name, size_t *len)
{
    return lookup(((struct hdrs *)ctx)->req, name, len);
}

static const char *resp_header(void *ctx, const char *name, size_t *len)
{
    return lookup(((struct hdrs *)ctx)->resp, name, len);
}

static const char *resp_trailer(void *ctx, const char *name, size_t *len)
{
    return lookup(((struct hdrs *)ctx)->trailers, name, len);
}

#define STR(s) ((struct rs_access_str){s, sizeof(s) - 1})

static const struct hdr full_req[] = {{":method", "GET"},
                                      {":path", "/api/v1/items?id=7"},
                                      {":authority", "shop.local"},
                                      {":scheme", "http"},
                                      {"x-forwarded-for", "10.1.2.3"},
                                      {"user-agent", "curl/8.5.0"},
                                      {"x-request-id", "5b3c9a1e-77f2-4c1b-9a4e-0d2f7c1e8b11"},
                                      {NULL, NULL}};
static const struct hdr full_resp[] = {{"x-envoy-upstream-service-time", "12"}, {NULL, NULL}};
static struct hdrs full_hdrs = {full_req, full_resp, NULL};
static struct sockaddr_in ds_remote, ds_local;
static struct sockaddr_in6 us_local;

/* 2026-11-26T03:01:02.123456Z */
#define START_US 1795662062123456LL

static struct rs_access_info full_info(void)
{
    ds_remote = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(40123)};
    inet_pton(AF_INET, "10.1.2.3", &ds_remote.sin_addr);
    ds_local = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(15006)};
    inet_pton(AF_INET, "10.0.0.5", &ds_local.sin_addr);
    us_local = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_port = htons(51000)};
    inet_pton(AF_INET6, "fd00::5", &us_local.sin6_addr);
    return (struct rs_access_info){
        .start_time_us = START_US,
        .duration_us = 15999,
        .request_duration_us = 1200,
        .response_duration_us = 14000,
        .response_code = 200,
        .upstream_request_attempt_count = 1,
        .bytes_received = 0,
        .bytes_sent = 1543,
        .connection_id = 42,
        .has_connection_id = true,
        .downstream_remote = (const struct sockaddr *)&ds_remote,
        .downstream_local = (const struct sockaddr *)&ds_local,
        .upstream_local = (const struct sockaddr *)&us_local,
        .protocol = STR("HTTP/1.1"),
        .upstream_host = STR("10.0.3.9:8080"),
        .upstream_cluster = STR("outbound|8080||items"),
        .route_name = STR("default"),
        .response_code_details = STR("via_upstream"),
        .req_header = req_header,
        .resp_header = resp_header,
        .resp_trailer = resp_trailer,
        .header_ctx = &full_hdrs,
    };
}

/* Renders info with format and returns a NUL-terminated static copy. */
static const char *render(const struct rs_access_format *f, const struct rs_access_info *info)
{
    static char out[4096];
    struct rs_access_buf b = {0};
    if (!f || rs_access_format_render(f, info, &b) != 0) return NULL;
    snprintf(out, sizeof out, "%.*s", (int)b.len, b.data);
    rs_access_buf_free(&b);
    return out;
}

static const char *render_text(const char *fmt, const struct rs_access_info *info)
{
    char err[256];
    struct rs_access_format *f = rs_access_format_compile(fmt, err, sizeof err);
    const char *s = render(f, info);
    rs_access_format_free(f);
    return s;
}

static void test_default_format_full(void)
{
    (void)rs_test_failures; /* the harness declares it; keep -Werror quiet */
    struct rs_access_info in = full_info();
    CHECK_STR(render_text(NULL, &in),
              "[2026-11-26T03:01:02.123Z] \"GET /api/v1/items?id=7 HTTP/1.1\" 200 - 0 1543 15 12 "
              "\"10.1.2.3\" \"curl/8.5.0\" \"5b3c9a1e-77f2-4c1b-9a4e-0d2f7c1e8b11\" "
              "\"shop.local\" \"10.0.3.9:8080\"\n");
}

static void test_default_format_empty(void)
{
    /* A downstream that connected and went away: no headers, no response, no upstream. */
    struct rs_access_info in = {.start_time_us = START_US,
                                .duration_us = 3000,
                                .request_duration_us = -1,
                                .response_duration_us = -1,
                                .response_flags = RS_RF_DC};
    CHECK_STR(render_text(NULL, &in), "[2026-11-26T03:01:02.123Z] \"- - -\" 0 DC 0 0 3 - \"-\" "
                                      "\"-\" \"-\" \"-\" \"-\"\n");
}

static void test_original_path_fallback_and_truncation(void)
{
    static const struct hdr req[] = {
        {":path", "/short"}, {"x-envoy-original-path", "/original/long/path"}, {NULL, NULL}};
    struct hdrs h = {req, NULL, NULL};
    struct rs_access_info in = {.req_header = req_header, .header_ctx = &h};
    CHECK_STR(render_text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", &in), "/original/long/path");
    CHECK_STR(render_text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH):9%", &in), "/original");
    CHECK_STR(render_text("%REQ(X-MISSING?:PATH)%|%REQ(X-MISSING)%", &in), "/short|-");
    CHECK_STR(render_text("%REQ(:PATH):100%", &in), "/short");
    CHECK_STR(render_text("%RESP(SERVER)% %TRAILER(GRPC-STATUS)%", &in), "- -");
}

static void test_all_operators_text(void)
{
    static const struct hdr tr[] = {{"grpc-status", "0"}, {NULL, NULL}};
    struct hdrs h = {full_req, full_resp, tr};
    struct rs_access_info in = full_info();
    in.header_ctx = &h;
    in.response_flags = RS_RF_UF | RS_RF_URX;
    in.downstream_peer_uri_san = STR("spiffe://cluster.local/ns/a/sa/b");
    CHECK_STR(render_text("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% "
                          "%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% "
                          "%DOWNSTREAM_LOCAL_PORT% %UPSTREAM_LOCAL_ADDRESS%",
                          &in),
              "10.1.2.3:40123 10.1.2.3 10.0.0.5:15006 10.0.0.5 15006 [fd00::5]:51000");
    CHECK_STR(render_text("%UPSTREAM_CLUSTER% %ROUTE_NAME% %CONNECTION_ID% "
                          "%UPSTREAM_REQUEST_ATTEMPT_COUNT% %RESPONSE_CODE_DETAILS% "
                          "%RESPONSE_FLAGS% %TRAILER(GRPC-STATUS)% %DOWNSTREAM_PEER_URI_SAN%",
                          &in),
              "outbound|8080||items default 42 1 via_upstream UF,URX 0 "
              "spiffe://cluster.local/ns/a/sa/b");
    /* the TLS operators read the downstream connection: none here */
    CHECK_STR(render_text("%DOWNSTREAM_PEER_SUBJECT% %DOWNSTREAM_LOCAL_URI_SAN% "
                          "%DOWNSTREAM_TLS_VERSION% %REQUESTED_SERVER_NAME% "
                          "%DOWNSTREAM_PEER_FINGERPRINT_256%",
                          &in),
              "- - - - -");
    CHECK_STR(render_text("%REQUEST_DURATION% %RESPONSE_DURATION% %DURATION% "
                          "%UPSTREAM_TRANSPORT_FAILURE_REASON% %CONNECTION_TERMINATION_DETAILS%",
                          &in),
              "1 14 15 - -");
    char host[256] = "";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    CHECK_STR(render_text("%HOSTNAME%", &in), host[0] ? host : "-");
    CHECK_STR(render_text("100%% %PROTOCOL%", &in), "100% HTTP/1.1");
}

static void test_start_time_formats(void)
{
    struct rs_access_info in = {.start_time_us = START_US};
    CHECK_STR(render_text("%START_TIME(%s)%", &in), "1795662062");
    CHECK_STR(render_text("%START_TIME(%Y/%m/%d %H:%M:%S.%3f)%", &in), "2026/11/26 03:01:02.123");
    CHECK_STR(render_text("%START_TIME(%f|%6f|%E6S)%", &in), "123456000|123456|02.123456");
    struct rs_access_info none = {0};
    CHECK_STR(render_text("%START_TIME%", &none), "-");
}

static void test_json(void)
{
    static const char *const keys[] = {"start_time", "method", "code", "bytes",
                                       "ua",         "flags",  "line", "upstream_service_time",
                                       "port",       "literal"};
    static const char *const fmts[] = {"%START_TIME%",
                                       "%REQ(:METHOD)%",
                                       "%RESPONSE_CODE%",
                                       "%BYTES_SENT%",
                                       "%REQ(USER-AGENT)%",
                                       "%RESPONSE_FLAGS%",
                                       "%REQ(:METHOD)% %REQ(X-MISSING)% \"q\"",
                                       "%RESP(X-NOPE)%",
                                       "%DOWNSTREAM_LOCAL_PORT%",
                                       "plain"};
    char err[256];
    struct rs_access_format *f = rs_access_format_compile_json(keys, fmts, 10, err, sizeof err);
    CHECK(f != NULL);
    struct rs_access_info in = full_info();
    CHECK_STR(render(f, &in), "{\"start_time\":\"2026-11-26T03:01:02.123Z\",\"method\":\"GET\","
                              "\"code\":200,\"bytes\":1543,\"ua\":\"curl/8.5.0\",\"flags\":\"-\","
                              "\"line\":\"GET - \\\"q\\\"\",\"upstream_service_time\":null,"
                              "\"port\":15006,\"literal\":\"plain\"}\n");
    rs_access_format_free(f);
}

static void test_flags(void)
{
    char buf[128];
    CHECK_EQ_INT(rs_resp_flags_format(0, buf, sizeof buf), 1);
    CHECK_STR(buf, "-");
    rs_resp_flags_format(RS_RF_UH | RS_RF_NR | RS_RF_DC | RS_RF_DO, buf, sizeof buf);
    CHECK_STR(buf, "UH,NR,DC,DO");
    rs_resp_flags_format(RS_RF_UT | RS_RF_UO | RS_RF_URX | RS_RF_NC | RS_RF_DT | RS_RF_SI |
                             RS_RF_DPE | RS_RF_UPE | RS_RF_OM | RS_RF_DF,
                         buf, sizeof buf);
    CHECK_STR(buf, "UT,UO,URX,SI,DPE,DT,UPE,NC,OM,DF");
    CHECK_STR(rs_resp_flag_str(RS_RF_UAEX), "UAEX");
    CHECK_STR(rs_resp_flag_str(RS_RF_UMSDR), "UMSDR");
    CHECK(rs_resp_flag_str(RS_RF_UH | RS_RF_UF) == NULL);
    char small[4];
    CHECK_EQ_INT(rs_resp_flags_format(RS_RF_UH | RS_RF_UF, small, sizeof small), 5);
    CHECK_STR(small, "UH,");
}

static void test_compile_errors(void)
{
    char err[256];
    CHECK(rs_access_format_compile("ok %NOPE_OPERATOR% x", err, sizeof err) == NULL);
    CHECK(strstr(err, "NOPE_OPERATOR") && strstr(err, "offset 3"));
    CHECK(rs_access_format_compile("%REQ%", err, sizeof err) == NULL);
    CHECK(strstr(err, "REQ") != NULL);
    CHECK(rs_access_format_compile("%PROTOCOL(x)%", err, sizeof err) == NULL);
    CHECK(rs_access_format_compile("50% off", err, sizeof err) == NULL);
    CHECK(strstr(err, "offset 2") != NULL);
    CHECK(rs_access_format_compile("%REQ(A?)%", err, sizeof err) == NULL);
    CHECK(rs_access_format_compile("%REQ(:PATH", err, sizeof err) == NULL);
    static const char *const keys[] = {"a", "b"};
    static const char *const fmts[] = {"%PROTOCOL%", "%BOGUS%"};
    CHECK(rs_access_format_compile_json(keys, fmts, 2, err, sizeof err) == NULL);
    CHECK(strstr(err, "BOGUS") && strstr(err, "\"b\""));
}

static void test_file_sink(void)
{
    char path[] = "/tmp/rs_access_log_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char err[256];
    struct rs_access_log *log = rs_access_log_create(RS_ACCESS_SINK_FILE, path,
                                                     "%RESPONSE_CODE% "
                                                     "%REQ(:METHOD)%\n",
                                                     NULL, NULL, 0, err, sizeof err);
    CHECK(log != NULL);
    if (!log) return;
    struct rs_access_log_buf w1, w2;
    rs_access_log_buf_init(&w1, log);
    rs_access_log_buf_init(&w2, log);
    struct rs_access_info in = full_info();
    CHECK_EQ_INT(rs_access_log_append(&w1, &in), 0);
    in.response_code = 503;
    CHECK_EQ_INT(rs_access_log_append(&w2, &in), 0);
    CHECK_EQ_INT(w1.lines, 1);
    /* Nothing reaches the file before a flush. */
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 0);
    CHECK_EQ_INT(rs_access_log_flush(&w2), 0);
    CHECK_EQ_INT(rs_access_log_flush(&w1), 0);
    /* Passing the threshold flushes on its own. */
    size_t per_line = strlen("200 GET\n"), n = RS_ACCESS_LOG_FLUSH_BYTES / per_line + 1;
    in.response_code = 200;
    for (size_t i = 0; i < n; i++) rs_access_log_append(&w1, &in);
    CHECK(w1.buf.len < RS_ACCESS_LOG_FLUSH_BYTES / 2);
    CHECK(stat(path, &st) == 0 && (size_t)st.st_size >= RS_ACCESS_LOG_FLUSH_BYTES);
    rs_access_log_buf_free(&w1);
    rs_access_log_buf_free(&w2);
    CHECK_EQ_INT(rs_access_log_dropped(log), 0);
    rs_access_log_destroy(log);

    char *data = malloc(n * per_line + 64);
    fd = open(path, O_RDONLY);
    ssize_t got = read(fd, data, n * per_line + 64);
    close(fd);
    CHECK_EQ_INT(got, (ssize_t)((n + 2) * per_line));
    CHECK(got > 16 && memcmp(data, "503 GET\n200 GET\n", 16) == 0);
    free(data);
    unlink(path);

    CHECK(rs_access_log_create(RS_ACCESS_SINK_FILE, "/nonexistent-dir/x.log", NULL, NULL, NULL, 0,
                               err, sizeof err) == NULL);
    CHECK(strstr(err, "/nonexistent-dir/x.log") != NULL);
}

static void test_stdout_sink_json(void)
{
    static const char *const keys[] = {"code"};
    static const char *const fmts[] = {"%RESPONSE_CODE%"};
    char err[256];
    struct rs_access_log *log =
        rs_access_log_create(RS_ACCESS_SINK_STDOUT, NULL, NULL, keys, fmts, 1, err, sizeof err);
    CHECK(log != NULL);
    if (!log) return;
    struct rs_access_log_buf b;
    rs_access_log_buf_init(&b, log);
    struct rs_access_info in = full_info();
    CHECK_EQ_INT(rs_access_log_append(&b, &in), 0);
    CHECK_EQ_INT(b.buf.len, strlen("{\"code\":200}\n"));
    fflush(stdout);
    rs_access_log_buf_free(&b);
    rs_access_log_destroy(log);
}

RUN_TESTS(TEST_CASE(test_default_format_full), TEST_CASE(test_default_format_empty),
          TEST_CASE(test_original_path_fallback_and_truncation), TEST_CASE(test_all_operators_text),
          TEST_CASE(test_start_time_formats), TEST_CASE(test_json), TEST_CASE(test_flags),
          TEST_CASE(test_compile_errors), TEST_CASE(test_file_sink),
          TEST_CASE(test_stdout_sink_json))
