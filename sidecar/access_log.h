/* Envoy's access-log format engine and its sinks.
 *
 * A format string (Envoy's text_format / text_format_source.inline_string, or a json_format
 * key->format map) is compiled once into a list of operations; each request is rendered from a
 * struct rs_access_info that the proxy fills, into a growable buffer, with no allocation per
 * operation. A struct rs_access_log pairs a compiled format with a sink (stdout, stderr or a file
 * opened O_APPEND); each data-plane worker appends to its own struct rs_access_log_buf and flushes
 * it with one write() per batch, so lines from two workers never interleave. */
#ifndef RS_SIDECAR_ACCESS_LOG_H
#define RS_SIDECAR_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct rs_conn;

/* Envoy's response flags (StreamInfo::ResponseFlag), in Envoy's bit order, which is also the
 * order %RESPONSE_FLAGS% lists them in. */
enum rs_resp_flag {
    RS_RF_LH = 1u << 0,     /* FailedLocalHealthCheck */
    RS_RF_UH = 1u << 1,     /* NoHealthyUpstream */
    RS_RF_UT = 1u << 2,     /* UpstreamRequestTimeout */
    RS_RF_LR = 1u << 3,     /* LocalReset */
    RS_RF_UR = 1u << 4,     /* UpstreamRemoteReset */
    RS_RF_UF = 1u << 5,     /* UpstreamConnectionFailure */
    RS_RF_UC = 1u << 6,     /* UpstreamConnectionTermination */
    RS_RF_UO = 1u << 7,     /* UpstreamOverflow */
    RS_RF_NR = 1u << 8,     /* NoRouteFound */
    RS_RF_DI = 1u << 9,     /* DelayInjected */
    RS_RF_FI = 1u << 10,    /* FaultInjected */
    RS_RF_RL = 1u << 11,    /* RateLimited */
    RS_RF_UAEX = 1u << 12,  /* UnauthorizedExternalService */
    RS_RF_RLSE = 1u << 13,  /* RateLimitServiceError */
    RS_RF_DC = 1u << 14,    /* DownstreamConnectionTermination */
    RS_RF_URX = 1u << 15,   /* UpstreamRetryLimitExceeded */
    RS_RF_SI = 1u << 16,    /* StreamIdleTimeout */
    RS_RF_IH = 1u << 17,    /* InvalidEnvoyRequestHeaders */
    RS_RF_DPE = 1u << 18,   /* DownstreamProtocolError */
    RS_RF_UMSDR = 1u << 19, /* UpstreamMaxStreamDurationReached */
    RS_RF_RFCF = 1u << 20,  /* ResponseFromCacheFilter */
    RS_RF_NFCF = 1u << 21,  /* NoFilterConfigFound */
    RS_RF_DT = 1u << 22,    /* DurationTimeout */
    RS_RF_UPE = 1u << 23,   /* UpstreamProtocolError */
    RS_RF_NC = 1u << 24,    /* NoClusterFound */
    RS_RF_OM = 1u << 25,    /* OverloadManager */
    RS_RF_DF = 1u << 26,    /* DnsResolutionFailed */
    RS_RF_DO = 1u << 27,    /* DropOverLoad */
    RS_RF_DR = 1u << 28,    /* DownstreamRemoteReset */
    RS_RF_UDO = 1u << 29,   /* UnconditionalDropOverload */
};

/* A string that is not NUL-terminated; ptr == NULL means "not set". */
struct rs_access_str {
    const char *ptr;
    size_t len;
};

/* Looks up a header by its lowercase name (":method", ":path", ":authority", ":scheme" are
 * pseudo-headers looked up the same way). Returns the value and its length, or NULL if absent.
 * The value must stay valid until the render call returns. */
typedef const char *(*rs_access_header_fn)(void *ctx, const char *lower_name, size_t *len);

/* What the proxy knows about one finished request. Durations are -1 when unknown. */
struct rs_access_info {
    int64_t start_time_us;        /* wall clock, µs since the Unix epoch */
    int64_t duration_us;          /* start to last byte sent downstream */
    int64_t request_duration_us;  /* start to last byte received from downstream */
    int64_t response_duration_us; /* start to first byte received from upstream */
    uint32_t response_code;       /* 0 = no response sent */
    uint32_t response_flags;      /* enum rs_resp_flag bits */
    uint32_t upstream_request_attempt_count;
    uint64_t bytes_received;
    uint64_t bytes_sent;
    uint64_t connection_id;
    bool has_connection_id;
    const struct sockaddr *downstream_remote; /* NULL = unknown */
    const struct sockaddr *downstream_local;
    const struct sockaddr *upstream_local;
    struct rs_access_str protocol; /* "HTTP/1.1", "HTTP/2", "HTTP/3" */
    struct rs_access_str upstream_host;
    struct rs_access_str upstream_cluster;
    struct rs_access_str upstream_transport_failure_reason;
    struct rs_access_str route_name;
    struct rs_access_str response_code_details;
    struct rs_access_str connection_termination_details;
    struct rs_access_str downstream_peer_uri_san;
    /* The downstream connection, for the TLS operators read only when a format uses them
     * (%DOWNSTREAM_PEER_SUBJECT%, %DOWNSTREAM_LOCAL_URI_SAN%, %DOWNSTREAM_TLS_VERSION%,
     * %REQUESTED_SERVER_NAME%, %DOWNSTREAM_PEER_FINGERPRINT_256%); NULL = none. */
    const struct rs_conn *downstream_conn;
    rs_access_header_fn req_header;   /* NULL = no request headers */
    rs_access_header_fn resp_header;  /* NULL = no response headers */
    rs_access_header_fn resp_trailer; /* NULL = no response trailers */
    void *header_ctx;                 /* passed to the three callbacks */
};

struct rs_conn;
/* Sets info's downstream TLS fields from connection c (its peer URI SAN and the connection the
 * other TLS operators read); nothing for a non-TLS connection or NULL. */
void rs_access_info_tls(struct rs_access_info *info, const struct rs_conn *c);

/* A growable byte buffer the caller owns; zero-initialise it, free it with rs_access_buf_free. */
struct rs_access_buf {
    char *data;
    size_t len;
    size_t cap;
};

struct rs_access_format;

/* Envoy's default format, used when no format is configured. */
extern const char rs_access_default_format[];

/* Compiles an Envoy text format (NULL = the default). On error returns NULL and writes a message
 * naming the operator and its byte offset into err. The result is immutable and may be shared by
 * every worker. */
struct rs_access_format *rs_access_format_compile(const char *text, char *err, size_t errlen);

/* Compiles an Envoy json_format: n keys, each with its own format string, kept in this order. */
struct rs_access_format *rs_access_format_compile_json(const char *const *keys,
                                                       const char *const *formats, size_t n,
                                                       char *err, size_t errlen);

void rs_access_format_free(struct rs_access_format *f);

/* Appends one rendered record to out (JSON formats end it with '\n'; text formats end as the
 * format says). Returns 0, or -ENOMEM with out unchanged. */
int rs_access_format_render(const struct rs_access_format *f, const struct rs_access_info *info,
                            struct rs_access_buf *out);

void rs_access_buf_free(struct rs_access_buf *b);

/* Writes Envoy's %RESPONSE_FLAGS% text for flags ("-" if none) into out, NUL-terminated and
 * truncated to cap; returns the length it needed. */
size_t rs_resp_flags_format(uint32_t flags, char *out, size_t cap);

/* The short string ("UH", "URX", ...) of one flag bit, or NULL. */
const char *rs_resp_flag_str(enum rs_resp_flag flag);
/* The flag a short name ("NR", "UH", ...) stands for, or 0. */
uint32_t rs_resp_flag_parse(const char *name);

/* Sinks: envoy.access_loggers.stdout, .stderr and .file. */
enum rs_access_sink {
    RS_ACCESS_SINK_STDOUT,
    RS_ACCESS_SINK_STDERR,
    RS_ACCESS_SINK_FILE,
};

struct rs_access_log;

/* Compiles the format (text_format, or NULL for the default; or njson key/format pairs, which
 * take precedence when njson > 0) and opens the sink (path only for RS_ACCESS_SINK_FILE, opened
 * O_APPEND|O_CREAT). On error returns NULL with a message in err. */
struct rs_access_log *rs_access_log_create(enum rs_access_sink sink, const char *path,
                                           const char *text_format, const char *const *json_keys,
                                           const char *const *json_formats, size_t njson, char *err,
                                           size_t errlen);

/* Closes the sink. Every rs_access_log_buf using it must have been flushed and freed. */
void rs_access_log_destroy(struct rs_access_log *log);

/* Envoy's response_flag_filter: only lines whose response flags intersect `mask` are written
 * (any flag at all when mask is ~0u). 0: no filter. */
void rs_access_log_set_flag_filter(struct rs_access_log *log, uint32_t mask);

/* Gives the log one private buffer per data-plane worker (once; later calls do nothing), so a
 * log shared by successive snapshots keeps its buffers. */
int rs_access_log_set_workers(struct rs_access_log *log, uint32_t n);
/* Worker `worker`'s buffer of the log (after rs_access_log_set_workers). */
struct rs_access_log_buf *rs_access_log_wbuf(struct rs_access_log *log, uint32_t worker);

/* Lines lost to write errors or memory exhaustion since creation (any thread may read). */
uint64_t rs_access_log_dropped(const struct rs_access_log *log);

/* A worker's private buffer for one log: not shared between threads. */
#define RS_ACCESS_LOG_FLUSH_BYTES (16 * 1024)
struct rs_access_log_buf {
    struct rs_access_log *log;
    struct rs_access_buf buf;
    uint32_t lines; /* whole lines held in buf */
};

void rs_access_log_buf_init(struct rs_access_log_buf *b, struct rs_access_log *log);

/* Renders info as one line into the worker's buffer and flushes it once it holds at least
 * RS_ACCESS_LOG_FLUSH_BYTES. Returns 0 or a negative errno (the line is then dropped and
 * counted). */
int rs_access_log_append(struct rs_access_log_buf *b, const struct rs_access_info *info);

/* Writes the buffered lines with as few write() calls as whole lines allow (one for a file; at
 * most PIPE_BUF bytes each for a pipe, where only such writes are atomic). Call once per
 * event-loop batch and on a ~1 s timer. Returns 0 or a negative errno. */
int rs_access_log_flush(struct rs_access_log_buf *b);

/* Flushes and releases the buffer. */
void rs_access_log_buf_free(struct rs_access_log_buf *b);

/* The request headers the log's format names (%REQ(X)%, %REQ(X?Y)%), lower-case, each once, as
 * pointers into the log (valid while it lives): what a protocol must keep of a request for the
 * log to render it. Returns how many, or max + 1 when there are more than max. */
size_t rs_access_log_req_headers(const struct rs_access_log *l, const char **out, size_t max);

#endif
