/* Workers and their listeners: one thread and one ring per worker, each with its own
 * SO_REUSEPORT listening sockets, so the kernel spreads connections and nothing mutable is shared
 * on the hot path. Draining stops accepting, lets sessions finish, and ends the workers. */
#include "sidecar/server.h"

#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sidecar/blk.h"
#include "sidecar/chain_match.h"
#include "sidecar/http_inspect.h"
#include "sidecar/log.h"
#include "sidecar/router.h"
#include "sidecar/tls.h"

/* Submission entries; the completion queue is 8 times larger (rs_loop_init). The kernel's ring
 * pages are resident from the start: 4096 entries (and 32768 CQEs) cost 790 KiB per worker at
 * idle. A loop turn that queues more submissions than this submits early (rs_loop_sqe), and CQEs
 * past the queue's size are held by the kernel (IORING_FEAT_NODROP) until the next wait. */
#define RING_ENTRIES 1024
/* 1,024 buffers of 16 KiB bound what a worker can hold in flight (16 connections at the 1 MiB
 * per_connection_buffer_limit); only as many as recent loop turns used are published to the
 * kernel, free ones are reused most recently used first and idle ones' pages are given back
 * (loop.h), so this is a ceiling, not the resident size. */
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

int rs_upstream_socket(const struct rs_cluster *c, int family)
{
    int fd = rs_socket_for(family);
    if (fd < 0 || !c->bind_addrlen || c->bind_addr.ss_family != family) return fd;
    int one = 1;
    setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one); /* port picked at connect */
    if (bind(fd, (const struct sockaddr *)&c->bind_addr, c->bind_addrlen) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
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

/* ---- publication ---------------------------------------------------------------------------- */

static bool same_addr(const struct sockaddr_storage *a, socklen_t alen,
                      const struct sockaddr_storage *b, socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

static uint16_t addr_port(const struct sockaddr_storage *a)
{
    return ntohs(a->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)a)->sin6_port
                                          : ((const struct sockaddr_in *)a)->sin_port);
}

static void lsock_free(struct rs_lsock *ls)
{
    free(ls->fds);
    free(ls);
}

/* Binds one socket per worker for listener l. Port 0: every worker binds the port the first got,
 * and l's address becomes the bound one. */
static struct rs_lsock *lsock_open(struct rs_server *srv, struct rs_listener *l, char *err,
                                   size_t errlen)
{
    struct rs_lsock *ls = calloc(1, sizeof *ls);
    int *fds = calloc((size_t)srv->nworkers, sizeof(int));
    if (!ls || !fds) {
        free(ls);
        free(fds);
        snprintf(err, errlen, "listener %s: out of memory", l->name);
        return NULL;
    }
    ls->fds = fds;
    for (int w = 0; w < srv->nworkers; w++) {
        int fd = listen_socket((struct sockaddr *)&l->addr, l->addrlen, l);
        if (fd < 0) {
            snprintf(err, errlen, "listener %s: cannot listen on %s: %s", l->name, l->addr_str,
                     strerror(-fd));
            while (w--) close(fds[w]);
            lsock_free(ls);
            return NULL;
        }
        fds[w] = fd;
        if (w == 0 && addr_port(&l->addr) == 0) {
            socklen_t alen = sizeof l->addr;
            getsockname(fd, (struct sockaddr *)&l->addr, &alen);
            l->addrlen = alen;
            rs_addr_str((struct sockaddr *)&l->addr, l->addr_str, sizeof l->addr_str);
        }
    }
    ls->addr = l->addr;
    ls->addrlen = l->addrlen;
    rs_info("listener %s listening on %s", l->name, l->addr_str);
    return ls;
}

/* The socket a listener of a new snapshot uses: the one already open at its address, or (port 0)
 * the one its namesake in the published snapshot got. */
static struct rs_lsock *lsock_find(struct rs_server *srv, const struct rs_listener *l)
{
    struct sockaddr_storage addr = l->addr;
    socklen_t len = l->addrlen;
    if (addr_port(&addr) == 0 && srv->snap) {
        const struct rs_listener *old = NULL;
        for (uint32_t i = 0; i < srv->snap->nlisteners && !old; i++)
            if (strcmp(srv->snap->listeners[i].name, l->name) == 0) old = &srv->snap->listeners[i];
        if (!old || old->addr.ss_family != addr.ss_family) return NULL;
        addr = old->addr;
        len = old->addrlen;
        if (addr.ss_family == AF_INET6)
            memcpy(&((struct sockaddr_in6 *)&addr)->sin6_addr,
                   &((const struct sockaddr_in6 *)&l->addr)->sin6_addr, sizeof(struct in6_addr));
        else
            ((struct sockaddr_in *)&addr)->sin_addr =
                ((const struct sockaddr_in *)&l->addr)->sin_addr;
    }
    for (struct rs_lsock *ls = srv->lsocks; ls; ls = ls->next)
        if (same_addr(&ls->addr, ls->addrlen, &addr, len)) return ls;
    return NULL;
}

static void pub_unref(struct rs_publication *p)
{
    if (!p || --p->refs) return;
    rs_snapshot_unref(p->snap);
    free(p->fds);
    free(p);
}

/* Hands a worker a socket to close (it may still be accepting on it). Under pub_lock. */
static void worker_close_later(struct rs_worker *w, int fd)
{
    if (w->nclosing == w->closing_cap) {
        uint32_t cap = w->closing_cap ? w->closing_cap * 2 : 16;
        int *n = realloc(w->closing, cap * sizeof *n);
        if (!n) abort(); /* a few ints; losing track of a listening socket would be silent */
        w->closing = n;
        w->closing_cap = cap;
    }
    w->closing[w->nclosing++] = fd;
}

static void wake_all(struct rs_server *srv);

/* Under pub_lock. */
static int publish_locked(struct rs_server *srv, struct rs_snapshot *snap, char *err, size_t errlen)
{
    uint32_t nw = (uint32_t)srv->nworkers;
    struct rs_publication *p = calloc(1, sizeof *p);
    int *fds = calloc((size_t)snap->nlisteners * nw + 1, sizeof(int));
    struct rs_lsock **used = calloc(snap->nlisteners + 1, sizeof *used);
    if (!p || !fds || !used || rs_snapshot_set_workers(snap, nw) != 0) {
        free(p);
        free(fds);
        free(used);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    struct rs_lsock *fresh = NULL; /* opened for this snapshot: closed again if it fails */
    for (uint32_t i = 0; i < snap->nlisteners; i++) {
        struct rs_listener *l = &snap->listeners[i];
        if (!l->bind_to_port) { /* reached only through a use_original_dst listener */
            for (uint32_t w = 0; w < nw; w++) fds[(size_t)i * nw + w] = -1;
            continue;
        }
        for (uint32_t j = 0; j < i; j++)
            if (snap->listeners[j].bind_to_port &&
                same_addr(&snap->listeners[j].addr, snap->listeners[j].addrlen, &l->addr,
                          l->addrlen) &&
                addr_port(&l->addr) != 0) {
                snprintf(err, errlen, "listeners %s and %s have the same address %s",
                         snap->listeners[j].name, l->name, l->addr_str);
                goto fail;
            }
        struct rs_lsock *ls = lsock_find(srv, l);
        if (ls) {
            l->addr = ls->addr;
            l->addrlen = ls->addrlen;
            rs_addr_str((struct sockaddr *)&l->addr, l->addr_str, sizeof l->addr_str);
        } else {
            ls = lsock_open(srv, l, err, errlen);
            if (!ls) goto fail;
            ls->next = fresh;
            fresh = ls;
        }
        used[i] = ls;
        memcpy(&fds[(size_t)i * nw], ls->fds, nw * sizeof(int));
    }
    /* sockets no snapshot listener uses any more: each worker closes its own */
    for (struct rs_lsock **pp = &srv->lsocks; *pp;) {
        struct rs_lsock *ls = *pp;
        bool keep = false;
        for (uint32_t i = 0; i < snap->nlisteners && !keep; i++) keep = used[i] == ls;
        if (keep) {
            pp = &ls->next;
            continue;
        }
        *pp = ls->next;
        for (uint32_t w = 0; w < nw; w++) {
            if (srv->workers)
                worker_close_later(&srv->workers[w], ls->fds[w]);
            else
                close(ls->fds[w]);
        }
        lsock_free(ls);
    }
    while (fresh) {
        struct rs_lsock *next = fresh->next;
        fresh->next = srv->lsocks;
        srv->lsocks = fresh;
        fresh = next;
    }
    free(used);
    /* clusters the new snapshot no longer has: their pools stop keeping connections */
    if (srv->snap)
        for (uint32_t i = 0; i < srv->snap->nclusters; i++) {
            struct rs_cluster *c = srv->snap->clusters[i];
            bool kept = false;
            for (uint32_t j = 0; j < snap->nclusters && !kept; j++) kept = snap->clusters[j] == c;
            if (!kept) __atomic_store_n(&c->removed, true, __ATOMIC_RELEASE);
        }
    p->refs = 1;
    p->snap = snap;
    p->fds = fds;
    p->seq = ++srv->pub_seq_next;
    rs_snapshot_ref(snap);
    struct rs_snapshot *old = srv->snap;
    srv->snap = snap;
    struct rs_publication *oldp = srv->pub;
    srv->pub = p;
    __atomic_store_n(&srv->pub_seq, p->seq, __ATOMIC_RELEASE);
    pub_unref(oldp);
    rs_snapshot_unref(old);
    return 0;
fail:
    while (fresh) {
        struct rs_lsock *next = fresh->next;
        for (uint32_t w = 0; w < nw; w++) close(fresh->fds[w]);
        lsock_free(fresh);
        fresh = next;
    }
    free(p);
    free(fds);
    free(used);
    return -EADDRINUSE;
}

int rs_server_publish(struct rs_server *srv, struct rs_snapshot *snap, char *err, size_t errlen)
{
    pthread_mutex_lock(&srv->pub_lock);
    int ret = publish_locked(srv, snap, err, errlen);
    pthread_mutex_unlock(&srv->pub_lock);
    if (ret) return ret; /* the caller's reference is now srv->snap's */
    wake_all(srv);
    return 0;
}

int rs_server_bind(struct rs_server *srv, char *err, size_t errlen)
{
    pthread_mutex_init(&srv->pub_lock, NULL);
    struct rs_snapshot *snap = srv->snap; /* the caller keeps its reference */
    srv->snap = NULL;
    rs_snapshot_ref(snap);
    int ret = rs_server_publish(srv, snap, err, errlen);
    if (ret) {
        rs_snapshot_unref(snap);
        srv->snap = snap;
    }
    return ret;
}

struct rs_snapshot *rs_server_snapshot(struct rs_server *srv)
{
    pthread_mutex_lock(&srv->pub_lock);
    struct rs_snapshot *s = srv->snap;
    rs_snapshot_ref(s);
    pthread_mutex_unlock(&srv->pub_lock);
    return s;
}

/* ---- worker helpers ------------------------------------------------------------------------ */

static void snapshot_unref_cb(void *p)
{
    rs_snapshot_unref(p);
}

void rs_worker_session_add(struct rs_worker *w, struct rs_session *s, const struct rs_accept *a)
{
    s->snap = w->snap;
    rs_snapshot_ref(s->snap);
    s->wl = a->wl;
    s->l = a->l;
    s->fc = a->fc;
    a->wl->nsessions++;
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
    /* the session's object may still read its configuration in this batch */
    rs_worker_defer_free(w, snapshot_unref_cb, s->snap);
    if (--s->wl->nsessions == 0 && s->wl->removed) rs_worker_defer_free(w, free, s->wl);
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

const struct rs_endpoint *rs_worker_pick_host_for(struct rs_worker *w, struct rs_cluster *c,
                                                  const struct sockaddr_storage *original_dst,
                                                  struct rs_endpoint *scratch,
                                                  struct rs_host_ref *ref)
{
    if (c->type != RS_CLUSTER_ORIGINAL_DST) return rs_worker_pick_host(w, c, ref);
    if (ref) *ref = (struct rs_host_ref){0};
    if (!original_dst) return NULL;
    memset(scratch, 0, sizeof *scratch);
    scratch->addr = *original_dst;
    scratch->addrlen = original_dst->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in);
    scratch->weight = 1;
    scratch->ts_match = -1;
    rs_addr_str((const struct sockaddr *)original_dst, scratch->name, sizeof scratch->name);
    return scratch;
}

void rs_worker_downstream_closed(struct rs_worker *w, const struct rs_session *s, uint64_t start_ms)
{
    const struct rs_filter_chain *fc = s->fc;
    const struct rs_listener_stats *ls = &s->l->st;
    rs_stat_dec(w->stats, ls->downstream_cx_active);
    rs_stat_inc(w->stats, ls->downstream_cx_destroy);
    rs_hist_record(w->stats, ls->downstream_cx_length_ms, (w->loop.now_ms - start_ms) * 1000);
    if (fc->active_cx) {
        __atomic_sub_fetch(fc->active_cx, 1, __ATOMIC_RELAXED);
        rs_stat_dec(w->stats, fc->active_connections);
    }
}

void rs_worker_access_log(struct rs_worker *w, const struct rs_snapshot *snap,
                          struct rs_access_log **logs, uint32_t n,
                          const struct rs_access_info *info)
{
    for (uint32_t i = 0; i < n; i++) {
        struct rs_access_log_buf *b = rs_access_log_wbuf(logs[i], (uint32_t)w->id);
        rs_access_log_append(b, info);
        if (snap != w->snap) rs_access_log_flush(b); /* not flushed per batch any more */
    }
}

/* ---- accept -------------------------------------------------------------------------------- */

/* The peer and local address of an accepted connection (the local one without a syscall when
 * the listener is bound to a single address). */
static void downstream_addrs(const struct rs_worker_listener *wl, int fd,
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

/* The destination the connection had before an iptables REDIRECT/TPROXY rule sent it here, if
 * one did. */
static bool original_dst(int fd, const struct sockaddr_storage *local, struct sockaddr_storage *out)
{
    socklen_t len = sizeof *out;
    int level = local->ss_family == AF_INET6 ? SOL_IPV6 : SOL_IP;
    if (getsockopt(fd, level, SO_ORIGINAL_DST, out, &len) != 0) return false;
    return !(out->ss_family == local->ss_family &&
             memcmp(out, local,
                    out->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                               : sizeof(struct sockaddr_in)) == 0);
}

/* use_original_dst: the listener whose address is the connection's original destination, the
 * exact address first, then the wildcard one on that port (Envoy's order); NULL if none. */
static struct rs_listener *listener_for(struct rs_snapshot *snap,
                                        const struct sockaddr_storage *dst)
{
    struct rs_listener *wild = NULL;
    for (uint32_t i = 0; i < snap->nlisteners; i++) {
        struct rs_listener *l = &snap->listeners[i];
        if (l->addr.ss_family != dst->ss_family || l->use_original_dst) continue;
        if (dst->ss_family == AF_INET) {
            const struct sockaddr_in *a = (const void *)&l->addr, *d = (const void *)dst;
            if (a->sin_port != d->sin_port) continue;
            if (a->sin_addr.s_addr == d->sin_addr.s_addr) return l;
            if (a->sin_addr.s_addr == htonl(INADDR_ANY) && !wild) wild = l;
        } else {
            const struct sockaddr_in6 *a = (const void *)&l->addr, *d = (const void *)dst;
            if (a->sin6_port != d->sin6_port) continue;
            if (IN6_ARE_ADDR_EQUAL(&a->sin6_addr, &d->sin6_addr)) return l;
            if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) && !wild) wild = l;
        }
    }
    return wild;
}

static void on_accept_retry(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    struct rs_worker_listener *wl =
        (struct rs_worker_listener *)((char *)t - offsetof(struct rs_worker_listener, retry));
    if (wl->conn && !wl->w->listeners_closed) rs_conn_accept_start(wl->conn);
}

/* ---- accepting: listener filters, chain selection, hand-off -------------------------------- */

/* The stats of the TLS and HTTP inspectors, under Envoy's names (tls_inspector.*,
 * http_inspector.*). */
static struct {
    rs_stat_id tls_found, tls_not_found, client_hello_too_large, sni_found, sni_not_found,
        alpn_found, alpn_not_found, http10_found, http11_found, http2_found, http_not_found;
} ist;
static pthread_once_t ist_once = PTHREAD_ONCE_INIT;

static void ist_register(void)
{
#define R(f, n) ist.f = rs_stats_register(n, RS_STAT_COUNTER)
    R(tls_found, "tls_inspector.tls_found");
    R(tls_not_found, "tls_inspector.tls_not_found");
    R(client_hello_too_large, "tls_inspector.client_hello_too_large");
    R(sni_found, "tls_inspector.sni_found");
    R(sni_not_found, "tls_inspector.sni_not_found");
    R(alpn_found, "tls_inspector.alpn_found");
    R(alpn_not_found, "tls_inspector.alpn_not_found");
    R(http10_found, "http_inspector.http10_found");
    R(http11_found, "http_inspector.http11_found");
    R(http2_found, "http_inspector.http2_found");
    R(http_not_found, "http_inspector.http_not_found");
#undef R
}

/* Picks the filter chain for what is known of the connection and hands it to the chain's
 * protocol, or closes it (no chain, connection limit). */
static void dispatch(struct rs_worker *w, struct rs_accept *a, const struct rs_conn_meta *meta)
{
    struct rs_listener *l = a->l;
    a->fc =
        rs_listener_pick_chain(l, (struct sockaddr *)&a->local, (struct sockaddr *)&a->peer, meta);
    struct rs_filter_chain *fc = a->fc;
    if (!fc) {
        rs_stat_inc(w->stats, l->st.no_filter_chain_match);
        if (l->nlogs) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            struct rs_access_info info = {
                .start_time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000,
                .request_duration_us = -1,
                .response_duration_us = -1,
                .response_flags = RS_RF_NR,
                .downstream_remote = (struct sockaddr *)&a->peer,
                .downstream_local = (struct sockaddr *)&a->local,
            };
            rs_worker_access_log(w, w->snap, l->logs, l->nlogs, &info);
        }
        rs_conn_close(a->conn);
        return;
    }
    if (fc->active_cx) {
        if ((uint64_t)__atomic_add_fetch(fc->active_cx, 1, __ATOMIC_RELAXED) > fc->max_cx) {
            __atomic_sub_fetch(fc->active_cx, 1, __ATOMIC_RELAXED);
            rs_stat_inc(w->stats, fc->limited_connections);
            rs_conn_close(a->conn);
            return;
        }
        rs_stat_inc(w->stats, fc->active_connections);
    }
    rs_stat_inc(w->stats, l->st.downstream_cx_active);
    if (fc->hcm)
        rs_hcm_accept(w, a);
    else
        rs_tcp_proxy_accept(w, a);
}

int rs_worker_downstream_start(struct rs_worker *w, const struct rs_accept *a,
                               void (*on_handshake)(struct rs_conn *c, int err))
{
    struct rs_conn *c = a->conn;
    if (a->fc->tls_ctx) {
        struct rs_tls_opts o = {.handshake_timeout_ms = a->fc->handshake_timeout_ms,
                                .on_handshake = on_handshake,
                                .shard = w->stats,
                                .stats = a->l->st.ssl};
        int err = rs_tls_attach(c, a->fc->tls_ctx, &o);
        if (err) return err;
    }
    rs_conn_read_start(c);
    if (a->pre_len) rs_conn_inject(c, a->pre_bid, a->pre, a->pre_len);
    return 0;
}

/* A connection whose listener inspects its first bytes (tls_inspector, http_inspector) before a
 * chain is picked. It is a session of its own meanwhile, so updates and draining see it. Bytes
 * are read for real (no MSG_PEEK) and replayed to the protocol: one receive serves both. */
struct inspect {
    struct rs_session link;
    struct rs_worker *w;
    struct rs_conn *c;
    struct rs_accept a;
    struct rs_timer timer; /* listener_filters_timeout */
    char *buf;             /* bytes of earlier receives, when the first did not decide */
    size_t len, cap;
    bool not_tls; /* the TLS inspector has decided: plaintext (counted; not parsed again) */
};

enum inspect_result { INSPECT_MORE, INSPECT_DONE, INSPECT_REJECT };

/* Runs the listener's inspectors over the bytes so far; each counts its finding once, when it
 * decides. */
static enum inspect_result inspect_bytes(struct inspect *ins, const char *p, size_t n,
                                         struct rs_client_hello *hello, const char **protos,
                                         struct rs_conn_meta *meta)
{
    struct rs_stats_shard *st = ins->w->stats;
    const struct rs_listener *l = ins->link.l;
    if (l->tls_inspector && !ins->not_tls) {
        switch (rs_tls_peek_client_hello((const uint8_t *)p, n, hello)) {
        case RS_TLS_PEEK_NEED_MORE:
            return INSPECT_MORE;
        case RS_TLS_PEEK_INVALID:
            rs_stat_inc(st, ist.client_hello_too_large); /* or malformed: Envoy counts both so */
            return INSPECT_REJECT;
        case RS_TLS_PEEK_PARSED:
            rs_stat_inc(st, ist.tls_found);
            rs_stat_inc(st, hello->has_sni ? ist.sni_found : ist.sni_not_found);
            rs_stat_inc(st, hello->n_alpn ? ist.alpn_found : ist.alpn_not_found);
            meta->tls = true;
            meta->server_name = hello->has_sni ? hello->sni : NULL;
            for (uint32_t i = 0; i < hello->n_alpn; i++) protos[i] = hello->alpn[i];
            meta->app_protocols = protos;
            meta->napp_protocols = hello->n_alpn;
            return INSPECT_DONE;
        case RS_TLS_PEEK_NOT_TLS:
            rs_stat_inc(st, ist.tls_not_found);
            ins->not_tls = true;
            break;
        }
    }
    if (l->http_inspector) {
        const char *proto;
        if (rs_http_peek_protocol(p, n, &proto) == RS_HTTP_PEEK_NEED_MORE) return INSPECT_MORE;
        rs_stat_inc(st, !proto                           ? ist.http_not_found
                        : strcmp(proto, "h2c") == 0      ? ist.http2_found
                        : strcmp(proto, "http/1.1") == 0 ? ist.http11_found
                                                         : ist.http10_found);
        if (proto) {
            protos[0] = proto;
            meta->app_protocols = protos;
            meta->napp_protocols = 1;
        }
    }
    return INSPECT_DONE;
}

static void inspect_end(struct inspect *ins)
{
    struct rs_worker *w = ins->w;
    rs_timer_cancel(&w->loop, &ins->timer);
    rs_stat_dec(w->stats, ins->link.l->st.downstream_pre_cx_active);
    rs_worker_session_del(w, &ins->link);
    free(ins->buf);
    rs_worker_defer_free(w, free, ins);
}

static void inspect_close(struct inspect *ins)
{
    if (ins->c) rs_conn_close(ins->c);
    ins->c = NULL;
    inspect_end(ins);
}

/* Inspection decided: the connection goes to its chain with the bytes read so far. */
static void inspect_done(struct inspect *ins, const struct rs_conn_meta *meta, int32_t bid,
                         const char *p, size_t n)
{
    struct rs_accept a = ins->a;
    a.wl = ins->link.wl;
    a.l = ins->link.l; /* an update may have moved it to a newer, identical listener */
    a.conn = ins->c;
    a.pre_bid = bid;
    a.pre = p;
    a.pre_len = n;
    ins->c = NULL;
    rs_timer_cancel(&ins->w->loop, &ins->timer);
    dispatch(ins->w, &a, meta);
    inspect_end(ins); /* after: the bytes may be ins->buf */
}

static void inspect_data(struct rs_conn *c, int32_t bid, const char *data, size_t len)
{
    struct inspect *ins = c->owner;
    if (ins->len) {
        if (ins->len + len > ins->cap) {
            size_t cap = ins->len + len > 2 * ins->cap ? ins->len + len : 2 * ins->cap;
            char *nb = realloc(ins->buf, cap);
            if (!nb) {
                inspect_close(ins);
                return;
            }
            ins->buf = nb;
            ins->cap = cap;
        }
        memcpy(ins->buf + ins->len, data, len);
        ins->len += len;
        data = ins->buf;
        len = ins->len;
        bid = -1;
    }
    struct rs_client_hello hello;
    const char *protos[RS_TLS_MAX_ALPN];
    struct rs_conn_meta meta = {0};
    switch (inspect_bytes(ins, data, len, &hello, protos, &meta)) {
    case INSPECT_DONE:
        inspect_done(ins, &meta, bid, data, len);
        return;
    case INSPECT_REJECT:
        inspect_close(ins);
        return;
    case INSPECT_MORE:
        break;
    }
    if (bid < 0) return; /* already in ins->buf */
    /* the first receive did not decide: keep its bytes (a ClientHello is at most 16 KiB) */
    ins->cap = len > 4096 ? len : 4096;
    ins->buf = malloc(ins->cap);
    if (!ins->buf) {
        inspect_close(ins);
        return;
    }
    memcpy(ins->buf, data, len);
    ins->len = len;
}

static void inspect_eof(struct rs_conn *c)
{
    inspect_close(c->owner);
}

static void inspect_error(struct rs_conn *c, int err)
{
    (void)err;
    inspect_close(c->owner);
}

static void inspect_timeout(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    struct inspect *ins = (struct inspect *)((char *)t - offsetof(struct inspect, timer));
    rs_stat_inc(ins->w->stats, ins->link.l->st.downstream_pre_cx_timeout);
    if (!ins->link.l->inspect_continue) {
        inspect_close(ins);
        return;
    }
    static const struct rs_conn_meta plain = {0}; /* what is known: nothing */
    inspect_done(ins, &plain, -1, ins->buf, ins->len);
}

static void inspect_drain(struct rs_session *s)
{
    inspect_close((struct inspect *)s); /* its listener changed or went: no chain to serve it */
}

static void inspect_rebind(struct rs_session *s, struct rs_filter_chain *fc,
                           struct rs_snapshot *prev)
{
    (void)fc; /* none picked yet; s->l is already the new listener */
    rs_worker_defer_free(((struct inspect *)s)->w, snapshot_unref_cb, prev);
}

static const struct rs_conn_handler inspect_handler = {
    .on_data = inspect_data,
    .on_eof = inspect_eof,
    .on_error = inspect_error,
};

static void inspect_start(struct rs_worker *w, struct rs_accept *a)
{
    pthread_once(&ist_once, ist_register);
    struct inspect *ins = calloc(1, sizeof *ins);
    if (!ins) {
        rs_conn_close(a->conn);
        return;
    }
    ins->w = w;
    ins->c = a->conn;
    ins->a = *a;
    ins->link.drain = inspect_drain;
    ins->link.kill = inspect_drain;
    ins->link.rebind = inspect_rebind;
    ins->timer.cb = inspect_timeout;
    rs_worker_session_add(w, &ins->link, a);
    rs_stat_inc(w->stats, a->l->st.downstream_pre_cx_active);
    rs_conn_set_handler(ins->c, &inspect_handler, ins);
    if (a->l->inspect_timeout_ms) rs_timer_arm(&w->loop, &ins->timer, a->l->inspect_timeout_ms);
    rs_conn_read_start(ins->c);
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
    struct rs_accept a = {.wl = wl, .l = l, .pre_bid = -1};
    downstream_addrs(wl, fd, &a.peer, &a.local);
    if (l->use_original_dst || l->original_dst) {
        struct sockaddr_storage od;
        if (original_dst(fd, &a.local, &od)) {
            a.local = od;
            a.redirected = true;
        }
    }
    if (l->use_original_dst && a.redirected) {
        struct rs_listener *target = listener_for(w->snap, &a.local);
        if (target) a.l = l = target;
    }
    rs_stat_inc(w->stats, l->st.downstream_cx_total);
    a.conn = rs_conn_new(&w->loop, fd, &inspect_handler, NULL);
    if (!a.conn) return; /* out of memory: fd closed */
    if (l->tls_inspector || l->http_inspector)
        inspect_start(w, &a);
    else
        dispatch(w, &a, NULL);
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

/* Sessions drained by an update that outlived the drain time. */
static void kill_overdue(struct rs_worker *w)
{
    for (struct rs_session *s = w->sessions.next; s != &w->sessions;) {
        struct rs_session *next = s->next;
        if (s->drain_deadline_ms && w->loop.now_ms >= s->drain_deadline_ms) s->kill(s);
        s = next;
    }
}

static void on_tick(struct rs_loop *loop, struct rs_timer *t)
{
    struct rs_worker *w = loop->worker;
    refresh_date(w);
    flush_logs(w);
    kill_overdue(w);
    rs_timer_arm(loop, t, 1000);
}

static void listener_stop(struct rs_worker *w, struct rs_worker_listener *wl)
{
    rs_timer_cancel(&w->loop, &wl->retry);
    if (wl->conn) rs_conn_close(wl->conn); /* closes the socket */
    wl->conn = NULL;
}

static void close_listeners(struct rs_worker *w)
{
    if (w->listeners_closed) return;
    w->listeners_closed = true;
    for (struct rs_worker_listener *wl = w->listeners; wl; wl = wl->next) listener_stop(w, wl);
}

static struct rs_worker_listener *listener_start(struct rs_worker *w, struct rs_listener *cfg,
                                                 int fd)
{
    struct rs_worker_listener *wl = calloc(1, sizeof *wl);
    if (!wl) return NULL;
    wl->w = w;
    wl->cfg = cfg;
    wl->fd = fd;
    wl->retry.cb = on_accept_retry;
    wl->conn = rs_conn_new(&w->loop, fd, &listener_handler, wl);
    if (!wl->conn) {
        free(wl);
        return NULL;
    }
    if (!w->listeners_closed) rs_conn_accept_start(wl->conn);
    wl->next = w->listeners;
    w->listeners = wl;
    return wl;
}

/* The filter chain of `nl` that corresponds to `fc` of `ol`, an identical definition. */
static struct rs_filter_chain *same_chain(const struct rs_listener *ol,
                                          const struct rs_filter_chain *fc, struct rs_listener *nl)
{
    if (fc == ol->default_chain) return nl->default_chain;
    ptrdiff_t i = fc - ol->chains;
    return i >= 0 && (uint32_t)i < nl->nchains ? &nl->chains[i] : NULL;
}

/* Moves the worker to the server's latest publication: sockets of removed listeners close, new
 * ones start accepting, sessions of unchanged listeners move over, the others drain. */
static void worker_switch(struct rs_worker *w)
{
    struct rs_server *srv = w->srv;
    pthread_mutex_lock(&srv->pub_lock);
    struct rs_publication *p = srv->pub;
    p->refs++;
    int *closing = w->closing;
    uint32_t nclosing = w->nclosing;
    w->closing = NULL;
    w->nclosing = w->closing_cap = 0;
    pthread_mutex_unlock(&srv->pub_lock);

    for (uint32_t i = 0; i < nclosing; i++) {
        struct rs_worker_listener **pp = &w->listeners;
        while (*pp && (*pp)->fd != closing[i]) pp = &(*pp)->next;
        struct rs_worker_listener *wl = *pp;
        if (!wl) {
            close(closing[i]); /* never started here (published and dropped in one turn) */
            continue;
        }
        *pp = wl->next;
        listener_stop(w, wl);
        wl->removed = true;
        if (wl->nsessions == 0) rs_worker_defer_free(w, free, wl);
    }
    free(closing);

    struct rs_snapshot *old = w->snap, *snap = p->snap;
    rs_snapshot_ref(snap);
    bool *seen = calloc(snap->nlisteners + 1, sizeof *seen);
    for (struct rs_worker_listener *wl = w->listeners; wl; wl = wl->next) {
        wl->cfg = NULL;
        for (uint32_t i = 0; i < snap->nlisteners; i++)
            if (p->fds[(size_t)i * (size_t)srv->nworkers + (size_t)w->id] == wl->fd) {
                wl->cfg = &snap->listeners[i];
                if (seen) seen[i] = true;
            }
    }
    for (uint32_t i = 0; i < snap->nlisteners; i++) {
        if (seen && seen[i]) continue;
        int fd = p->fds[(size_t)i * (size_t)srv->nworkers + (size_t)w->id];
        if (fd < 0) continue; /* not bound (bind_to_port: false) */
        if (!listener_start(w, &snap->listeners[i], fd))
            rs_error("listener %s: worker %d cannot accept (out of memory)",
                     snap->listeners[i].name, w->id);
    }
    free(seen);

    uint64_t deadline = w->loop.now_ms + srv->drain_time_ms;
    for (struct rs_session *s = w->sessions.next; s != &w->sessions;) {
        struct rs_session *next = s->next;
        if (s->snap == snap) {
            s = next;
            continue;
        }
        const struct rs_listener *ol = s->l;
        struct rs_listener *nl = NULL;
        for (uint32_t i = 0; i < snap->nlisteners && !nl; i++)
            if (strcmp(snap->listeners[i].name, ol->name) == 0) nl = &snap->listeners[i];
        struct rs_filter_chain *nfc = NULL;
        bool same =
            ol && nl && ol->hash == nl->hash && strcmp(ol->name, nl->name) == 0 && s->rebind;
        /* a connection still being inspected has no chain yet: it only needs its listener */
        if (same && s->fc) nfc = same_chain(ol, s->fc, nl);
        bool moves = nfc || (same && !s->fc);
        rs_debug("worker %d: session on %s: %s", w->id, ol ? ol->name : "?",
                 moves ? "moves to the new snapshot" : "drains (its listener changed or went)");
        if (moves) {
            struct rs_snapshot *prev = s->snap;
            s->snap = snap;
            s->l = nl;
            rs_snapshot_ref(snap);
            s->rebind(s, nfc, prev); /* takes over prev's reference */
        } else if (!s->drain_deadline_ms) {
            s->drain_deadline_ms = deadline ? deadline : 1;
            s->drain(s);
        }
        s = next;
    }
    /* clusters gone from the new snapshot: close this worker's idle connections to them */
    for (uint32_t i = 0; i < old->nclusters; i++)
        if (__atomic_load_n(&old->clusters[i]->removed, __ATOMIC_ACQUIRE))
            rs_hcm_pool_close(w, old->clusters[i]);
    flush_logs(w);
    w->snap = snap;
    rs_worker_defer_free(w, snapshot_unref_cb, old);
    pthread_mutex_lock(&srv->pub_lock);
    pub_unref(w->pub);
    w->pub = p;
    pthread_mutex_unlock(&srv->pub_lock);
    /* atomic: the control thread reads it to release TLS contexts retired before this
     * publication (xds_client.c workers_seq) */
    __atomic_store_n(&w->pub_seq, p->seq, __ATOMIC_RELEASE);
    rs_debug("worker %d: now on snapshot %llu", w->id, (unsigned long long)p->seq);
}

static void on_turn(struct rs_loop *loop)
{
    struct rs_worker *w = loop->worker;
    for (uint32_t i = 0; i < w->ndeferred; i++) w->deferred[i].fn(w->deferred[i].p);
    w->ndeferred = 0;
    flush_logs(w);
    struct rs_server *srv = w->srv;
    if (__atomic_load_n(&srv->pub_seq, __ATOMIC_ACQUIRE) != w->pub_seq) worker_switch(w);
    if (__atomic_load_n(&srv->quit, __ATOMIC_ACQUIRE)) {
        for (struct rs_session *s = w->sessions.next; s != &w->sessions;) {
            struct rs_session *next = s->next;
            s->kill(s);
            s = next;
        }
        for (uint32_t i = 0; i < w->snap->nclusters; i++)
            rs_hcm_pool_close(w, w->snap->clusters[i]);
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
        for (uint32_t i = 0; i < w->snap->nclusters; i++)
            rs_hcm_pool_close(w, w->snap->clusters[i]);
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
    for (uint32_t i = 0; i < w->ndeferred; i++) w->deferred[i].fn(w->deferred[i].p);
    w->ndeferred = 0;
    rs_router_thread_cleanup();
    rs_hcm_thread_cleanup();
    rs_blk_thread_cleanup();
    return NULL;
}

static int worker_init(struct rs_server *srv, struct rs_worker *w, int id)
{
    w->id = id;
    w->srv = srv;
    pthread_mutex_lock(&srv->pub_lock);
    struct rs_publication *p = srv->pub;
    p->refs++;
    pthread_mutex_unlock(&srv->pub_lock);
    w->pub = p;
    __atomic_store_n(&w->pub_seq, p->seq, __ATOMIC_RELEASE);
    struct rs_snapshot *snap = w->snap = p->snap;
    rs_snapshot_ref(snap);
    w->stats = rs_stats_shard(id);
    w->sessions.next = w->sessions.prev = &w->sessions;
    w->rng =
        ((uint64_t)rs_now_ms() << 16) ^ ((uint64_t)id * 0x9E3779B97F4A7C15ull) ^ (uint64_t)getpid();
    if (!w->rng) w->rng = 1;
    int ret = rs_loop_init(&w->loop, id, RING_ENTRIES, RING_BUFS, RING_BUF_SIZE);
    if (ret) return ret;
    w->loop.worker = w;
    for (uint32_t i = 0; i < snap->nlisteners; i++)
        if (!listener_start(w, &snap->listeners[i],
                            p->fds[(size_t)i * (size_t)srv->nworkers + (size_t)id]))
            return -ENOMEM;
    refresh_date(w);
    w->tick.cb = on_tick;
    rs_timer_arm(&w->loop, &w->tick, 1000);
    return 0;
}

int rs_server_start(struct rs_server *srv)
{
    srv->workers = calloc((size_t)srv->nworkers, sizeof *srv->workers);
    if (!srv->workers) return -ENOMEM;
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
        while (w->listeners) {
            struct rs_worker_listener *wl = w->listeners;
            w->listeners = wl->next;
            free(wl);
        }
        for (uint32_t j = 0; j < w->nclosing; j++) close(w->closing[j]);
        free(w->closing);
        free(w->deferred);
        rs_snapshot_unref(w->snap);
        pub_unref(w->pub);
    }
    free(srv->workers);
    srv->workers = NULL;
    while (srv->lsocks) {
        struct rs_lsock *ls = srv->lsocks;
        srv->lsocks = ls->next;
        lsock_free(ls); /* the sockets were closed by their workers */
    }
    pub_unref(srv->pub);
    srv->pub = NULL;
    rs_snapshot_unref(srv->snap);
    srv->snap = NULL;
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
