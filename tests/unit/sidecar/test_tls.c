/* The TLS transport end to end on one loop: a server-mode and a client-mode connection over a
 * socketpair, with certificates made at test time. mTLS with SPIFFE identities, each refusal
 * (no client certificate, another root, SAN mismatch, expired), a 1 MiB transfer, handshake
 * timeout, session resumption, context errors naming fields, and the ClientHello inspector on
 * what our client really sends. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "envoy/extensions/transport_sockets/tls/v3/common.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "sidecar/conn.h"
#include "sidecar/loop.h"
#include "sidecar/tls.h"
#include "test.h"
#include "test_tls_util.h"

/* clang flags the generated INIT macros, which name the API's deprecated fields */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define SPIFFE_CLIENT "spiffe://cluster.local/ns/default/sa/client"
#define SPIFFE_SERVER "spiffe://cluster.local/ns/default/sa/server"

static char dir[] = "/tmp/rs-tls-test-XXXXXX";

/* ---- certificates and contexts --------------------------------------------------------------- */

static void make_certs(void)
{
    if (!mkdtemp(dir)) abort();
    struct test_cert ca = test_cert_make("ca", NULL, NULL, -1, 365);
    struct test_cert ca2 = test_cert_make("other-ca", NULL, NULL, -1, 365);
    struct test_cert server =
        test_cert_make("server", &ca, "URI:" SPIFFE_SERVER ",DNS:server.default.svc", -1, 30);
    struct test_cert client = test_cert_make("client", &ca, "URI:" SPIFFE_CLIENT, -1, 30);
    struct test_cert stranger = test_cert_make("client", &ca2, "URI:" SPIFFE_CLIENT, -1, 30);
    struct test_cert expired = test_cert_make("client", &ca, "URI:" SPIFFE_CLIENT, -10, -1);
    struct test_cert server_rsa =
        test_cert_make_key("server", &ca, "URI:" SPIFFE_SERVER, -1, 30, test_rsa_key(2048));
    struct test_cert weak_rsa =
        test_cert_make_key("server", &ca, "URI:" SPIFFE_SERVER, -1, 30, test_rsa_key(1024));
    test_cert_write(&server_rsa, dir, "server_rsa");
    test_cert_write(&weak_rsa, dir, "weak_rsa");
    test_cert_free(&server_rsa);
    test_cert_free(&weak_rsa);
    test_cert_write(&ca, dir, "ca");
    test_cert_write(&server, dir, "server");
    test_cert_write(&client, dir, "client");
    test_cert_write(&stranger, dir, "stranger");
    test_cert_write(&expired, dir, "expired");
    struct test_cert *all[] = {&ca, &ca2, &server, &client, &stranger, &expired};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) test_cert_free(all[i]);
}

static void remove_certs(void)
{
    const char *names[] = {"ca",      "server",     "client",  "stranger",
                           "expired", "server_rsa", "weak_rsa"};
    char p[600];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s.pem", dir, names[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s.key", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* What a test varies in a context; the protobuf messages are built from it. */
struct ctx_spec {
    const char *cert; /* "client" → dir/client.pem + .key; NULL: none */
    bool ca;          /* trusted_ca = dir/ca.pem */
    bool inline_cert; /* certificate and key as inline_bytes rather than filenames */
    bool require_client_cert;
    const char *san_exact, *san_prefix, *san_regex; /* URI SAN matchers */
    char **alpn;
    size_t n_alpn;
    const char *sni;
    bool tls13; /* client: allow 1.3 (Envoy's client default maximum is 1.2) */
    char **ciphers;
    size_t n_ciphers;
};

typedef Envoy__Config__Core__V3__DataSource DataSource;

static DataSource file_source(char *buf, size_t cap, const char *name, const char *ext)
{
    snprintf(buf, cap, "%s/%s.%s", dir, name, ext);
    DataSource d = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
    d.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;
    d.filename = buf;
    return d;
}

static struct rs_tls_ctx *build(const struct ctx_spec *s, bool server, char *err, size_t errlen)
{
    char chain_path[600], key_path[600], ca_path[600];
    DataSource chain = file_source(chain_path, sizeof chain_path, s->cert ? s->cert : "", "pem");
    DataSource key = file_source(key_path, sizeof key_path, s->cert ? s->cert : "", "key");
    DataSource ca = file_source(ca_path, sizeof ca_path, "ca", "pem");
    static char inl[2][8192];
    if (s->inline_cert) {
        DataSource *ds[2] = {&chain, &key};
        for (int i = 0; i < 2; i++) {
            FILE *f = fopen(ds[i]->filename, "r");
            size_t n = f ? fread(inl[i], 1, sizeof inl[i], f) : 0;
            if (f) fclose(f);
            ds[i]->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
            ds[i]->inline_bytes.data = (uint8_t *)inl[i];
            ds[i]->inline_bytes.len = n;
        }
    }
    Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate cert =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
    cert.certificate_chain = &chain;
    cert.private_key = &key;
    Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate *certs[] = {&cert};

    Envoy__Type__Matcher__V3__StringMatcher sm[3];
    Envoy__Extensions__TransportSockets__Tls__V3__SubjectAltNameMatcher san[3], *sanp[3];
    size_t n_san = 0;
    const char *pats[3] = {s->san_exact, s->san_prefix, s->san_regex};
    Envoy__Type__Matcher__V3__RegexMatcher re = ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__INIT;
    for (int i = 0; i < 3; i++) {
        if (!pats[i]) continue;
        envoy__type__matcher__v3__string_matcher__init(&sm[n_san]);
        envoy__extensions__transport_sockets__tls__v3__subject_alt_name_matcher__init(&san[n_san]);
        if (i == 0) {
            sm[n_san].match_pattern_case =
                ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
            sm[n_san].exact = (char *)pats[i];
        } else if (i == 1) {
            sm[n_san].match_pattern_case =
                ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX;
            sm[n_san].prefix = (char *)pats[i];
        } else {
            re.regex = (char *)pats[i];
            sm[n_san].match_pattern_case =
                ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX;
            sm[n_san].safe_regex = &re;
        }
        san[n_san].san_type =
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI;
        san[n_san].matcher = &sm[n_san];
        sanp[n_san] = &san[n_san];
        n_san++;
    }
    Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext vc =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
    vc.trusted_ca = s->ca ? &ca : NULL;
    vc.n_match_typed_subject_alt_names = n_san;
    vc.match_typed_subject_alt_names = sanp;

    Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters params =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__INIT;
    if (s->tls13)
        params.tls_maximum_protocol_version =
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_3;
    params.n_cipher_suites = s->n_ciphers;
    params.cipher_suites = s->ciphers;

    Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext common =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
    common.tls_params = &params;
    common.n_tls_certificates = s->cert ? 1 : 0;
    common.tls_certificates = certs;
    common.n_alpn_protocols = s->n_alpn;
    common.alpn_protocols = s->alpn;
    if (s->ca || n_san) {
        common.validation_context_type_case =
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT;
        common.validation_context = &vc;
    }
    if (server) {
        Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext d =
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__INIT;
        Google__Protobuf__BoolValue req = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
        req.value = s->require_client_cert;
        d.common_tls_context = &common;
        d.require_client_certificate = &req;
        return rs_tls_ctx_server(&d, err, errlen);
    }
    Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext u =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__UPSTREAM_TLS_CONTEXT__INIT;
    u.common_tls_context = &common;
    u.sni = (char *)(s->sni ? s->sni : "");
    return rs_tls_ctx_client(&u, err, errlen);
}

/* ---- a server and a client connection on one loop -------------------------------------------- */

struct side {
    struct rs_conn *c;
    char *got;
    size_t n, cap;
    int err;        /* on_error */
    int hs_err;     /* on_handshake */
    bool handshook; /* on_handshake called */
    bool eof;
    char peer[128], alpn[64], sni[128], version[16];
};

struct rig {
    struct rs_loop loop;
    struct side srv, cli;
    struct rs_timer deadline;
    struct rs_timer tick; /* wakes the loop so done() also sees conditions outside it (a child) */
    bool (*done)(struct rig *r);
};

static struct rig *cur;

static void on_data(struct rs_conn *c, int32_t bid, const char *d, size_t n)
{
    (void)bid;
    struct side *s = c->owner;
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2;
        s->got = realloc(s->got, s->cap);
        if (!s->got) abort();
    }
    memcpy(s->got + s->n, d, n);
    s->n += n;
}
static void on_eof(struct rs_conn *c)
{
    ((struct side *)c->owner)->eof = true;
}
static void on_drained(struct rs_conn *c)
{
    (void)c;
}
static void on_connected(struct rs_conn *c, int err)
{
    struct side *s = c->owner;
    if (err == 0) {
        rs_conn_read_start(c);
        return;
    }
    s->err = err;
    rs_conn_close(c);
    s->c = NULL;
}
static void on_error(struct rs_conn *c, int err)
{
    struct side *s = c->owner;
    s->err = err;
    rs_conn_close_after_flush(c); /* a TLS alert, if any, still goes out */
    s->c = NULL;
}
static void on_accept(struct rs_conn *c, int fd, int err)
{
    (void)c, (void)fd, (void)err;
}
static const struct rs_conn_handler handler = {on_data,      on_eof,   on_drained,
                                               on_connected, on_error, on_accept};

static void copy_str(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

static void on_handshake(struct rs_conn *c, int err)
{
    struct side *s = c->owner;
    s->handshook = true;
    s->hs_err = err;
    if (err) return;
    copy_str(s->peer, sizeof s->peer, rs_tls_peer_uri_san(c));
    copy_str(s->alpn, sizeof s->alpn, rs_tls_alpn(c));
    copy_str(s->sni, sizeof s->sni, rs_tls_sni(c));
    copy_str(s->version, sizeof s->version, rs_tls_version(c));
}

static void on_deadline(struct rs_loop *loop, struct rs_timer *t)
{
    (void)t;
    loop->stop = true;
}

static void on_tick(struct rs_loop *loop, struct rs_timer *t)
{
    rs_timer_arm(loop, t, 20);
}

static void on_turn(struct rs_loop *loop)
{
    if (cur->done && cur->done(cur)) loop->stop = true;
}

static void rig_init(struct rig *r)
{
    memset(r, 0, sizeof *r);
    if (rs_loop_init(&r->loop, 0, 256, 256, 16384) != 0) abort();
    r->deadline.cb = on_deadline;
    r->tick.cb = on_tick;
    cur = r;
}

/* A connected TCP pair on loopback (what the proxy really runs on: zero-copy sends included). */
static void tcp_pair(int fds[2])
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &len))
        abort();
    fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    if (fds[1] < 0 || connect(fds[1], (struct sockaddr *)&a, sizeof a)) abort();
    fds[0] = accept(l, NULL, NULL);
    if (fds[0] < 0) abort();
    close(l);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
}

/* Opens the two ends; a NULL context leaves that side plain. */
static void rig_connect(struct rig *r, struct rs_tls_ctx *sctx, struct rs_tls_ctx *cctx,
                        const struct rs_tls_opts *copts)
{
    int fds[2];
    tcp_pair(fds);
    r->srv.c = rs_conn_new(&r->loop, fds[0], &handler, &r->srv);
    r->cli.c = rs_conn_new(&r->loop, fds[1], &handler, &r->cli);
    struct rs_tls_opts so = {.on_handshake = on_handshake};
    struct rs_tls_opts co = copts ? *copts : (struct rs_tls_opts){0};
    co.on_handshake = on_handshake;
    if (sctx) CHECK_EQ_INT(rs_tls_attach(r->srv.c, sctx, &so), 0);
    if (cctx) CHECK_EQ_INT(rs_tls_attach(r->cli.c, cctx, &co), 0);
    rs_conn_read_start(r->srv.c);
    rs_conn_read_start(r->cli.c);
}

static void rig_run(struct rig *r, bool (*done)(struct rig *r))
{
    r->done = done;
    r->loop.stop = false;
    rs_timer_arm(&r->loop, &r->deadline, 10000);
    rs_timer_arm(&r->loop, &r->tick, 20);
    /* output queued outside a loop turn (the ClientHello, test writes) goes at the end of one */
    rs_conn_flush_pending(&r->loop);
    rs_loop_run(&r->loop, on_turn);
    rs_timer_cancel(&r->loop, &r->deadline);
    rs_timer_cancel(&r->loop, &r->tick);
}

static void rig_destroy(struct rig *r)
{
    if (r->srv.c) rs_conn_close(r->srv.c);
    if (r->cli.c) rs_conn_close(r->cli.c);
    rs_conn_reap_all(&r->loop);
    rs_loop_destroy(&r->loop);
    free(r->srv.got);
    free(r->cli.got);
}

static bool both_handshook(struct rig *r)
{
    return (r->srv.handshook || r->srv.err) && (r->cli.handshook || r->cli.err);
}
static bool both_failed(struct rig *r)
{
    return r->srv.err && r->cli.err;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static char *server_alpn[] = {"istio-peer-exchange", "istio"};
static char *client_alpn[] = {"istio"};

static struct ctx_spec server_spec(void)
{
    return (struct ctx_spec){.cert = "server",
                             .ca = true,
                             .require_client_cert = true,
                             .san_prefix = "spiffe://cluster.local/ns/default/",
                             .alpn = server_alpn,
                             .n_alpn = 2};
}

static struct ctx_spec client_spec(const char *cert)
{
    return (struct ctx_spec){.cert = cert,
                             .ca = true,
                             .san_exact = SPIFFE_SERVER,
                             .alpn = client_alpn,
                             .n_alpn = 1,
                             .sni = "outbound_.8080_._.server.default.svc.cluster.local",
                             .tls13 = true};
}

static bool got_replies(struct rig *r)
{
    return (r->srv.n >= 4 && r->cli.n >= 4) || r->srv.err || r->cli.err;
}

static bool got_replies_or_srv(struct rig *r)
{
    return r->srv.n >= 4 || r->srv.err || r->cli.err;
}

static void test_mtls_identities(void)
{
    char err[256] = "";
    struct ctx_spec ss = server_spec(), cs = client_spec("client");
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    CHECK_STR(err, "");
    struct rs_tls_ctx *cctx = build(&cs, false, err, sizeof err);
    CHECK_STR(err, "");
    if (!sctx || !cctx) return;
    struct rig r;
    rig_init(&r);
    rig_connect(&r, sctx, cctx, NULL);
    /* written before the handshake: held, then encrypted */
    CHECK_EQ_INT(rs_conn_write_copy(r.cli.c, "ping", 4), 0);
    CHECK_EQ_INT(rs_conn_write_copy(r.srv.c, "pong", 4), 0);
    rig_run(&r, got_replies);
    CHECK_EQ_INT(r.srv.err, 0);
    CHECK_EQ_INT(r.cli.err, 0);
    CHECK(r.srv.n == 4 && memcmp(r.srv.got, "ping", 4) == 0);
    CHECK(r.cli.n == 4 && memcmp(r.cli.got, "pong", 4) == 0);
    CHECK_STR(r.srv.peer, SPIFFE_CLIENT);
    CHECK_STR(r.cli.peer, SPIFFE_SERVER);
    CHECK_STR(r.srv.alpn, "istio");
    CHECK_STR(r.cli.alpn, "istio");
    CHECK_STR(r.srv.sni, "outbound_.8080_._.server.default.svc.cluster.local");
    CHECK_STR(r.srv.version, "TLSv1.3");
    CHECK_EQ_INT(rs_tls_ctx_stat(sctx, RS_TLS_STAT_HANDSHAKE), 1);
    CHECK_EQ_INT(rs_tls_ctx_stat(cctx, RS_TLS_STAT_HANDSHAKE), 1);
    rig_destroy(&r);
    rs_tls_ctx_unref(sctx);
    rs_tls_ctx_unref(cctx);
}

static bool srv_eof(struct rig *r)
{
    return r->srv.eof || r->srv.err;
}

/* The client writes a few bytes and half-closes (rs_conn_shutdown_write: close_notify, then the
 * FIN), after the handshake or while it is still in flight (tcp_proxy relaying a client's bytes
 * and FIN to an upstream it is still shaking hands with: the transport holds both until the
 * handshake is done). The server reads the bytes, then a clean end, not a truncation. */
static void half_close_is_clean_eof(bool after_handshake)
{
    char err[256] = "";
    struct ctx_spec ss = server_spec(), cs = client_spec("client");
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    struct rs_tls_ctx *cctx = build(&cs, false, err, sizeof err);
    if (!sctx || !cctx) {
        CHECK(!"contexts");
        return;
    }
    struct rig r;
    rig_init(&r);
    rig_connect(&r, sctx, cctx, NULL);
    if (after_handshake) rig_run(&r, both_handshook);
    CHECK(rs_tls_handshake_done(r.cli.c) == after_handshake);
    rs_conn_write_copy(r.cli.c, "held\n", 5);
    rs_conn_shutdown_write(r.cli.c);
    rig_run(&r, srv_eof);
    CHECK(r.srv.eof);
    CHECK_EQ_INT(r.srv.err, 0);
    CHECK(r.srv.n == 5 && memcmp(r.srv.got, "held\n", 5) == 0);
    rig_destroy(&r);
    rs_tls_ctx_unref(sctx);
    rs_tls_ctx_unref(cctx);
}

static void test_close_notify_is_eof(void)
{
    half_close_is_clean_eof(true);
}

static void test_half_close_during_handshake(void)
{
    half_close_is_clean_eof(false);
}

/* A refused handshake: both sides report an error, the server's stat names why. */
static void refused(struct ctx_spec ss, struct ctx_spec cs, enum rs_tls_stat stat)
{
    char err[256] = "";
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    CHECK_STR(err, "");
    struct rs_tls_ctx *cctx = build(&cs, false, err, sizeof err);
    CHECK_STR(err, "");
    if (!sctx || !cctx) return;
    struct rig r;
    rig_init(&r);
    rig_connect(&r, sctx, cctx, NULL);
    CHECK_EQ_INT(rs_conn_write_copy(r.cli.c, "secret", 6), 0);
    rig_run(&r, both_failed);
    CHECK_EQ_INT(r.srv.err, -EACCES);
    CHECK(r.cli.err != 0);
    CHECK_EQ_INT(r.srv.n, 0); /* nothing reached the protocol */
    CHECK(r.srv.handshook && r.srv.hs_err == -EACCES);
    CHECK_EQ_INT(rs_tls_ctx_stat(sctx, stat), 1);
    CHECK_EQ_INT(rs_tls_ctx_stat(sctx, RS_TLS_STAT_HANDSHAKE), 0);
    rig_destroy(&r);
    rs_tls_ctx_unref(sctx);
    rs_tls_ctx_unref(cctx);
}

static void test_client_without_cert_refused(void)
{
    refused(server_spec(), client_spec(NULL), RS_TLS_STAT_FAIL_VERIFY_NO_CERT);
}

/* Envoy's rule: SAN matchers make the client certificate mandatory even without
 * require_client_certificate. */
static void test_san_matchers_require_client_cert(void)
{
    struct ctx_spec ss = server_spec();
    ss.require_client_cert = false;
    refused(ss, client_spec(NULL), RS_TLS_STAT_FAIL_VERIFY_NO_CERT);
}

static void test_other_root_refused(void)
{
    refused(server_spec(), client_spec("stranger"), RS_TLS_STAT_FAIL_VERIFY_ERROR);
}

static void test_expired_refused(void)
{
    refused(server_spec(), client_spec("expired"), RS_TLS_STAT_FAIL_VERIFY_ERROR);
}

static void test_san_mismatch_refused(void)
{
    struct ctx_spec ss = server_spec();
    ss.san_prefix = NULL;
    ss.san_regex = "spiffe://cluster\\.local/ns/other/sa/.*";
    refused(ss, client_spec("client"), RS_TLS_STAT_FAIL_VERIFY_SAN);
}

static void test_san_regex_accepts(void)
{
    char err[256] = "";
    struct ctx_spec ss = server_spec();
    ss.san_prefix = NULL;
    ss.san_regex = "spiffe://cluster\\.local/ns/[a-z]+/sa/client";
    struct ctx_spec cs = client_spec("client");
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    struct rs_tls_ctx *cctx = build(&cs, false, err, sizeof err);
    CHECK_STR(err, "");
    if (!sctx || !cctx) return;
    struct rig r;
    rig_init(&r);
    rig_connect(&r, sctx, cctx, NULL);
    rig_run(&r, both_handshook);
    CHECK_EQ_INT(r.srv.err, 0);
    CHECK_STR(r.srv.peer, SPIFFE_CLIENT);
    rig_destroy(&r);
    rs_tls_ctx_unref(sctx);
    rs_tls_ctx_unref(cctx);
}

#define MIB (1u << 20)

static bool got_mib(struct rig *r)
{
    return r->srv.n >= MIB || r->srv.err || r->cli.err;
}

static void test_one_mib_integrity(void)
{
    char err[256] = "";
    struct ctx_spec ss = server_spec(), cs = client_spec("client");
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    struct rs_tls_ctx *cctx = build(&cs, false, err, sizeof err);
    if (!sctx || !cctx) {
        CHECK(!"contexts");
        return;
    }
    struct rig r;
    rig_init(&r);
    rig_connect(&r, sctx, cctx, NULL);
    rig_run(&r, both_handshook);
    uint8_t *data = malloc(MIB);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < MIB; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        data[i] = (uint8_t)x;
    }
    /* uneven pieces so record boundaries fall anywhere */
    for (size_t off = 0, k = 1; off < MIB; off += k, k = k * 7 % 20011 + 1) {
        if (off + k > MIB) k = MIB - off;
        CHECK_EQ_INT(rs_conn_write_copy(r.cli.c, data + off, k), 0);
    }
    rig_run(&r, got_mib);
    if (r.srv.n != MIB)
        fprintf(stderr, "  srv n %zu err %d cli err %d queued %llu\n", r.srv.n, r.srv.err,
                r.cli.err, r.cli.c ? (unsigned long long)rs_conn_queued(r.cli.c) : 0ull);
    CHECK_EQ_INT(r.srv.err, 0);
    CHECK_EQ_INT(r.srv.n, MIB);
    CHECK(r.srv.n == MIB && memcmp(r.srv.got, data, MIB) == 0);
    free(data);
    rig_destroy(&r);
    rs_tls_ctx_unref(sctx);
    rs_tls_ctx_unref(cctx);
}

static bool srv_failed(struct rig *r)
{
    return r->srv.err != 0;
}

static void test_handshake_timeout(void)
{
    char err[256] = "";
    struct ctx_spec ss = server_spec();
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    if (!sctx) {
        CHECK(!"context");
        return;
    }
    struct rig r;
    rig_init(&r);
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) abort();
    r.srv.c = rs_conn_new(&r.loop, fds[0], &handler, &r.srv);
    struct rs_tls_opts o = {.handshake_timeout_ms = 100, .on_handshake = on_handshake};
    CHECK_EQ_INT(rs_tls_attach(r.srv.c, sctx, &o), 0);
    rs_conn_read_start(r.srv.c);
    /* a peer that sends half a record and stalls */
    CHECK_EQ_INT(write(fds[1], "\x16\x03\x01\x02\x00\x01", 6), 6);
    uint64_t t0 = rs_now_ms();
    rig_run(&r, srv_failed);
    CHECK_EQ_INT(r.srv.err, -ETIMEDOUT);
    CHECK(rs_now_ms() - t0 < 5000);
    CHECK_EQ_INT(rs_tls_ctx_stat(sctx, RS_TLS_STAT_HANDSHAKE_TIMEOUT), 1);
    close(fds[1]);
    rig_destroy(&r);
    rs_tls_ctx_unref(sctx);
}

static bool cli_got_byte(struct rig *r)
{
    return r->cli.n >= 1 || r->srv.err || r->cli.err;
}

/* A second connection from the same client context resumes the first one's session: in TLS 1.2
 * from the handshake itself, in TLS 1.3 from the ticket that arrives after it (the server's byte
 * follows the ticket, so once the client has it the ticket is stored). */
static void resumed(bool tls13)
{
    char err[256] = "";
    struct ctx_spec ss = server_spec(), cs = client_spec("client");
    cs.tls13 = tls13;
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    struct rs_tls_ctx *cctx = build(&cs, false, err, sizeof err);
    if (!sctx || !cctx) {
        CHECK(!"contexts");
        return;
    }
    for (int i = 0; i < 2; i++) {
        struct rig r;
        rig_init(&r);
        rig_connect(&r, sctx, cctx, NULL);
        CHECK_EQ_INT(rs_conn_write_copy(r.srv.c, "x", 1), 0);
        rig_run(&r, cli_got_byte);
        CHECK_EQ_INT(r.srv.err, 0);
        CHECK_EQ_INT(r.cli.n, 1);
        CHECK_STR(r.cli.version, tls13 ? "TLSv1.3" : "TLSv1.2");
        CHECK_EQ_INT(rs_tls_session_reused(r.cli.c), i == 1);
        CHECK_STR(r.srv.peer, SPIFFE_CLIENT); /* the identity survives resumption */
        rig_destroy(&r);
    }
    CHECK_EQ_INT(rs_tls_ctx_stat(cctx, RS_TLS_STAT_SESSION_REUSED), 1);
    CHECK_EQ_INT(rs_tls_ctx_stat(sctx, RS_TLS_STAT_SESSION_REUSED), 1);
    rs_tls_ctx_unref(sctx);
    rs_tls_ctx_unref(cctx);
}

static void test_client_session_resumed_tls12(void)
{
    resumed(false);
}

static void test_client_session_resumed_tls13(void)
{
    resumed(true);
}

/* Bytes that are not TLS to a TLS server: a clean, counted error, nothing delivered. */
static void test_plaintext_to_tls_server(void)
{
    char err[256] = "";
    struct ctx_spec ss = server_spec();
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    if (!sctx) {
        CHECK(!"context");
        return;
    }
    struct rig r;
    rig_init(&r);
    rig_connect(&r, sctx, NULL, NULL);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ_INT(rs_conn_write_copy(r.cli.c, req, sizeof req - 1), 0);
    rig_run(&r, srv_failed);
    CHECK_EQ_INT(r.srv.err, -EPROTO);
    CHECK_EQ_INT(r.srv.n, 0);
    CHECK_EQ_INT(rs_tls_ctx_stat(sctx, RS_TLS_STAT_CONNECTION_ERROR), 1);
    rig_destroy(&r);
    rs_tls_ctx_unref(sctx);
}

/* Rotation: the owner drops its context (a new one replaces it) while a connection using it is
 * still in its handshake; the connection's own reference carries it through. */
static void test_connection_keeps_its_context(void)
{
    char err[256] = "";
    struct ctx_spec ss = server_spec(), cs = client_spec("client");
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    struct rs_tls_ctx *cctx = build(&cs, false, err, sizeof err);
    if (!sctx || !cctx) {
        CHECK(!"contexts");
        return;
    }
    struct rig r;
    rig_init(&r);
    rig_connect(&r, sctx, cctx, NULL);
    rs_tls_ctx_unref(sctx);
    rs_tls_ctx_unref(cctx);
    CHECK_EQ_INT(rs_conn_write_copy(r.cli.c, "ping", 4), 0);
    rig_run(&r, got_replies_or_srv);
    CHECK_EQ_INT(r.srv.err, 0);
    CHECK(r.srv.n == 4 && memcmp(r.srv.got, "ping", 4) == 0);
    CHECK_STR(r.srv.peer, SPIFFE_CLIENT);
    rig_destroy(&r); /* frees the contexts (ASan: no leak, no use after free) */
}

/* An RSA server certificate given inline, a TLS 1.2 client limited to ECDHE-RSA with AES-256. */
static void test_rsa_inline_tls12_cipher(void)
{
    char err[256] = "";
    static char *ciphers[] = {"ECDHE-RSA-AES256-GCM-SHA384"};
    struct ctx_spec ss = server_spec(), cs = client_spec("client");
    ss.cert = "server_rsa";
    ss.inline_cert = true;
    cs.tls13 = false;
    cs.ciphers = ciphers;
    cs.n_ciphers = 1;
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    CHECK_STR(err, "");
    struct rs_tls_ctx *cctx = build(&cs, false, err, sizeof err);
    CHECK_STR(err, "");
    if (!sctx || !cctx) return;
    struct rig r;
    rig_init(&r);
    rig_connect(&r, sctx, cctx, NULL);
    CHECK_EQ_INT(rs_conn_write_copy(r.cli.c, "ping", 4), 0);
    CHECK_EQ_INT(rs_conn_write_copy(r.srv.c, "pong", 4), 0);
    rig_run(&r, got_replies);
    CHECK_EQ_INT(r.srv.err, 0);
    CHECK_EQ_INT(r.cli.err, 0);
    CHECK_STR(r.cli.version, "TLSv1.2");
    CHECK_STR(r.cli.peer, SPIFFE_SERVER);
    CHECK(r.srv.n == 4 && r.cli.n == 4);
    rig_destroy(&r);
    rs_tls_ctx_unref(sctx);
    rs_tls_ctx_unref(cctx);
}

static void test_context_errors_name_fields(void)
{
    char err[256];
    struct ctx_spec s = server_spec();
    s.cert = "missing";
    CHECK(build(&s, true, err, sizeof err) == NULL);
    CHECK(strstr(err, "common_tls_context.tls_certificates[0].certificate_chain: cannot read") ==
          err);
    s = server_spec();
    s.ca = false;
    s.san_prefix = NULL;
    CHECK(build(&s, true, err, sizeof err) == NULL);
    CHECK(strstr(err, "require_client_certificate: ") == err);
    s = server_spec();
    s.san_regex = "(";
    CHECK(build(&s, true, err, sizeof err) == NULL);
    CHECK(strstr(err, "match_typed_subject_alt_names[1]: safe_regex") != NULL);
    static char *bad_cipher[] = {"ECDHE-RSA-NOPE"};
    s = server_spec();
    s.ciphers = bad_cipher;
    s.n_ciphers = 1;
    CHECK(build(&s, true, err, sizeof err) == NULL);
    CHECK(strstr(err, "common_tls_context.tls_params.cipher_suites: ") == err);
    s = server_spec();
    s.cert = "weak_rsa";
    CHECK(build(&s, true, err, sizeof err) == NULL);
    CHECK_STR(err, "common_tls_context.tls_certificates[0].private_key: RSA key of 1024 bits (2048 "
                   "or more required)");
    s = server_spec();
    s.cert = NULL;
    CHECK(build(&s, true, err, sizeof err) == NULL);
    CHECK(strstr(err, "common_tls_context.tls_certificates: ") == err);
}

/* ---- inspector ------------------------------------------------------------------------------- */

/* The ClientHello our client transport sends, as the peer's socket sees it. */
static size_t capture_hello(uint8_t *buf, size_t cap)
{
    char err[256] = "";
    struct ctx_spec cs = client_spec("client");
    struct rs_tls_ctx *cctx = build(&cs, false, err, sizeof err);
    if (!cctx) return 0;
    struct rig r;
    rig_init(&r);
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) abort();
    r.cli.c = rs_conn_new(&r.loop, fds[1], &handler, &r.cli);
    const char *alpn[] = {"istio-http/1.1", "istio", "h2"};
    struct rs_tls_opts o = {
        .sni = "outbound_.80_._.web.default.svc.cluster.local", .alpn = alpn, .n_alpn = 3};
    CHECK_EQ_INT(rs_tls_attach(r.cli.c, cctx, &o), 0);
    rs_conn_flush_pending(&r.loop);
    io_uring_submit_and_wait(&r.loop.ring, 1);
    ssize_t n = read(fds[0], buf, cap);
    close(fds[0]);
    rig_destroy(&r);
    rs_tls_ctx_unref(cctx);
    return n > 0 ? (size_t)n : 0;
}

static void test_inspector_on_real_hello(void)
{
    static uint8_t hello[8192];
    size_t n = capture_hello(hello, sizeof hello);
    CHECK(n > 100);
    struct rs_client_hello ch;
    CHECK_EQ_INT(rs_tls_peek_client_hello(hello, n, &ch), RS_TLS_PEEK_PARSED);
    CHECK(ch.has_sni);
    CHECK_STR(ch.sni, "outbound_.80_._.web.default.svc.cluster.local");
    CHECK_EQ_INT(ch.n_alpn, 3);
    CHECK_STR(ch.alpn[0], "istio-http/1.1");
    CHECK_STR(ch.alpn[2], "h2");
    CHECK_EQ_INT(ch.max_version, 0x0304);
    CHECK_EQ_INT(ch.hello_len, n);
    /* every shorter prefix asks for more */
    bool ok = true;
    for (size_t k = 0; k < n; k++)
        ok &= rs_tls_peek_client_hello(hello, k, &ch) == RS_TLS_PEEK_NEED_MORE;
    CHECK(ok);
    /* the same hello split over two handshake records */
    static uint8_t two[8192 + 5];
    size_t body = n - 5, first = body / 3;
    memcpy(two, hello, 5 + first);
    two[3] = (uint8_t)(first >> 8), two[4] = (uint8_t)first;
    two[5 + first] = 0x16, two[6 + first] = 0x03, two[7 + first] = 0x03;
    two[8 + first] = (uint8_t)((body - first) >> 8), two[9 + first] = (uint8_t)(body - first);
    memcpy(two + 10 + first, hello + 5 + first, body - first);
    CHECK_EQ_INT(rs_tls_peek_client_hello(two, n + 5, &ch), RS_TLS_PEEK_PARSED);
    CHECK_STR(ch.sni, "outbound_.80_._.web.default.svc.cluster.local");
    /* seeds for the fuzz target, when asked */
    const char *out = getenv("RS_TLS_WRITE_SEEDS");
    if (out) {
        char p[512];
        snprintf(p, sizeof p, "%s/ringside_client_hello", out);
        FILE *f = fopen(p, "wb");
        if (f) fwrite(hello, 1, n, f), fclose(f);
        snprintf(p, sizeof p, "%s/two_records", out);
        f = fopen(p, "wb");
        if (f) fwrite(two, 1, n + 5, f), fclose(f);
    }
}

/* A third party's ClientHello: the seed captured from openssl s_client (capture_client_hellos.sh).
 */
static void test_inspector_on_openssl_hello(void)
{
    char path[1024];
    const char *src = __FILE__; /* .../tests/unit/sidecar/test_tls.c */
    size_t root = strstr(src, "tests/unit/sidecar/") - src;
    snprintf(path, sizeof path, "%.*stests/fuzz/corpus/fuzz_tls_inspector/openssl_tls13_sni_alpn",
             (int)root, src);
    static uint8_t buf[4096];
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    struct rs_client_hello ch;
    CHECK_EQ_INT(rs_tls_peek_client_hello(buf, n, &ch), RS_TLS_PEEK_PARSED);
    CHECK_STR(ch.sni, "outbound_.9080_._.reviews.default.svc.cluster.local");
    CHECK_EQ_INT(ch.n_alpn, 3);
    CHECK_STR(ch.alpn[0], "istio-peer-exchange");
    CHECK_STR(ch.alpn[2], "istio-http/1.1");
    CHECK_EQ_INT(ch.max_version, 0x0304);
}

static void test_inspector_plaintext_and_garbage(void)
{
    struct rs_client_hello ch;
    const char *get = "GET / HTTP/1.1\r\n";
    CHECK_EQ_INT(rs_tls_peek_client_hello((const uint8_t *)get, strlen(get), &ch),
                 RS_TLS_PEEK_NOT_TLS);
    CHECK_EQ_INT(rs_tls_peek_client_hello((const uint8_t *)"", 0, &ch), RS_TLS_PEEK_NEED_MORE);
    CHECK_EQ_INT(rs_tls_peek_client_hello((const uint8_t *)"\x16", 1, &ch), RS_TLS_PEEK_NEED_MORE);
    CHECK_EQ_INT(rs_tls_peek_client_hello((const uint8_t *)"\x16\x02", 2, &ch),
                 RS_TLS_PEEK_NOT_TLS);
    /* a ServerHello where a ClientHello belongs */
    const uint8_t sh[] = {0x16, 3, 3, 0, 4, 2, 0, 0, 0};
    CHECK_EQ_INT(rs_tls_peek_client_hello(sh, sizeof sh, &ch), RS_TLS_PEEK_INVALID);
    /* a ClientHello claiming more than the bound */
    const uint8_t big[] = {0x16, 3, 1, 0, 4, 1, 0x01, 0x00, 0x00};
    CHECK_EQ_INT(rs_tls_peek_client_hello(big, sizeof big, &ch), RS_TLS_PEEK_INVALID);
    /* a complete but truncated body */
    const uint8_t trunc[] = {0x16, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3};
    CHECK_EQ_INT(rs_tls_peek_client_hello(trunc, sizeof trunc, &ch), RS_TLS_PEEK_INVALID);
}

/* ---- third-party peers: openssl s_server / s_client ------------------------------------------ */

static char cert_path[6][600];

static const char *pem(int i, const char *name, const char *ext)
{
    snprintf(cert_path[i], sizeof cert_path[i], "%s/%s.%s", dir, name, ext);
    return cert_path[i];
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len))
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

/* Polls until something accepts on port (bounded: 10 s). */
static bool wait_listening(int port)
{
    for (int i = 0; i < 200; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) return true;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static bool openssl_available(void)
{
    return system("openssl version >/dev/null 2>&1") == 0;
}

static bool cli_done(struct rig *r)
{
    return r->cli.eof || r->cli.err;
}

/* Our client (mTLS, SPIFFE SAN check on the server) against openssl s_server demanding a client
 * certificate: the HTTP page s_server serves comes back through the transport. */
static void test_client_against_openssl_s_server(void)
{
    if (!openssl_available()) {
        printf("  skipped: no openssl CLI\n");
        return;
    }
    int port = free_port();
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0), dup2(null, 1), dup2(null, 2);
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        execlp("openssl", "openssl", "s_server", "-accept", p, "-cert", pem(0, "server", "pem"),
               "-key", pem(1, "server", "key"), "-CAfile", pem(2, "ca", "pem"), "-Verify", "1",
               "-verify_return_error", "-www", (char *)NULL);
        _exit(127);
    }
    CHECK(wait_listening(port));
    char err[256] = "";
    struct ctx_spec cs = client_spec("client");
    cs.alpn = NULL, cs.n_alpn = 0;
    struct rs_tls_ctx *cctx = build(&cs, false, err, sizeof err);
    CHECK_STR(err, "");
    struct rig r;
    rig_init(&r);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    r.cli.c = rs_conn_new(&r.loop, fd, &handler, &r.cli);
    struct rs_tls_opts o = {.on_handshake = on_handshake};
    CHECK_EQ_INT(rs_tls_attach(r.cli.c, cctx, &o), 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ_INT(rs_conn_connect(r.cli.c, (struct sockaddr *)&a, sizeof a, 5000), 0);
    const char req[] = "GET / HTTP/1.0\r\n\r\n";
    CHECK_EQ_INT(rs_conn_write_copy(r.cli.c, req, sizeof req - 1), 0);
    rig_run(&r, cli_done);
    CHECK_EQ_INT(r.cli.err, 0);
    CHECK(r.cli.eof);
    CHECK(r.cli.n > 15 && memcmp(r.cli.got, "HTTP/1.0 200 ok", 15) == 0);
    CHECK_STR(r.cli.peer, SPIFFE_SERVER);
    CHECK_STR(r.cli.version, "TLSv1.3");
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    rig_destroy(&r);
    rs_tls_ctx_unref(cctx);
}

/* openssl s_client with a client certificate against our server: it verifies our chain
 * (-verify_return_error), we see its SPIFFE ID and answer with it. */
static void on_echo_data(struct rs_conn *c, int32_t bid, const char *d, size_t n)
{
    on_data(c, bid, d, n);
    struct side *s = c->owner;
    if (!memchr(s->got, '\n', s->n)) return;
    char reply[256];
    int k = snprintf(reply, sizeof reply, "pong %s\n", rs_tls_peer_uri_san(c));
    rs_conn_write_copy(c, reply, (size_t)k);
    rs_tls_close_notify(c);
    rs_conn_close_after_flush(c);
    s->c = NULL;
    s->eof = true;
}
static const struct rs_conn_handler echo_handler = {on_echo_data, on_eof,   on_drained,
                                                    on_connected, on_error, on_accept};

static pid_t s_client_pid;
static int s_client_status = -1;

/* Done when s_client has exited (after our reply and close_notify reached it), or on error. */
static bool srv_done(struct rig *r)
{
    if (r->srv.err) return true;
    return r->srv.eof && waitpid(s_client_pid, &s_client_status, WNOHANG) == s_client_pid;
}

static void test_server_against_openssl_s_client(void)
{
    if (!openssl_available()) {
        printf("  skipped: no openssl CLI\n");
        return;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &len))
        abort();
    char out_path[640];
    snprintf(out_path, sizeof out_path, "%s/s_client.out", dir);
    int in[2];
    if (pipe(in)) abort();
    pid_t pid = fork();
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_WRONLY);
        dup2(in[0], 0), dup2(out, 1), dup2(null, 2);
        close(in[1]);
        char p[32];
        snprintf(p, sizeof p, "127.0.0.1:%d", ntohs(a.sin_port));
        execlp("openssl", "openssl", "s_client", "-connect", p, "-cert", pem(3, "client", "pem"),
               "-key", pem(4, "client", "key"), "-CAfile", pem(5, "ca", "pem"),
               "-verify_return_error", "-alpn", "istio", "-quiet", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    char err[256] = "";
    struct ctx_spec ss = server_spec();
    struct rs_tls_ctx *sctx = build(&ss, true, err, sizeof err);
    CHECK_STR(err, "");
    struct pollfd pfd = {.fd = l, .events = POLLIN};
    CHECK(poll(&pfd, 1, 10000) == 1);
    int fd = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    close(l);
    CHECK(fd >= 0);
    struct rig r;
    rig_init(&r);
    r.srv.c = rs_conn_new(&r.loop, fd, &echo_handler, &r.srv);
    struct rs_tls_opts o = {.on_handshake = on_handshake};
    CHECK_EQ_INT(rs_tls_attach(r.srv.c, sctx, &o), 0);
    rs_conn_read_start(r.srv.c);
    CHECK_EQ_INT(write(in[1], "ping\n", 5), 5);
    s_client_pid = pid;
    s_client_status = -1;
    rig_run(&r, srv_done);
    CHECK_EQ_INT(r.srv.err, 0);
    CHECK_STR(r.srv.peer, SPIFFE_CLIENT);
    CHECK_STR(r.srv.alpn, "istio");
    /* s_client exited once our close_notify arrived; its output is what it decrypted */
    close(in[1]);
    if (s_client_status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    CHECK(WIFEXITED(s_client_status) && WEXITSTATUS(s_client_status) == 0);
    char got[512] = "";
    FILE *f = fopen(out_path, "r");
    if (f) {
        size_t n = fread(got, 1, sizeof got - 1, f);
        got[n] = 0;
        fclose(f);
    }
    unlink(out_path);
    CHECK_STR(got, "pong " SPIFFE_CLIENT "\n");
    rig_destroy(&r);
    rs_tls_ctx_unref(sctx);
}

static void setup(void)
{
    make_certs();
}

static void teardown(void)
{
    remove_certs();
}

RUN_TESTS(TEST_CASE(setup), TEST_CASE(test_mtls_identities), TEST_CASE(test_close_notify_is_eof),
          TEST_CASE(test_half_close_during_handshake), TEST_CASE(test_client_without_cert_refused),
          TEST_CASE(test_san_matchers_require_client_cert), TEST_CASE(test_other_root_refused),
          TEST_CASE(test_expired_refused), TEST_CASE(test_san_mismatch_refused),
          TEST_CASE(test_san_regex_accepts), TEST_CASE(test_one_mib_integrity),
          TEST_CASE(test_handshake_timeout), TEST_CASE(test_client_session_resumed_tls12),
          TEST_CASE(test_client_session_resumed_tls13), TEST_CASE(test_plaintext_to_tls_server),
          TEST_CASE(test_connection_keeps_its_context), TEST_CASE(test_rsa_inline_tls12_cipher),
          TEST_CASE(test_context_errors_name_fields), TEST_CASE(test_inspector_on_real_hello),
          TEST_CASE(test_inspector_on_openssl_hello),
          TEST_CASE(test_inspector_plaintext_and_garbage),
          TEST_CASE(test_client_against_openssl_s_server),
          TEST_CASE(test_server_against_openssl_s_client), TEST_CASE(teardown))
