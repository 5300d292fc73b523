/* Envoy's access-log formatter: compiles command-operator format strings into a flat list of
 * operations, renders them per request, and owns the stdout/stderr/file sinks with their
 * per-worker buffers. Semantics follow Envoy's "Access logging" usage page: '-' for a value that
 * is unset or empty in text, null in JSON; numbers stay numbers in JSON. */
#include "sidecar/access_log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sidecar/tls.h"

const char rs_access_default_format[] =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/* ---- response flags ---- */

/* Indexed by bit number; Envoy's ResponseFlagUtils lists them in this order. */
static const char *const resp_flag_names[] = {
    "LH",   "UH",   "UT",   "LR",   "UR", "UF",  "UC", "UO", "NR",  "DI",
    "FI",   "RL",   "UAEX", "RLSE", "DC", "URX", "SI", "IH", "DPE", "UMSDR",
    "RFCF", "NFCF", "DT",   "UPE",  "NC", "OM",  "DF", "DO", "DR",  "UDO",
};
#define NUM_RESP_FLAGS (sizeof resp_flag_names / sizeof resp_flag_names[0])

const char *rs_resp_flag_str(enum rs_resp_flag flag)
{
    unsigned f = (unsigned)flag;
    if (f == 0 || (f & (f - 1)) != 0) return NULL;
    unsigned bit = (unsigned)__builtin_ctz(f);
    return bit < NUM_RESP_FLAGS ? resp_flag_names[bit] : NULL;
}

uint32_t rs_resp_flag_parse(const char *name)
{
    for (unsigned bit = 0; bit < NUM_RESP_FLAGS; bit++)
        if (strcmp(resp_flag_names[bit], name) == 0) return 1u << bit;
    return 0;
}

size_t rs_resp_flags_format(uint32_t flags, char *out, size_t cap)
{
    size_t n = 0;
    for (unsigned bit = 0; bit < NUM_RESP_FLAGS; bit++) {
        if (!(flags & (1u << bit))) continue;
        const char *s = resp_flag_names[bit];
        size_t sl = strlen(s);
        if (n > 0) {
            if (n + 1 < cap) out[n] = ',';
            n++;
        }
        for (size_t i = 0; i < sl; i++, n++)
            if (n + 1 < cap) out[n] = s[i];
    }
    if (n == 0) {
        if (cap > 1) out[0] = '-';
        n = 1;
    }
    if (cap > 0) out[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* ---- compiled form ---- */

enum op_kind {
    OP_LITERAL,
    OP_START_TIME,
    OP_REQ,
    OP_RESP,
    OP_TRAILER,
    OP_PROTOCOL,
    OP_RESPONSE_CODE,
    OP_RESPONSE_CODE_DETAILS,
    OP_RESPONSE_FLAGS,
    OP_BYTES_RECEIVED,
    OP_BYTES_SENT,
    OP_DURATION,
    OP_REQUEST_DURATION,
    OP_RESPONSE_DURATION,
    OP_UPSTREAM_HOST,
    OP_UPSTREAM_CLUSTER,
    OP_UPSTREAM_LOCAL_ADDRESS,
    OP_UPSTREAM_TRANSPORT_FAILURE_REASON,
    OP_DOWNSTREAM_REMOTE_ADDRESS,
    OP_DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT,
    OP_DOWNSTREAM_LOCAL_ADDRESS,
    OP_DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT,
    OP_DOWNSTREAM_LOCAL_PORT,
    OP_DOWNSTREAM_PEER_URI_SAN,
    OP_DOWNSTREAM_PEER_SUBJECT,
    OP_DOWNSTREAM_LOCAL_URI_SAN,
    OP_DOWNSTREAM_TLS_VERSION,
    OP_REQUESTED_SERVER_NAME,
    OP_DOWNSTREAM_PEER_FINGERPRINT_256,
    OP_ROUTE_NAME,
    OP_CONNECTION_ID,
    OP_CONNECTION_TERMINATION_DETAILS,
    OP_HOSTNAME,
    OP_UPSTREAM_REQUEST_ATTEMPT_COUNT,
};

enum op_arg {
    ARG_NONE,     /* no parentheses allowed */
    ARG_OPTIONAL, /* START_TIME(fmt) */
    ARG_HEADERS,  /* REQ(X?Y): required */
};

struct op_def {
    const char *name;
    enum op_kind kind;
    enum op_arg arg;
};

static const struct op_def op_defs[] = {
    {"START_TIME", OP_START_TIME, ARG_OPTIONAL},
    {"REQ", OP_REQ, ARG_HEADERS},
    {"RESP", OP_RESP, ARG_HEADERS},
    {"TRAILER", OP_TRAILER, ARG_HEADERS},
    {"PROTOCOL", OP_PROTOCOL, ARG_NONE},
    {"RESPONSE_CODE", OP_RESPONSE_CODE, ARG_NONE},
    {"RESPONSE_CODE_DETAILS", OP_RESPONSE_CODE_DETAILS, ARG_NONE},
    {"RESPONSE_FLAGS", OP_RESPONSE_FLAGS, ARG_NONE},
    {"BYTES_RECEIVED", OP_BYTES_RECEIVED, ARG_NONE},
    {"BYTES_SENT", OP_BYTES_SENT, ARG_NONE},
    {"DURATION", OP_DURATION, ARG_NONE},
    {"REQUEST_DURATION", OP_REQUEST_DURATION, ARG_NONE},
    {"RESPONSE_DURATION", OP_RESPONSE_DURATION, ARG_NONE},
    {"UPSTREAM_HOST", OP_UPSTREAM_HOST, ARG_NONE},
    {"UPSTREAM_CLUSTER", OP_UPSTREAM_CLUSTER, ARG_NONE},
    {"UPSTREAM_LOCAL_ADDRESS", OP_UPSTREAM_LOCAL_ADDRESS, ARG_NONE},
    {"UPSTREAM_TRANSPORT_FAILURE_REASON", OP_UPSTREAM_TRANSPORT_FAILURE_REASON, ARG_NONE},
    {"DOWNSTREAM_REMOTE_ADDRESS", OP_DOWNSTREAM_REMOTE_ADDRESS, ARG_NONE},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", OP_DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT, ARG_NONE},
    {"DOWNSTREAM_LOCAL_ADDRESS", OP_DOWNSTREAM_LOCAL_ADDRESS, ARG_NONE},
    {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", OP_DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT, ARG_NONE},
    {"DOWNSTREAM_LOCAL_PORT", OP_DOWNSTREAM_LOCAL_PORT, ARG_NONE},
    {"DOWNSTREAM_PEER_URI_SAN", OP_DOWNSTREAM_PEER_URI_SAN, ARG_NONE},
    {"DOWNSTREAM_PEER_SUBJECT", OP_DOWNSTREAM_PEER_SUBJECT, ARG_NONE},
    {"DOWNSTREAM_LOCAL_URI_SAN", OP_DOWNSTREAM_LOCAL_URI_SAN, ARG_NONE},
    {"DOWNSTREAM_TLS_VERSION", OP_DOWNSTREAM_TLS_VERSION, ARG_NONE},
    {"REQUESTED_SERVER_NAME", OP_REQUESTED_SERVER_NAME, ARG_NONE},
    {"DOWNSTREAM_PEER_FINGERPRINT_256", OP_DOWNSTREAM_PEER_FINGERPRINT_256, ARG_NONE},
    {"ROUTE_NAME", OP_ROUTE_NAME, ARG_NONE},
    {"CONNECTION_ID", OP_CONNECTION_ID, ARG_NONE},
    {"CONNECTION_TERMINATION_DETAILS", OP_CONNECTION_TERMINATION_DETAILS, ARG_NONE},
    {"HOSTNAME", OP_HOSTNAME, ARG_NONE},
    {"UPSTREAM_REQUEST_ATTEMPT_COUNT", OP_UPSTREAM_REQUEST_ATTEMPT_COUNT, ARG_NONE},
};

struct op {
    enum op_kind kind;
    uint32_t max_len; /* Envoy's ":Z" truncation; 0 = none */
    char *s1;         /* literal text, primary header, time format or hostname */
    size_t s1len;
    char *s2; /* fallback header of REQ(X?Y) */
};

/* One json_format key and the run of ops that renders its value. */
struct json_field {
    char *key;
    size_t first_op, nops;
};

struct rs_access_format {
    struct op *ops;
    size_t nops, cap;
    struct json_field *fields; /* NULL for a text format */
    size_t nfields;
};

void rs_access_format_free(struct rs_access_format *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->nops; i++) {
        free(f->ops[i].s1);
        free(f->ops[i].s2);
    }
    for (size_t i = 0; i < f->nfields; i++) free(f->fields[i].key);
    free(f->ops);
    free(f->fields);
    free(f);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static struct op *push_op(struct rs_access_format *f, enum op_kind kind)
{
    if (f->nops == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 16;
        struct op *n = realloc(f->ops, ncap * sizeof *n);
        if (!n) return NULL;
        f->ops = n;
        f->cap = ncap;
    }
    struct op *op = &f->ops[f->nops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    return op;
}

static char *dup_lower(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (!d) return NULL;
    for (size_t i = 0; i < len; i++) d[i] = (char)tolower((unsigned char)s[i]);
    d[len] = '\0';
    return d;
}

/* Appends literal bytes, merging with a preceding literal op. */
static int add_literal(struct rs_access_format *f, size_t run_start, const char *s, size_t len)
{
    if (len == 0) return 0;
    struct op *prev = f->nops > run_start ? &f->ops[f->nops - 1] : NULL;
    if (!prev || prev->kind != OP_LITERAL) {
        prev = push_op(f, OP_LITERAL);
        if (!prev) return -ENOMEM;
    }
    char *n = realloc(prev->s1, prev->s1len + len + 1);
    if (!n) return -ENOMEM;
    memcpy(n + prev->s1len, s, len);
    prev->s1len += len;
    n[prev->s1len] = '\0';
    prev->s1 = n;
    return 0;
}

static const struct op_def *find_op(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof op_defs / sizeof op_defs[0]; i++)
        if (strlen(op_defs[i].name) == len && memcmp(op_defs[i].name, name, len) == 0)
            return &op_defs[i];
    return NULL;
}

/* Fills op's arguments from the text between the parentheses. */
static int set_op_args(struct op *op, const struct op_def *def, const char *arg, size_t alen,
                       char *err, size_t errlen, size_t at)
{
    if (def->kind == OP_START_TIME) {
        if (alen == 0) return 0;
        op->s1 = strndup(arg, alen);
        op->s1len = alen;
        return op->s1 ? 0 : -ENOMEM;
    }
    const char *q = memchr(arg, '?', alen);
    size_t l1 = q ? (size_t)(q - arg) : alen;
    if (l1 == 0 || (q && (alen - l1 - 1 == 0 || memchr(q + 1, '?', alen - l1 - 1)))) {
        set_err(err, errlen, "%s: invalid header argument '%.*s' at offset %zu", def->name,
                (int)alen, arg, at);
        return -EINVAL;
    }
    op->s1 = dup_lower(arg, l1);
    op->s1len = l1;
    if (!op->s1) return -ENOMEM;
    if (q) {
        op->s2 = dup_lower(q + 1, alen - l1 - 1);
        if (!op->s2) return -ENOMEM;
    }
    return 0;
}

/* Parses one "%NAME(args):len%" command starting at fmt[pos] == '%'; on success stores the
 * offset just past it in *end. */
static int parse_command(struct rs_access_format *f, const char *fmt, size_t pos, size_t *end,
                         char *err, size_t errlen)
{
    size_t i = pos + 1, name = i;
    while (isupper((unsigned char)fmt[i]) || isdigit((unsigned char)fmt[i]) || fmt[i] == '_') i++;
    size_t namelen = i - name;
    const char *arg = NULL;
    size_t alen = 0;
    if (namelen > 0 && fmt[i] == '(') {
        const char *close = strchr(fmt + i + 1, ')');
        if (!close) goto bad;
        arg = fmt + i + 1;
        alen = (size_t)(close - arg);
        i = (size_t)(close - fmt) + 1;
    }
    unsigned long max_len = 0;
    if (namelen > 0 && fmt[i] == ':' && isdigit((unsigned char)fmt[i + 1])) {
        char *e;
        errno = 0;
        max_len = strtoul(fmt + i + 1, &e, 10);
        if (errno || max_len > UINT32_MAX) goto bad;
        i = (size_t)(e - fmt);
    }
    if (namelen == 0 || fmt[i] != '%') goto bad;

    const struct op_def *def = find_op(fmt + name, namelen);
    if (!def) {
        set_err(err, errlen, "unknown command operator '%.*s' at offset %zu", (int)namelen,
                fmt + name, pos);
        return -EINVAL;
    }
    if ((def->arg == ARG_NONE && arg) || (def->arg == ARG_HEADERS && !arg)) {
        set_err(err, errlen, "command operator '%s' at offset %zu %s", def->name, pos,
                arg ? "takes no argument" : "needs a header argument");
        return -EINVAL;
    }
    struct op *op = push_op(f, def->kind);
    if (!op) return -ENOMEM;
    op->max_len = (uint32_t)max_len;
    if (arg) {
        int rc = set_op_args(op, def, arg, alen, err, errlen, pos);
        if (rc) return rc;
    }
    if (def->kind == OP_HOSTNAME) {
        /* Envoy reads the host name once, when the formatter is built. */
        char host[256];
        if (gethostname(host, sizeof host) != 0) host[0] = '\0';
        host[sizeof host - 1] = '\0';
        op->s1 = strdup(host);
        op->s1len = strlen(host);
        if (!op->s1) return -ENOMEM;
    }
    *end = i + 1;
    return 0;
bad:
    set_err(err, errlen, "no valid command operator at offset %zu", pos);
    return -EINVAL;
}

static int compile_into(struct rs_access_format *f, const char *fmt, char *err, size_t errlen)
{
    size_t run_start = f->nops, lit = 0, pos = 0;
    while (fmt[pos]) {
        if (fmt[pos] != '%') {
            pos++;
            continue;
        }
        int rc = add_literal(f, run_start, fmt + lit, pos - lit);
        if (rc == 0 && fmt[pos + 1] == '%') {
            rc = add_literal(f, run_start, "%", 1); /* "%%" is a literal percent sign */
            pos += 2;
        } else if (rc == 0) {
            rc = parse_command(f, fmt, pos, &pos, err, errlen);
        }
        if (rc == -ENOMEM) set_err(err, errlen, "out of memory");
        if (rc) return rc;
        lit = pos;
    }
    if (add_literal(f, run_start, fmt + lit, pos - lit)) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

struct rs_access_format *rs_access_format_compile(const char *text, char *err, size_t errlen)
{
    struct rs_access_format *f = calloc(1, sizeof *f);
    if (!f) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    if (compile_into(f, text ? text : rs_access_default_format, err, errlen) != 0) {
        rs_access_format_free(f);
        return NULL;
    }
    return f;
}

struct rs_access_format *rs_access_format_compile_json(const char *const *keys,
                                                       const char *const *formats, size_t n,
                                                       char *err, size_t errlen)
{
    struct rs_access_format *f = calloc(1, sizeof *f);
    if (!f || !(f->fields = calloc(n ? n : 1, sizeof *f->fields))) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        struct json_field *jf = &f->fields[f->nfields++];
        jf->key = strdup(keys[i]);
        jf->first_op = f->nops;
        if (!jf->key) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
        if (compile_into(f, formats[i], err, errlen) != 0) {
            size_t used = err ? strlen(err) : 0;
            if (err && used + 1 < errlen) /* say which key it was */
                snprintf(err + used, errlen - used, " in json_format key \"%s\"", keys[i]);
            goto fail;
        }
        jf->nops = f->nops - jf->first_op;
    }
    return f;
fail:
    rs_access_format_free(f);
    return NULL;
}

/* ---- rendering ---- */

/* An output cursor: appends fail sticky, so render checks once at the end. */
struct out {
    struct rs_access_buf *b;
    int err;
};

static int buf_reserve(struct rs_access_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap - b->len < extra) ncap *= 2;
    char *n = realloc(b->data, ncap);
    if (!n) return -ENOMEM;
    b->data = n;
    b->cap = ncap;
    return 0;
}

void rs_access_buf_free(struct rs_access_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static void put(struct out *o, const char *s, size_t len)
{
    if (o->err || (o->err = buf_reserve(o->b, len))) return;
    memcpy(o->b->data + o->b->len, s, len);
    o->b->len += len;
}

static void put_json_escaped(struct out *o, const char *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put(o, s + run, i - run);
        char esc[8];
        switch (c) {
        case '"':
            put(o, "\\\"", 2);
            break;
        case '\\':
            put(o, "\\\\", 2);
            break;
        case '\n':
            put(o, "\\n", 2);
            break;
        case '\r':
            put(o, "\\r", 2);
            break;
        case '\t':
            put(o, "\\t", 2);
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(o, esc, 6);
        }
        run = i + 1;
    }
    put(o, s + run, len - run);
}

enum val_kind { VAL_NONE, VAL_STR, VAL_NUM };

struct val {
    enum val_kind kind;
    const char *s;
    size_t len;
    uint64_t num;
};

static struct val val_str(const char *s, size_t len)
{
    if (!s || len == 0) return (struct val){.kind = VAL_NONE};
    return (struct val){.kind = VAL_STR, .s = s, .len = len};
}

static struct val val_rstr(struct rs_access_str s)
{
    return val_str(s.ptr, s.len);
}

static struct val val_num(uint64_t n)
{
    return (struct val){.kind = VAL_NUM, .num = n};
}

static struct val val_ms(int64_t us)
{
    return us < 0 ? (struct val){.kind = VAL_NONE} : val_num((uint64_t)us / 1000);
}

/* Appends n right-aligned in width digits (zero padded) to out[*len]. */
static void put_digits(char *out, size_t *len, size_t cap, uint64_t n, int width)
{
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n && k < (int)sizeof tmp);
    while (k < width && k < (int)sizeof tmp) tmp[k++] = '0';
    while (k > 0 && *len + 1 < cap) out[(*len)++] = tmp[--k];
}

/* Formats t (µs since the epoch, UTC) with strftime plus Envoy's extensions: %s (epoch
 * seconds), %f / %Nf (fraction of a second, 9 or N digits) and %EnS (seconds with n fractional
 * digits, as in the default %Y-%m-%dT%H:%M:%E3SZ). */
static size_t format_time(const char *fmt, int64_t t, char *out, size_t cap)
{
    time_t secs = (time_t)(t / 1000000);
    uint64_t frac_ns = (uint64_t)(t % 1000000) * 1000;
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = fmt; *p && len + 1 < cap; p++) {
        if (*p != '%' || !p[1]) {
            out[len++] = *p;
            continue;
        }
        const char *q = p + 1;
        int digits = -1;
        if (isdigit((unsigned char)*q) && q[1] == 'f') digits = *q++ - '0';
        if (*q == 'f') {
            digits = digits < 1 ? 9 : digits;
            uint64_t v = frac_ns;
            for (int i = 9; i > digits; i--) v /= 10;
            put_digits(out, &len, cap, v, digits);
            p = q;
        } else if (*q == 's') {
            put_digits(out, &len, cap, (uint64_t)secs, 1);
            p = q;
        } else if (*q == 'E' && isdigit((unsigned char)q[1]) && q[2] == 'S') {
            int n = q[1] - '0';
            put_digits(out, &len, cap, (uint64_t)tm.tm_sec, 2);
            if (n > 0 && len + 1 < cap) out[len++] = '.';
            uint64_t v = frac_ns;
            for (int i = 9; i > n; i--) v /= 10;
            if (n > 0) put_digits(out, &len, cap, v, n);
            p = q + 2;
        } else {
            /* One strftime conversion, with an E or O modifier if present. */
            char one[4] = {'%', *q, 0, 0};
            if ((*q == 'E' || *q == 'O') && q[1]) one[2] = *++q;
            len += strftime(out + len, cap - len, one, &tm);
            p = q;
        }
        out[len] = '\0';
    }
    out[len < cap ? len : cap - 1] = '\0';
    return len;
}

/* Writes "ip" or "ip:port" ("[ip]:port" for IPv6) into out; returns 0 when sa is unusable. */
static size_t format_addr(const struct sockaddr *sa, bool with_port, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned port;
    if (!sa) return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
        int n = with_port ? snprintf(out, cap, "%s:%u", ip, port) : snprintf(out, cap, "%s", ip);
        return n > 0 ? (size_t)n : 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        int n = with_port ? snprintf(out, cap, "[%s]:%u", ip, port) : snprintf(out, cap, "%s", ip);
        return n > 0 ? (size_t)n : 0;
    }
    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        int n = snprintf(out, cap, "%s", un->sun_path);
        return n > 0 ? (size_t)n : 0;
    }
    return 0;
}

static int sa_port(const struct sockaddr *sa)
{
    if (sa && sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa && sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

static struct val header_val(rs_access_header_fn fn, void *ctx, const struct op *op)
{
    size_t len = 0;
    const char *v = fn ? fn(ctx, op->s1, &len) : NULL;
    if (!v && fn && op->s2) v = fn(ctx, op->s2, &len);
    return val_str(v, len);
}

static struct val val_z(const char *s)
{
    return val_str(s, s ? strlen(s) : 0);
}

/* Evaluates one non-literal op; scratch holds formatted strings the value points into. */
static struct val eval(const struct op *op, const struct rs_access_info *in, char *scratch,
                       size_t scap)
{
    size_t n;
    int port;
    switch (op->kind) {
    case OP_LITERAL:
        return val_str(op->s1, op->s1len);
    case OP_START_TIME:
        if (in->start_time_us <= 0) return val_str(NULL, 0);
        n = format_time(op->s1 ? op->s1 : "%Y-%m-%dT%H:%M:%E3SZ", in->start_time_us, scratch, scap);
        return val_str(scratch, n);
    case OP_REQ:
        return header_val(in->req_header, in->header_ctx, op);
    case OP_RESP:
        return header_val(in->resp_header, in->header_ctx, op);
    case OP_TRAILER:
        return header_val(in->resp_trailer, in->header_ctx, op);
    case OP_PROTOCOL:
        return val_rstr(in->protocol);
    case OP_RESPONSE_CODE:
        return val_num(in->response_code);
    case OP_RESPONSE_CODE_DETAILS:
        return val_rstr(in->response_code_details);
    case OP_RESPONSE_FLAGS:
        n = rs_resp_flags_format(in->response_flags, scratch, scap);
        return val_str(scratch, n < scap ? n : scap - 1);
    case OP_BYTES_RECEIVED:
        return val_num(in->bytes_received);
    case OP_BYTES_SENT:
        return val_num(in->bytes_sent);
    case OP_DURATION:
        return val_ms(in->duration_us);
    case OP_REQUEST_DURATION:
        return val_ms(in->request_duration_us);
    case OP_RESPONSE_DURATION:
        return val_ms(in->response_duration_us);
    case OP_UPSTREAM_HOST:
        return val_rstr(in->upstream_host);
    case OP_UPSTREAM_CLUSTER:
        return val_rstr(in->upstream_cluster);
    case OP_UPSTREAM_LOCAL_ADDRESS:
        return val_str(scratch, format_addr(in->upstream_local, true, scratch, scap));
    case OP_UPSTREAM_TRANSPORT_FAILURE_REASON:
        return val_rstr(in->upstream_transport_failure_reason);
    case OP_DOWNSTREAM_REMOTE_ADDRESS:
        return val_str(scratch, format_addr(in->downstream_remote, true, scratch, scap));
    case OP_DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT:
        return val_str(scratch, format_addr(in->downstream_remote, false, scratch, scap));
    case OP_DOWNSTREAM_LOCAL_ADDRESS:
        return val_str(scratch, format_addr(in->downstream_local, true, scratch, scap));
    case OP_DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT:
        return val_str(scratch, format_addr(in->downstream_local, false, scratch, scap));
    case OP_DOWNSTREAM_LOCAL_PORT:
        port = sa_port(in->downstream_local);
        return port < 0 ? val_str(NULL, 0) : val_num((uint64_t)port);
    case OP_DOWNSTREAM_PEER_URI_SAN:
        return val_rstr(in->downstream_peer_uri_san);
    case OP_DOWNSTREAM_PEER_SUBJECT:
        return val_z(in->downstream_conn ? rs_tls_peer_subject(in->downstream_conn) : NULL);
    case OP_DOWNSTREAM_LOCAL_URI_SAN:
        return val_z(in->downstream_conn ? rs_tls_local_uri_san(in->downstream_conn) : NULL);
    case OP_DOWNSTREAM_TLS_VERSION:
        return val_z(in->downstream_conn ? rs_tls_version(in->downstream_conn) : NULL);
    case OP_REQUESTED_SERVER_NAME:
        return val_z(in->downstream_conn ? rs_tls_sni(in->downstream_conn) : NULL);
    case OP_DOWNSTREAM_PEER_FINGERPRINT_256:
        return val_z(in->downstream_conn ? rs_tls_peer_cert_sha256(in->downstream_conn) : NULL);
    case OP_ROUTE_NAME:
        return val_rstr(in->route_name);
    case OP_CONNECTION_ID:
        return in->has_connection_id ? val_num(in->connection_id) : val_str(NULL, 0);
    case OP_CONNECTION_TERMINATION_DETAILS:
        return val_rstr(in->connection_termination_details);
    case OP_HOSTNAME:
        return val_str(op->s1, op->s1len);
    case OP_UPSTREAM_REQUEST_ATTEMPT_COUNT:
        return val_num(in->upstream_request_attempt_count);
    }
    return val_str(NULL, 0);
}

/* Renders ops as text: '-' for missing values; JSON-escaped when inside a JSON string. */
static void render_text(struct out *o, const struct op *ops, size_t nops,
                        const struct rs_access_info *in, bool json_escape)
{
    char scratch[256];
    for (size_t i = 0; i < nops; i++) {
        struct val v = eval(&ops[i], in, scratch, sizeof scratch);
        char num[24];
        if (v.kind == VAL_NUM) {
            v.len = (size_t)snprintf(num, sizeof num, "%" PRIu64, v.num);
            v.s = num;
        } else if (v.kind == VAL_NONE) {
            v.s = "-";
            v.len = 1;
        } else if (ops[i].max_len && v.len > ops[i].max_len) {
            v.len = ops[i].max_len;
        }
        if (json_escape)
            put_json_escaped(o, v.s, v.len);
        else
            put(o, v.s, v.len);
    }
}

/* A JSON value: a lone operator keeps its type (number, string, or null when unset); anything
 * else is the text rendering as a string. */
static void render_json_value(struct out *o, const struct op *ops, size_t nops,
                              const struct rs_access_info *in)
{
    if (nops == 1 && ops[0].kind != OP_LITERAL) {
        char scratch[256];
        struct val v = eval(&ops[0], in, scratch, sizeof scratch);
        if (v.kind == VAL_NONE) {
            put(o, "null", 4);
            return;
        }
        if (v.kind == VAL_NUM) {
            char num[24];
            put(o, num, (size_t)snprintf(num, sizeof num, "%" PRIu64, v.num));
            return;
        }
    }
    put(o, "\"", 1);
    render_text(o, ops, nops, in, true);
    put(o, "\"", 1);
}

int rs_access_format_render(const struct rs_access_format *f, const struct rs_access_info *info,
                            struct rs_access_buf *b)
{
    struct out o = {.b = b};
    size_t start = b->len;
    if (!f->fields) {
        render_text(&o, f->ops, f->nops, info, false);
    } else {
        put(&o, "{", 1);
        for (size_t i = 0; i < f->nfields; i++) {
            const struct json_field *jf = &f->fields[i];
            if (i) put(&o, ",", 1);
            put(&o, "\"", 1);
            put_json_escaped(&o, jf->key, strlen(jf->key));
            put(&o, "\":", 2);
            render_json_value(&o, f->ops + jf->first_op, jf->nops, info);
        }
        put(&o, "}\n", 2);
    }
    if (o.err) b->len = start;
    return o.err;
}

/* ---- sinks ---- */

struct rs_access_log {
    struct rs_access_format *fmt;
    int fd;
    bool own_fd;
    size_t atomic_max; /* largest write the kernel keeps whole: PIPE_BUF for pipes */
    _Atomic uint64_t dropped;
    struct rs_access_log_buf *wbufs; /* one per data-plane worker */
    uint32_t nw;
    uint32_t flag_filter; /* response_flag_filter: 0 = log everything */
};

struct rs_access_log *rs_access_log_create(enum rs_access_sink sink, const char *path,
                                           const char *text_format, const char *const *json_keys,
                                           const char *const *json_formats, size_t njson, char *err,
                                           size_t errlen)
{
    struct rs_access_log *log = calloc(1, sizeof *log);
    if (!log) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    log->fd = -1;
    log->fmt = njson ? rs_access_format_compile_json(json_keys, json_formats, njson, err, errlen)
                     : rs_access_format_compile(text_format, err, errlen);
    if (!log->fmt) goto fail;
    switch (sink) {
    case RS_ACCESS_SINK_STDOUT:
        log->fd = STDOUT_FILENO;
        break;
    case RS_ACCESS_SINK_STDERR:
        log->fd = STDERR_FILENO;
        break;
    case RS_ACCESS_SINK_FILE:
        if (!path || !*path) {
            set_err(err, errlen, "file access log needs a path");
            goto fail;
        }
        /* O_APPEND: each write lands at the end as a unit, so whole-line writes from several
         * workers (and from log rotation's copy-truncate) never interleave mid-line. */
        log->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (log->fd < 0) {
            set_err(err, errlen, "access log %s: %s", path, strerror(errno));
            goto fail;
        }
        log->own_fd = true;
        break;
    default:
        set_err(err, errlen, "unknown access log sink %d", (int)sink);
        goto fail;
    }
    struct stat st;
    log->atomic_max = SIZE_MAX;
    if (fstat(log->fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        log->atomic_max = PIPE_BUF;
    return log;
fail:
    rs_access_log_destroy(log);
    return NULL;
}

void rs_access_log_destroy(struct rs_access_log *log)
{
    if (!log) return;
    for (uint32_t i = 0; i < log->nw; i++) rs_access_log_buf_free(&log->wbufs[i]);
    free(log->wbufs);
    if (log->own_fd) close(log->fd);
    rs_access_format_free(log->fmt);
    free(log);
}

void rs_access_log_set_flag_filter(struct rs_access_log *log, uint32_t mask)
{
    log->flag_filter = mask;
}

int rs_access_log_set_workers(struct rs_access_log *log, uint32_t n)
{
    if (log->wbufs) return 0;
    log->wbufs = calloc(n, sizeof *log->wbufs);
    if (!log->wbufs) return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) rs_access_log_buf_init(&log->wbufs[i], log);
    log->nw = n;
    return 0;
}

struct rs_access_log_buf *rs_access_log_wbuf(struct rs_access_log *log, uint32_t worker)
{
    return &log->wbufs[worker];
}

uint64_t rs_access_log_dropped(const struct rs_access_log *log)
{
    return atomic_load_explicit(&log->dropped, memory_order_relaxed);
}

void rs_access_log_buf_init(struct rs_access_log_buf *b, struct rs_access_log *log)
{
    memset(b, 0, sizeof *b);
    b->log = log;
}

int rs_access_log_append(struct rs_access_log_buf *b, const struct rs_access_info *info)
{
    if (b->log->flag_filter && !(info->response_flags & b->log->flag_filter)) return 0;
    int rc = rs_access_format_render(b->log->fmt, info, &b->buf);
    if (rc) {
        atomic_fetch_add_explicit(&b->log->dropped, 1, memory_order_relaxed);
        return rc;
    }
    b->lines++;
    return b->buf.len >= RS_ACCESS_LOG_FLUSH_BYTES ? rs_access_log_flush(b) : 0;
}

/* Length of the longest prefix of whole lines of data[0..len) within max bytes; a single line
 * longer than max goes alone. */
static size_t chunk_len(const char *data, size_t len, size_t max)
{
    if (len <= max) return len;
    const char *nl = memrchr(data, '\n', max);
    if (nl) return (size_t)(nl - data) + 1;
    nl = memchr(data, '\n', len);
    return nl ? (size_t)(nl - data) + 1 : len;
}

static uint64_t count_lines(const char *data, size_t len)
{
    uint64_t n = 0;
    for (const char *p = data; (p = memchr(p, '\n', len - (size_t)(p - data))); p++) n++;
    return n;
}

int rs_access_log_flush(struct rs_access_log_buf *b)
{
    const char *data = b->buf.data;
    size_t len = b->buf.len, off = 0;
    int rc = 0;
    while (off < len) {
        size_t n = chunk_len(data + off, len - off, b->log->atomic_max);
        ssize_t w = write(b->log->fd, data + off, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            /* Never wait on a stuck reader: drop what is left and count it. */
            rc = w < 0 ? -errno : -EIO;
            uint64_t lost = count_lines(data + off, len - off);
            atomic_fetch_add_explicit(&b->log->dropped, lost ? lost : 1, memory_order_relaxed);
            break;
        }
        off += (size_t)w;
    }
    b->buf.len = 0;
    b->lines = 0;
    return rc;
}

void rs_access_log_buf_free(struct rs_access_log_buf *b)
{
    if (b->log) rs_access_log_flush(b);
    rs_access_buf_free(&b->buf);
    b->log = NULL;
}

void rs_access_info_tls(struct rs_access_info *info, const struct rs_conn *c)
{
    if (!c || !rs_tls_is_tls(c)) return;
    info->downstream_conn = c;
    const char *san = rs_tls_peer_uri_san(c);
    if (san) info->downstream_peer_uri_san = (struct rs_access_str){san, strlen(san)};
}

size_t rs_access_log_req_headers(const struct rs_access_log *l, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; l->fmt && i < l->fmt->nops; i++) {
        const struct op *op = &l->fmt->ops[i];
        if (op->kind != OP_REQ) continue;
        const char *names[2] = {op->s1, op->s2};
        for (int k = 0; k < 2; k++) {
            if (!names[k]) continue;
            bool dup = false;
            for (size_t j = 0; j < n && !dup; j++) dup = strcmp(out[j], names[k]) == 0;
            if (dup) continue;
            if (n == max) return n + 1; /* more than fit */
            out[n++] = names[k];
        }
    }
    return n;
}
