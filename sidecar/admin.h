/* The admin API: an Envoy-compatible HTTP/1.1 server (/ready, /stats, /stats/prometheus,
 * /clusters, /config_dump, /server_info, /quitquitquit, /drain_listeners) on its own thread,
 * never on a data-plane worker. It reads the stats registry and the current config snapshot; it
 * changes server state only through the hooks it is given. */
#ifndef RS_ADMIN_H
#define RS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct rs_snapshot;
struct rs_admin;

/* Envoy's server.state values. */
enum rs_admin_state {
    RS_ADMIN_LIVE = 0,
    RS_ADMIN_DRAINING = 1,
    RS_ADMIN_PRE_INITIALIZING = 2,
    RS_ADMIN_INITIALIZING = 3,
};

/* What the server asks of the rest of the process. Every callback runs on the admin thread; any
 * may be NULL. quit must not call rs_admin_stop itself (that joins the calling thread): it should
 * signal the main thread, which stops admin. */
struct rs_admin_hooks {
    struct rs_snapshot *(*snapshot)(void *ctx); /* referenced; admin calls rs_snapshot_unref */
    void (*quit)(void *ctx);                    /* POST /quitquitquit */
    void (*drain_listeners)(void *ctx, bool graceful, bool inbound_only);
    int (*state)(void *ctx); /* enum rs_admin_state */
    uint64_t (*uptime_s)(void *ctx);
    /* Where the running configuration came from ("bootstrap", "xds", "xds cache"); optional. */
    const char *(*config_source)(void *ctx);
    uint32_t concurrency;
    const char *command_line; /* for /server_info */
    const char *hot_restart_version;
    void *ctx;
};

/* Binds addr, listens and starts the admin thread. hooks is copied; the strings it points to
 * must outlive the server. Returns NULL with a reason in err on failure. */
struct rs_admin *rs_admin_start(const struct sockaddr *addr, socklen_t len,
                                const struct rs_admin_hooks *hooks, char *err, size_t errlen);
/* Stops accepting, finishes (or abandons) the connection in progress and joins the thread. */
void rs_admin_stop(struct rs_admin *a);
/* The bound port (port 0 in the config binds an ephemeral one). */
uint16_t rs_admin_port(const struct rs_admin *a);

/* A growable output buffer; the renderers append to it. Free data with free(). */
struct rs_admin_buf {
    char *data;
    size_t len, cap;
};

enum rs_admin_format { RS_ADMIN_FMT_TEXT, RS_ADMIN_FMT_JSON, RS_ADMIN_FMT_PROMETHEUS };

struct rs_admin_stats_query {
    const char *filter; /* PCRE2 pattern searched in each stat name, or NULL */
    bool used_only;     /* only stats with a non-zero value / recorded samples */
    enum rs_admin_format format;
};

/* Renderers, exposed for unit tests. hooks (for the live server.* stats) and snap (cluster and
 * listener names, host sets, the bootstrap) may be NULL. */

/* /stats in any of its formats. Returns 0, or -EINVAL with a reason in err for a bad filter. */
int rs_admin_render_stats(struct rs_admin_buf *out, const struct rs_admin_stats_query *q,
                          const struct rs_admin_hooks *hooks, const struct rs_snapshot *snap,
                          char *err, size_t errlen);
/* /clusters, text (Envoy's name::host::stat::value lines) or JSON (ClusterStatus). */
void rs_admin_render_clusters(struct rs_admin_buf *out, struct rs_snapshot *snap, bool json);
/* /config_dump: a ConfigDump with the bootstrap, static clusters and static listeners. */
void rs_admin_render_config_dump(struct rs_admin_buf *out, const struct rs_snapshot *snap);
/* /server_info: a ServerInfo JSON object. */
void rs_admin_render_server_info(struct rs_admin_buf *out, const struct rs_admin_hooks *hooks,
                                 const struct rs_snapshot *snap);

/* The Prometheus name and labels of one Envoy stat name, after Envoy's default tag extraction
 * (cluster, listener, http, tcp prefixes; response code classes). cluster names (from snap) are
 * matched longest first, since they may contain dots. Writes `envoy_<name>` to name and the
 * label list without braces ("" when none) to labels; returns 0, or -ENOSPC. */
int rs_admin_prom_name(const char *stat, const struct rs_snapshot *snap, char *name,
                       size_t name_cap, char *labels, size_t labels_cap);

#endif
