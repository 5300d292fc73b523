/* The server: worker threads (one ring each), their listener sockets, the shared snapshot,
 * draining and shutdown. Protocol sessions (tcp_proxy.c, hcm.c) hang off a worker. */
#ifndef RS_SERVER_H
#define RS_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "sidecar/access_log.h"
#include "sidecar/config.h"
#include "sidecar/conn.h"
#include "sidecar/loop.h"
#include "sidecar/stats.h"

struct rs_server;

/* Per worker, per listening socket. A listener updated in place (same address) keeps its socket
 * and its rs_worker_listener; only `cfg` moves to the new definition. A removed one stops
 * accepting at once and is freed when its last session ends. */
struct rs_worker_listener {
    struct rs_worker_listener *next;
    struct rs_worker *w;
    struct rs_listener *cfg;
    struct rs_conn *conn;
    int fd;
    uint32_t nsessions;
    bool removed;
    struct rs_timer retry; /* re-arms accept after EMFILE/ENFILE */
};

/* A downstream session (HTTP or TCP) as the worker tracks it for updates and draining. It holds a
 * reference to the snapshot its listener and filter chain belong to. */
struct rs_session {
    struct rs_session *prev, *next;
    struct rs_snapshot *snap;
    struct rs_worker_listener *wl; /* the socket it came in on */
    struct rs_listener *l;         /* the listener serving it (of snap) */
    struct rs_filter_chain *fc;
    uint64_t drain_deadline_ms;          /* 0, or when a draining session is closed anyway */
    void (*drain)(struct rs_session *s); /* close when idle, or finish and close */
    void (*kill)(struct rs_session *s);  /* close now (drain deadline passed) */
    /* Moves the session to an identical filter chain of a newer snapshot (its listener did not
     * change; s->snap is already the new one). It sets s->fc and takes over the reference to
     * `prev`, the snapshot the session was on, for work in flight or to release. */
    void (*rebind)(struct rs_session *s, struct rs_filter_chain *fc, struct rs_snapshot *prev);
};

struct rs_worker {
    struct rs_loop loop;
    int id;
    pthread_t thread;
    struct rs_server *srv;
    struct rs_snapshot *snap; /* the published snapshot this worker runs on */
    struct rs_publication *pub;
    struct rs_stats_shard *stats;
    struct rs_worker_listener *listeners; /* list */
    struct rs_session sessions;           /* list head */
    uint32_t nsessions;
    uint64_t rng;
    bool draining, listeners_closed;
    uint64_t pub_seq; /* of w->pub */
    int *closing;     /* listening sockets to close at the next switch (under pub_lock) */
    uint32_t nclosing, closing_cap;
    int init_result;      /* 0 starting, 1 running, <0 set-up failed */
    struct rs_timer tick; /* 1 s: flush access logs, date cache, drain deadlines */
    struct rs_deferred {
        void (*fn)(void *);
        void *p;
    } * deferred; /* freed after the batch */
    uint32_t ndeferred, deferred_cap;
    char date[40]; /* "Date" header value, refreshed each second */
    uint32_t date_len;
};

enum rs_server_state {
    RS_STATE_LIVE = 0,
    RS_STATE_DRAINING = 1,
    RS_STATE_PRE_INITIALIZING = 2,
    RS_STATE_INITIALIZING = 3
};

/* A listening socket per worker for one address, shared by every snapshot that has a listener
 * there. Only the control thread that publishes touches the list. */
struct rs_lsock {
    struct rs_lsock *next;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int *fds; /* [nworkers] */
};

/* What a worker switches to: a snapshot and, for each of its listeners, the socket of each
 * worker ([listener * nworkers + worker]). */
struct rs_publication {
    uint32_t refs; /* under the server's pub_lock */
    uint64_t seq;
    struct rs_snapshot *snap;
    int *fds;
};

struct rs_server {
    struct rs_snapshot *snap; /* the published snapshot (under pub_lock; rs_server_snapshot) */
    struct rs_worker *workers;
    int nworkers;
    uint32_t drain_time_ms;
    int state;           /* atomic, enum rs_server_state */
    int drain_requested; /* atomic: 1 drain listeners, 2 drain and exit */
    int quit;            /* atomic */
    uint64_t start_ms;
    pthread_mutex_t pub_lock;
    struct rs_publication *pub; /* under pub_lock */
    uint64_t pub_seq;           /* atomic: seq of pub, what workers poll each loop turn */
    uint64_t pub_seq_next;
    struct rs_lsock *lsocks;
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
};

/* Creates the listening sockets of every listener of srv->snap for every worker (SO_REUSEPORT), so
 * a port 0 listener gets one port shared by all workers. */
int rs_server_bind(struct rs_server *srv, char *err, size_t errlen);
/* Publishes a new snapshot (takes the caller's reference): binds the listeners it adds, marks the
 * clusters it drops, and has every worker switch at its next loop turn. Sessions of unchanged
 * listeners move to it; sessions of changed or removed listeners drain (HTTP: close after the
 * response in flight; TCP: closed at the drain time). In-flight requests finish on the snapshot
 * they started with. On error (a listener cannot bind) nothing changes and err says why. Call
 * from one control thread at a time. */
int rs_server_publish(struct rs_server *srv, struct rs_snapshot *snap, char *err, size_t errlen);
/* The published snapshot, referenced (rs_snapshot_unref). Any thread. */
struct rs_snapshot *rs_server_snapshot(struct rs_server *srv);
/* Starts the workers; returns when they run. */
int rs_server_start(struct rs_server *srv);
/* Stops accepting everywhere; with `exit`, workers finish in-flight work and the process exits
 * once all are idle or drain_time passes. Any thread. */
void rs_server_drain(struct rs_server *srv, bool exit);
/* Waits for the workers to finish (after quit or a completed drain) and frees them. */
void rs_server_join(struct rs_server *srv);
/* Stops the workers now. Any thread. */
void rs_server_quit(struct rs_server *srv);

/* Worker helpers used by the protocol sessions. */
/* An accepted connection as the listener hands it to a protocol session. */
struct rs_accept {
    struct rs_worker_listener *wl; /* the socket it came in on */
    struct rs_listener *l;         /* the listener serving it: wl's, or the one of its original
                                      destination (use_original_dst) */
    struct rs_filter_chain *fc;
    struct sockaddr_storage peer, local; /* local: the original destination when redirected */
    bool redirected;                     /* local came from SO_ORIGINAL_DST */
    struct rs_conn *conn;                /* the downstream connection: the protocol takes it over */
    /* bytes the listener's inspectors already read: the protocol gets them through
     * rs_worker_downstream_start (pre_bid: their ring buffer, or < 0) */
    int32_t pre_bid;
    const char *pre;
    size_t pre_len;
};

/* Starts the protocol's side of an accepted connection, once it has taken it over
 * (rs_conn_set_handler): attaches the filter chain's TLS server context (on_handshake, may be
 * NULL, reports the handshake's end), starts reading and replays what inspection read. Call it
 * last: the protocol's callbacks may run (and close the session) inside. Returns 0, or a negative
 * errno when TLS cannot be attached (nothing was called; the caller closes). */
int rs_worker_downstream_start(struct rs_worker *w, const struct rs_accept *a,
                               void (*on_handshake)(struct rs_conn *c, int err));

/* Tracks a new session of an accepted connection (referencing the worker's snapshot). */
void rs_worker_session_add(struct rs_worker *w, struct rs_session *s, const struct rs_accept *a);
void rs_worker_session_del(struct rs_worker *w, struct rs_session *s);
uint64_t rs_worker_rand(struct rs_worker *w);
/* Runs fn(p) after the current batch of completions: how objects are freed from their own
 * callbacks. */
void rs_worker_defer_free(struct rs_worker *w, void (*fn)(void *), void *p);
/* Picks an endpoint of a cluster by weighted round robin, or NULL if it has none. With `ref`, the
 * host is also returned as a borrowed (unreferenced) host-set position: take it with
 * rs_host_ref_take() to keep it. */
const struct rs_endpoint *rs_worker_pick_host(struct rs_worker *w, struct rs_cluster *c,
                                              struct rs_host_ref *ref);
/* rs_worker_pick_host, and for an ORIGINAL_DST cluster the connection's original destination
 * (written to *scratch; NULL when the connection was not redirected: there is no host). */
const struct rs_endpoint *rs_worker_pick_host_for(struct rs_worker *w, struct rs_cluster *c,
                                                  const struct sockaddr_storage *original_dst,
                                                  struct rs_endpoint *scratch,
                                                  struct rs_host_ref *ref);
/* The calling worker's state of a cluster. */
static inline struct rs_worker_cluster *rs_worker_cluster(struct rs_worker *w, struct rs_cluster *c)
{
    return &c->wc[w->id];
}

/* Accounts a closed downstream connection to its listener (active, destroy, length) and releases
 * its connection_limit slot: the counterpart of what the listener counted on accept. */
void rs_worker_downstream_closed(struct rs_worker *w, const struct rs_session *s,
                                 uint64_t start_ms);

/* Renders and buffers an access-log line for each log; a session still on an older snapshot
 * (`snap` is not the worker's) writes its lines at once. */
void rs_worker_access_log(struct rs_worker *w, const struct rs_snapshot *snap,
                          struct rs_access_log **logs, uint32_t n,
                          const struct rs_access_info *info);
/* Opens a non-blocking TCP socket for an upstream address family. */
int rs_socket_for(int family);
/* The same for a connection to `c`, bound to its upstream_bind_config source address if it has
 * one of that family (Istio binds inbound passthrough to 127.0.0.6). */
int rs_upstream_socket(const struct rs_cluster *c, int family);

/* The protocol entry points, called once a filter chain is picked: each takes over a->conn
 * (closing it if it cannot) and ends with rs_worker_downstream_start. */
void rs_tcp_proxy_accept(struct rs_worker *w, const struct rs_accept *a);
void rs_hcm_accept(struct rs_worker *w, const struct rs_accept *a);
/* Releases a worker's idle upstream connections of one cluster (shutdown). */
void rs_hcm_pool_close(struct rs_worker *w, struct rs_cluster *c);
/* Frees the calling worker thread's header scratch table (allocated on its first request). */
void rs_hcm_thread_cleanup(void);

#endif
