/* Workers and their listeners: one thread and one ring per worker, each with its own
 * SO_REUSEPORT listening sockets, so the kernel spreads connections and nothing mutable is shared
 * on the hot path. Draining stops accepting, lets sessions finish, and ends the workers. */
#include "sidecar/server.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sidecar/blk.h"
#include "sidecar/log.h"
#include "sidecar/router.h"

/* Submission entries; the completion queue is 8 times larger (rs_loop_init). The kernel's ring
 * pages are resident from the start: 4096 entries (and 32768 CQEs) cost 790 KiB per worker at
 * idle. A loop turn that queues more submissions than this submits early (rs_loop_sqe), and CQEs
 * past the queue's size are held by the kernel (IORING_FEAT_NODROP) until the next wait. */
#define RING_ENTRIES 1024
/* The provided-buffer ring is FIFO: a returned buffer goes to the tail, so any sustained stream
 * cycles through every buffer and the whole ring becomes resident. Its size is therefore each
 * worker's RSS floor under load (4096 x 16 KiB made that 64 MiB per worker). 1024 buffers (16 MiB)
 * still cover 16 connections at the 1 MiB per_connection_buffer_limit; past that, recv waits for
 * buffers to return (ENOBUFS is parked in conn.c) instead of growing memory. */
#define RING_BUFS 1024
#define RING_BUF_SIZE (16 * 1024)

int rs_socket_for(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int listen_socket(const struct sockaddr *addr, socklen_t len, const struct rs_listener *l)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    /* accepted sockets inherit TCP_NODELAY from the listener: no setsockopt per connection */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (l->tcp_fast_open)
        setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &l->tcp_fast_open, sizeof l->tcp_fast_open);
    if (bind(fd, addr, len) != 0 || listen(fd, (int)(l->backlog ? l->backlog : 4096)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int rs_server_bind(struct rs_server *srv, char *err, size_t errlen)
{
    struct rs_snapshot *snap = srv->snap;
    srv->listen_fds = calloc(snap->nlisteners + 1, sizeof *srv->listen_fds);
    if (!srv->listen_fds) return -ENOMEM;
    for (uint32_t i = 0; i < snap->nlisteners; i++) {
        struct rs_listener *l = &snap->listeners[i];
        srv->listen_fds[i] = calloc((size_t)srv->nworkers, sizeof(int));
        if (!srv->listen_fds[i]) return -ENOMEM;
        for (int w = 0; w < srv->nworkers; w++) {
            int fd = listen_socket((struct sockaddr *)&l->addr, l->addrlen, l);
            if (fd < 0) {
                snprintf(err, errlen, "listener %s: cannot listen on %s: %s", l->name, l->addr_str,
                         strerror(-fd));
                return fd;
            }
            srv->listen_fds[i][w] = fd;
            if (w == 0) {
                /* port 0: every worker binds the port the first one got */
                socklen_t alen = sizeof l->addr;
                getsockname(fd, (struct sockaddr *)&l->addr, &alen);
                rs_addr_str((struct sockaddr *)&l->addr, l->addr_str, sizeof l->addr_str);
            }
        }
        rs_info("listener %s listening on %s", l->name, l->addr_str);
    }
    return 0;
}

/* ---- worker helpers ------------------------------------------------------------------------ */

void rs_worker_session_add(struct rs_worker *w, struct rs_session *s)
{
    s->next = w->sessions.next;
    s->prev = &w->sessions;
    w->sessions.next->prev = s;
    w->sessions.next = s;
    w->nsessions++;
}

void rs_worker_session_del(struct rs_worker *w, struct rs_session *s)
{
    if (!s->next) return;
    s->prev->next = s->next;
    s->next->prev = s->prev;
    s->next = s->prev = NULL;
    w->nsessions--;
}

uint64_t rs_worker_rand(struct rs_worker *w)
{
    /* xorshift64*: fast, and good enough for load balancing and request ids */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

void rs_worker_defer_free(struct rs_worker *w, void (*fn)(void *), void *p)
{
    if (w->ndeferred == w->deferred_cap) {
        uint32_t cap = w->deferred_cap ? w->deferred_cap * 2 : 64;
        struct rs_deferred *nd = realloc(w->deferred, cap * sizeof *nd);
        if (!nd) abort(); /* leaking instead would be silent; this is tiny and bounded */
        w->deferred = nd;
        w->deferred_cap = cap;
    }
    w->deferred[w->ndeferred++] = (struct rs_deferred){fn, p};
}

const struct rs_endpoint *rs_worker_pick_host(struct rs_worker *w, struct rs_cluster *c,
                                              struct rs_host_ref *ref)
{
    struct rs_worker_cluster *wc = rs_worker_cluster(w, c);
    if (wc->hosts != __atomic_load_n(&c->hosts, __ATOMIC_ACQUIRE)) {
        rs_hostset_unref(wc->hosts);
        wc->hosts = rs_cluster_hosts(c);
    }
    struct rs_hostset *h = wc->hosts;
    if (!h || h->n == 0) return NULL;
    uint32_t i = h->order[wc->cursor++ % h->order_len];
    if (ref) {
        ref->hs = h;
        ref->idx = i;
    }
    return &h->eps[i];
}

void rs_worker_downstream_addrs(const struct rs_worker_listener *wl, int fd,
                                struct sockaddr_storage *peer, struct sockaddr_storage *local)
{
    socklen_t len = sizeof *peer;
    if (getpeername(fd, (struct sockaddr *)peer, &len) != 0) memset(peer, 0, sizeof *peer);
    const struct rs_listener *l = wl->cfg;
    bool wildcard =
        (l->addr.ss_family == AF_INET &&
         ((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
        (l->addr.ss_family == AF_INET6 &&
         IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->addr)->sin6_addr));
    if (!wildcard) {
        /* bound to one address: that is the local end of every connection it accepts */
        memcpy(local, &l->addr, l->addrlen);
        return;
    }
    len = sizeof *local;
    if (getsockname(fd, (struct sockaddr *)local, &len) != 0) memset(local, 0, sizeof *local);
}

void rs_worker_downstream_closed(struct rs_worker *w, struct rs_worker_listener *wl,
                                 struct rs_filter_chain *fc, uint64_t start_ms)
{
    const struct rs_listener_stats *ls = &wl->cfg->st;
    rs_stat_dec(w->stats, ls->downstream_cx_active);
    rs_stat_inc(w->stats, ls->downstream_cx_destroy);
    rs_hist_record(w->stats, ls->downstream_cx_length_ms, (w->loop.now_ms - start_ms) * 1000);
    if (fc->active_cx) {
        __atomic_sub_fetch(fc->active_cx, 1, __ATOMIC_RELAXED);
        rs_stat_dec(w->stats, fc->active_connections);
    }
}

void rs_worker_access_log(struct rs_worker *w, struct rs_access_log **logs, uint32_t n,
                          const struct rs_access_info *info)
{
    for (uint32_t i = 0; i < n; i++)
        rs_access_log_append(rs_access_log_wbuf(logs[i], (uint32_t)w->id), info);
}

/* ---- accept -------------------------------------------------------------------------------- */

static struct rs_filter_chain *pick_chain(struct rs_listener *l, uint16_t port)
{
    struct rs_filter_chain *any = NULL;
    for (uint32_t i = 0; i < l->nchains; i++) {
        if (l->chains[i].dst_port == port) return &l->chains[i];
        if (l->chains[i].dst_port == 0 && !any) any = &l->chains[i];
    }
    return any ? any : l->default_chain;
}

static void on_accept_retry(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    struct rs_worker_listener *wl =
        (struct rs_worker_listener *)((char *)t - offsetof(struct rs_worker_listener, retry));
    if (wl->conn && !wl->w->listeners_closed) rs_conn_accept_start(wl->conn);
}

static void listener_accept(struct rs_conn *c, int fd, int err)
{
    struct rs_worker_listener *wl = c->owner;
    struct rs_worker *w = wl->w;
    struct rs_listener *l = wl->cfg;
    if (fd < 0) {
        /* out of descriptors: back off instead of spinning on the error */
        rs_warn("listener %s: accept failed: %s", l->name, strerror(-err));
        rs_stat_inc(w->stats, l->st.downstream_cx_overflow);
        rs_timer_arm(&w->loop, &wl->retry, 100);
        return;
    }
    rs_stat_inc(w->stats, l->st.downstream_cx_total);
    uint16_t port = ntohs(((struct sockaddr_in *)&l->addr)->sin_port);
    struct rs_filter_chain *fc = pick_chain(l, port);
    if (!fc) {
        rs_stat_inc(w->stats, l->st.no_filter_chain_match);
        close(fd);
        return;
    }
    if (fc->active_cx) {
        if ((uint64_t)__atomic_add_fetch(fc->active_cx, 1, __ATOMIC_RELAXED) > fc->max_cx) {
            __atomic_sub_fetch(fc->active_cx, 1, __ATOMIC_RELAXED);
            rs_stat_inc(w->stats, fc->limited_connections);
            close(fd);
            return;
        }
        rs_stat_inc(w->stats, fc->active_connections);
    }
    rs_stat_inc(w->stats, l->st.downstream_cx_active);
    if (fc->hcm)
        rs_hcm_accept(w, wl, fc, fd);
    else
        rs_tcp_proxy_accept(w, wl, fc, fd);
}

static const struct rs_conn_handler listener_handler = {.on_accept = listener_accept};

/* ---- worker loop --------------------------------------------------------------------------- */

static void refresh_date(struct rs_worker *w)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    w->date_len = (uint32_t)strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void flush_logs(struct rs_worker *w)
{
    for (uint32_t i = 0; i < w->snap->nlogs; i++) {
        struct rs_access_log_buf *b = rs_access_log_wbuf(w->snap->logs[i], (uint32_t)w->id);
        if (b->lines) rs_access_log_flush(b);
    }
}

static void on_tick(struct rs_loop *loop, struct rs_timer *t)
{
    struct rs_worker *w = loop->worker;
    refresh_date(w);
    flush_logs(w);
    rs_timer_arm(loop, t, 1000);
}

static void close_listeners(struct rs_worker *w)
{
    if (w->listeners_closed) return;
    w->listeners_closed = true;
    for (uint32_t i = 0; i < w->snap->nlisteners; i++) {
        struct rs_worker_listener *wl = &w->listeners[i];
        rs_timer_cancel(&w->loop, &wl->retry);
        if (wl->conn) rs_conn_close(wl->conn);
        wl->conn = NULL;
    }
}

static void on_turn(struct rs_loop *loop)
{
    struct rs_worker *w = loop->worker;
    for (uint32_t i = 0; i < w->ndeferred; i++) w->deferred[i].fn(w->deferred[i].p);
    w->ndeferred = 0;
    flush_logs(w);
    struct rs_server *srv = w->srv;
    if (__atomic_load_n(&srv->quit, __ATOMIC_ACQUIRE)) {
        for (struct rs_session *s = w->sessions.next; s != &w->sessions;) {
            struct rs_session *next = s->next;
            s->kill(s);
            s = next;
        }
        for (uint32_t i = 0; i < w->snap->nclusters; i++) rs_hcm_pool_close(w, w->snap->clusters[i]);
        close_listeners(w);
        for (uint32_t i = 0; i < w->ndeferred; i++) w->deferred[i].fn(w->deferred[i].p);
        w->ndeferred = 0;
        loop->stop = true;
        return;
    }
    int drain = __atomic_load_n(&srv->drain_requested, __ATOMIC_ACQUIRE);
    if (drain && !w->draining) {
        w->draining = true;
        close_listeners(w);
        for (struct rs_session *s = w->sessions.next; s != &w->sessions;) {
            struct rs_session *next = s->next;
            s->drain(s);
            s = next;
        }
        for (uint32_t i = 0; i < w->snap->nclusters; i++) rs_hcm_pool_close(w, w->snap->clusters[i]);
    }
}

static int worker_init(struct rs_server *srv, struct rs_worker *w, int id);

/* The ring is created on the worker's own thread: with IORING_SETUP_SINGLE_ISSUER only the
 * creating task may submit to it. */
static void *worker_main(void *arg)
{
    struct rs_worker *w = arg;
    int ret = worker_init(w->srv, w, w->id);
    pthread_mutex_lock(&w->srv->start_lock);
    w->init_result = ret ? ret : 1;
    pthread_cond_broadcast(&w->srv->start_cond);
    pthread_mutex_unlock(&w->srv->start_lock);
    if (ret) return NULL;
    char name[16];
    snprintf(name, sizeof name, "rs-worker-%d", w->id);
    pthread_setname_np(pthread_self(), name);
    rs_loop_run(&w->loop, on_turn);
    flush_logs(w);
    rs_router_thread_cleanup();
    rs_hcm_thread_cleanup();
    rs_blk_thread_cleanup();
    return NULL;
}

static int worker_init(struct rs_server *srv, struct rs_worker *w, int id)
{
    struct rs_snapshot *snap = srv->snap;
    w->id = id;
    w->srv = srv;
    w->snap = snap;
    rs_snapshot_ref(snap);
    w->stats = rs_stats_shard(id);
    w->sessions.next = w->sessions.prev = &w->sessions;
    w->rng =
        ((uint64_t)rs_now_ms() << 16) ^ ((uint64_t)id * 0x9E3779B97F4A7C15ull) ^ (uint64_t)getpid();
    if (!w->rng) w->rng = 1;
    int ret = rs_loop_init(&w->loop, id, RING_ENTRIES, RING_BUFS, RING_BUF_SIZE);
    if (ret) return ret;
    w->loop.worker = w;
    w->listeners = calloc(snap->nlisteners + 1, sizeof *w->listeners);
    if (!w->listeners) return -ENOMEM;
    for (uint32_t i = 0; i < snap->nlisteners; i++) {
        struct rs_worker_listener *wl = &w->listeners[i];
        wl->w = w;
        wl->cfg = &snap->listeners[i];
        wl->fd = srv->listen_fds[i][id];
        wl->retry.cb = on_accept_retry;
        wl->conn = rs_conn_new(&w->loop, wl->fd, &listener_handler, wl);
        if (!wl->conn) return -ENOMEM;
        rs_conn_accept_start(wl->conn);
    }
    refresh_date(w);
    w->tick.cb = on_tick;
    rs_timer_arm(&w->loop, &w->tick, 1000);
    return 0;
}

int rs_server_start(struct rs_server *srv)
{
    srv->workers = calloc((size_t)srv->nworkers, sizeof *srv->workers);
    if (!srv->workers) return -ENOMEM;
    int ret = rs_snapshot_set_workers(srv->snap, (uint32_t)srv->nworkers);
    if (ret) return ret;
    rs_stats_init(srv->nworkers);
    pthread_mutex_init(&srv->start_lock, NULL);
    pthread_cond_init(&srv->start_cond, NULL);
    for (int i = 0; i < srv->nworkers; i++) {
        srv->workers[i].id = i;
        srv->workers[i].srv = srv;
        if (pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]) != 0)
            return -errno;
    }
    int failed = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        struct rs_worker *w = &srv->workers[i];
        pthread_mutex_lock(&srv->start_lock);
        while (!w->init_result) pthread_cond_wait(&srv->start_cond, &srv->start_lock);
        pthread_mutex_unlock(&srv->start_lock);
        if (w->init_result < 0) {
            rs_error("worker %d: set-up failed: %s", i, strerror(-w->init_result));
            failed = w->init_result;
        }
    }
    return failed;
}

static void wake_all(struct rs_server *srv)
{
    if (!srv->workers) return; /* not started yet: workers read the flags when they start */
    for (int i = 0; i < srv->nworkers; i++) rs_loop_wake(&srv->workers[i].loop);
}

void rs_server_drain(struct rs_server *srv, bool exit)
{
    __atomic_store_n(&srv->state, RS_STATE_DRAINING, __ATOMIC_RELEASE);
    int want = exit ? 2 : 1;
    int cur = __atomic_load_n(&srv->drain_requested, __ATOMIC_ACQUIRE);
    if (cur < want) __atomic_store_n(&srv->drain_requested, want, __ATOMIC_RELEASE);
    wake_all(srv);
}

void rs_server_quit(struct rs_server *srv)
{
    __atomic_store_n(&srv->quit, 1, __ATOMIC_RELEASE);
    wake_all(srv);
}

void rs_server_join(struct rs_server *srv)
{
    for (int i = 0; i < srv->nworkers; i++) {
        struct rs_worker *w = &srv->workers[i];
        pthread_join(w->thread, NULL);
        rs_conn_reap_all(&w->loop);
        rs_loop_destroy(&w->loop);
        rs_blk_thread_cleanup(); /* blocks of connections reaped here, on this thread */
        free(w->listeners);
        free(w->deferred);
        rs_snapshot_unref(w->snap);
    }
    free(srv->workers);
    srv->workers = NULL;
    for (uint32_t i = 0; srv->listen_fds && i < srv->snap->nlisteners; i++)
        free(srv->listen_fds[i]);
    free(srv->listen_fds);
    srv->listen_fds = NULL;
}

/* Sessions still open, summed over workers (read racily: used to end a drain early). */
uint32_t rs_server_sessions(struct rs_server *srv);
uint32_t rs_server_sessions(struct rs_server *srv)
{
    uint32_t n = 0;
    for (int i = 0; i < srv->nworkers; i++)
        n += __atomic_load_n(&srv->workers[i].nsessions, __ATOMIC_RELAXED);
    return n;
}
