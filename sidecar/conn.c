/* Connections: slots, receive, the output queue and its sends, connect, close and reaping. */
#include "sidecar/conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sidecar/blk.h"
#include "sidecar/log.h"

uint32_t rs_conn_zc_threshold = 64 * 1024;

#define RS_IOV_MAX 64

/* liburing 2.3's headers predate these (Linux 6.2 ABI). */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif
#define RS_BGID 0

static uint64_t next_conn_id;

/* After close, no callback reaches the protocol: every handler points here. */
static void nop_data(struct rs_conn *c, int32_t bid, const char *d, size_t n)
{
    (void)c, (void)bid, (void)d, (void)n;
}
static void nop_conn(struct rs_conn *c)
{
    (void)c;
}
static void nop_err(struct rs_conn *c, int err)
{
    (void)c, (void)err;
}
static void nop_accept(struct rs_conn *c, int fd, int err)
{
    (void)c, (void)err;
    if (fd >= 0) close(fd);
}
static const struct rs_conn_handler detached = {
    .on_data = nop_data,
    .on_eof = nop_conn,
    .on_drained = nop_conn,
    .on_connected = nop_err,
    .on_error = nop_err,
    .on_accept = nop_accept,
};

static int slot_alloc(struct rs_loop *loop, struct rs_conn *c)
{
    if (loop->nfree == 0) {
        uint32_t cap = loop->slot_cap ? loop->slot_cap * 2 : 1024;
        struct rs_conn **ns = realloc(loop->slots, cap * sizeof *ns);
        if (!ns) return -ENOMEM;
        loop->slots = ns;
        uint32_t *ng = realloc(loop->slot_gen, cap * sizeof *ng);
        if (!ng) return -ENOMEM;
        loop->slot_gen = ng;
        uint32_t *nf = realloc(loop->free_slots, cap * sizeof *nf);
        if (!nf) return -ENOMEM;
        loop->free_slots = nf;
        for (uint32_t i = cap; i > loop->slot_cap; i--) {
            loop->slot_gen[i - 1] = 0;
            loop->slots[i - 1] = NULL;
            loop->free_slots[loop->nfree++] = i - 1;
        }
        loop->slot_cap = cap;
    }
    uint32_t slot = loop->free_slots[--loop->nfree];
    loop->slots[slot] = c;
    c->slot = slot;
    c->gen = loop->slot_gen[slot];
    loop->nslots++;
    return 0;
}

static void slot_release(struct rs_loop *loop, uint32_t slot)
{
    loop->slots[slot] = NULL;
    loop->slot_gen[slot] = (loop->slot_gen[slot] + 1) & 0xffffff;
    loop->free_slots[loop->nfree++] = slot;
    loop->nslots--;
}

struct rs_conn *rs_conn_new(struct rs_loop *loop, int fd, const struct rs_conn_handler *h,
                            void *owner)
{
    struct rs_conn *c = calloc(1, sizeof *c);
    if (!c || slot_alloc(loop, c) != 0) {
        free(c);
        close(fd);
        return NULL;
    }
    c->loop = loop;
    c->fd = fd;
    c->h = h;
    c->owner = owner;
    c->tp = &rs_transport_plain;
    c->id = __atomic_add_fetch(&next_conn_id, 1, __ATOMIC_RELAXED);
    return c;
}

static struct io_uring_sqe *conn_sqe(struct rs_conn *c, enum rs_op op)
{
    struct io_uring_sqe *sqe = rs_loop_sqe(c->loop);
    io_uring_sqe_set_data64(sqe, rs_ud(op, c->slot, c->gen));
    c->inflight++;
    return sqe;
}

void rs_conn_accept_start(struct rs_conn *c)
{
    if (c->flags & (RS_CONN_RECV_ARMED | RS_CONN_CLOSED)) return;
    c->flags |= RS_CONN_LISTENER | RS_CONN_RECV_ARMED;
    struct io_uring_sqe *sqe = conn_sqe(c, RS_OP_ACCEPT);
    io_uring_prep_multishot_accept(sqe, c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

static void arm_recv(struct rs_conn *c)
{
    if (c->flags & (RS_CONN_RECV_ARMED | RS_CONN_CLOSED | RS_CONN_NOBUF | RS_CONN_EOF)) return;
    c->flags |= RS_CONN_RECV_ARMED;
    c->flags &= ~RS_CONN_CANCEL_SENT;
    struct io_uring_sqe *sqe = conn_sqe(c, RS_OP_RECV);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RS_BGID;
}

void rs_conn_read_start(struct rs_conn *c)
{
    c->flags |= RS_CONN_WANT_READ;
    arm_recv(c);
}

void rs_conn_read_stop(struct rs_conn *c)
{
    c->flags &= ~RS_CONN_WANT_READ;
    if (!(c->flags & RS_CONN_RECV_ARMED) || (c->flags & (RS_CONN_CANCEL_SENT | RS_CONN_CLOSED)))
        return;
    c->flags |= RS_CONN_CANCEL_SENT;
    struct io_uring_sqe *sqe = conn_sqe(c, RS_OP_CANCEL);
    io_uring_prep_cancel64(sqe, rs_ud(RS_OP_RECV, c->slot, c->gen), 0);
}

/* Output queue. */
static void seg_release(struct rs_loop *loop, struct rs_seg *s)
{
    if (s->bid >= 0)
        rs_buf_unref(loop, (uint32_t)s->bid);
    else if (s->bid == RS_SEG_BLK)
        rs_blk_put(s->heap);
    else
        free(s->heap);
}

static int outq_push(struct rs_conn *c, struct rs_seg seg)
{
    struct rs_outq *q = &c->out;
    if (q->count == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 8;
        struct rs_seg *ns = malloc(cap * sizeof *ns);
        if (!ns) return -ENOMEM;
        for (uint32_t i = 0; i < q->count; i++) ns[i] = q->segs[(q->head + i) % q->cap];
        free(q->segs);
        q->segs = ns;
        q->head = 0;
        q->cap = cap;
    }
    q->segs[(q->head + q->count) % q->cap] = seg;
    q->count++;
    q->bytes += seg.len;
    return 0;
}

static void outq_consume(struct rs_conn *c, uint64_t n)
{
    struct rs_outq *q = &c->out;
    q->bytes -= n;
    while (n > 0 && q->count > 0) {
        struct rs_seg *s = &q->segs[q->head];
        if (s->len <= n) {
            n -= s->len;
            seg_release(c->loop, s);
            q->head = (q->head + 1) % q->cap;
            q->count--;
        } else {
            s->p += n;
            s->len -= (uint32_t)n;
            n = 0;
        }
    }
}

static void outq_clear(struct rs_conn *c)
{
    outq_consume(c, c->out.bytes);
    free(c->out.segs);
    c->out.segs = NULL;
    c->out.cap = c->out.head = c->out.count = 0;
    free(c->iov);
    c->iov = NULL;
}

void rs_conn_send_now(struct rs_conn *c)
{
    if (c->flags & (RS_CONN_SENDING | RS_CONN_CLOSED | RS_CONN_CONNECTING) || c->out.count == 0)
        return;
    struct iovec iov[8];
    struct rs_outq *q = &c->out;
    uint32_t n = q->count < 8 ? q->count : 8;
    for (uint32_t i = 0; i < n; i++) {
        const struct rs_seg *s = &q->segs[(q->head + i) % q->cap];
        iov[i] = (struct iovec){(void *)s->p, s->len};
    }
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = n};
    ssize_t sent = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent <= 0) return;
    outq_consume(c, (uint64_t)sent);
    c->tx_bytes += (uint64_t)sent;
    if (c->stats) rs_stat_add(c->stats, c->tx_stat, sent);
}

static void flush(struct rs_conn *c)
{
    if (c->flags & (RS_CONN_SENDING | RS_CONN_CLOSED | RS_CONN_CONNECTING) || c->out.count == 0)
        return;
    if (!c->iov) {
        c->iov = malloc(RS_IOV_MAX * sizeof *c->iov);
        if (!c->iov) {
            c->h->on_error(c, -ENOMEM);
            return;
        }
    }
    struct rs_outq *q = &c->out;
    uint32_t n = q->count < RS_IOV_MAX ? q->count : RS_IOV_MAX;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct rs_seg *s = &q->segs[(q->head + i) % q->cap];
        c->iov[i].iov_base = (void *)s->p;
        c->iov[i].iov_len = s->len;
        total += s->len;
    }
    memset(&c->msg, 0, sizeof c->msg);
    c->msg.msg_iov = c->iov;
    c->msg.msg_iovlen = n;
    c->flags |= RS_CONN_SENDING;
    bool zc = total >= rs_conn_zc_threshold && !(c->flags & RS_CONN_ZC_OFF);
    /* The last send before a close carries the FIN in its last segment. The send goes with
     * MSG_MORE, so its tail waits in the socket, and a shutdown linked to it then sets FIN on that
     * waiting segment and pushes it (tcp_send_fin): the peer sees the end of the response and of
     * the stream at once. Closing after the send's completion instead let a client that has its
     * whole response close first in about half the cases: a simultaneous close, TIME_WAIT on the
     * client's side as well, and a client opening connection after connection then pays for it
     * in connect()'s search for a free port. MSG_WAITALL makes the kernel finish a short send
     * before the link moves on (a short send would otherwise count as success and the FIN cut
     * the rest off); an error fails the link and the shutdown ends -ECANCELED. */
    bool fin = !zc && n == q->count && (c->flags & RS_CONN_CLOSE_AFTER_FLUSH);
    if (fin) rs_loop_sqe_reserve(c->loop, 2);
    int flags = MSG_NOSIGNAL | (fin ? MSG_WAITALL | MSG_MORE : 0);
    struct io_uring_sqe *sqe;
    if (zc) {
        sqe = conn_sqe(c, RS_OP_SEND_ZC);
        io_uring_prep_sendmsg_zc(sqe, c->fd, &c->msg, flags);
        sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
    } else if (n == 1) {
        /* one segment (a request head, a forwarded buffer): plain send, no msghdr to copy in */
        sqe = conn_sqe(c, RS_OP_SEND);
        io_uring_prep_send(sqe, c->fd, c->iov[0].iov_base, c->iov[0].iov_len, flags);
    } else {
        sqe = conn_sqe(c, RS_OP_SEND);
        io_uring_prep_sendmsg(sqe, c->fd, &c->msg, flags);
    }
    if (fin) {
        sqe->flags |= IOSQE_IO_LINK;
        sqe = conn_sqe(c, RS_OP_SHUTDOWN);
        io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
    }
}

int rs_conn_queue_wire(struct rs_conn *c, struct rs_seg *seg)
{
    if (seg->len == 0) {
        seg_release(c->loop, seg);
        return 0;
    }
    if (outq_push(c, *seg) != 0) {
        seg_release(c->loop, seg);
        return -ENOMEM;
    }
    /* Not sent yet: the caller usually queues more in the same turn (a head, then the body in
     * the buffer it came in), and one send of both costs the kernel one segment and the peer one
     * wake-up instead of two. */
    if (!(c->flags & RS_CONN_FLUSH_PENDING)) {
        c->flags |= RS_CONN_FLUSH_PENDING;
        c->next_flush = c->loop->flush_head;
        c->loop->flush_head = c;
    }
    return 0;
}

static int write_seg(struct rs_conn *c, struct rs_seg seg)
{
    return c->tp->write(c, &seg);
}

void rs_conn_deliver(struct rs_conn *c, int32_t bid, const char *data, size_t len)
{
    c->h->on_data(c, bid, data, len);
}

void rs_conn_deliver_eof(struct rs_conn *c)
{
    c->h->on_eof(c);
}

void rs_conn_inject(struct rs_conn *c, int32_t bid, const char *data, size_t len)
{
    if (c->flags & RS_CONN_CLOSED) return;
    if (c->stats) rs_stat_add(c->stats, c->rx_stat, (int64_t)len); /* rx_bytes has them */
    c->tp->on_recv(c, bid, data, len);
}

void rs_conn_count_bytes(struct rs_conn *c, struct rs_stats_shard *shard, rs_stat_id rx,
                         rs_stat_id tx)
{
    c->stats = shard;
    c->rx_stat = rx;
    c->tx_stat = tx;
}

void rs_conn_set_transport(struct rs_conn *c, const struct rs_transport *tp, void *state)
{
    c->tp = tp;
    c->tp_state = state;
}

/* The plain transport: bytes pass through untouched, received buffers by reference. */
static void plain_recv(struct rs_conn *c, int32_t bid, const char *data, size_t len)
{
    rs_conn_deliver(c, bid, data, len);
}

const struct rs_transport rs_transport_plain = {
    .name = "raw_buffer",
    .on_recv = plain_recv,
    .write = rs_conn_queue_wire,
    .on_eof = rs_conn_deliver_eof,
};

int rs_conn_write_buf(struct rs_conn *c, int32_t bid, const char *p, size_t len)
{
    if (bid < 0) return rs_conn_write_copy(c, p, len);
    rs_buf_ref(c->loop, (uint32_t)bid);
    return write_seg(c, (struct rs_seg){.p = p, .len = (uint32_t)len, .bid = bid});
}

int rs_conn_write_heap(struct rs_conn *c, void *p, size_t len)
{
    return write_seg(c, (struct rs_seg){.p = p, .len = (uint32_t)len, .bid = -1, .heap = p});
}

int rs_conn_write_blk(struct rs_conn *c, void *blk, size_t len)
{
    return write_seg(
        c, (struct rs_seg){.p = blk, .len = (uint32_t)len, .bid = RS_SEG_BLK, .heap = blk});
}

int rs_conn_write_copy(struct rs_conn *c, const void *p, size_t len)
{
    if (len == 0) return 0;
    void *m = malloc(len);
    if (!m) return -ENOMEM;
    memcpy(m, p, len);
    return rs_conn_write_heap(c, m, len);
}

int rs_conn_write_static(struct rs_conn *c, const void *p, size_t len)
{
    return write_seg(c, (struct rs_seg){.p = p, .len = (uint32_t)len, .bid = -1});
}

/* Connect with a linked timeout: the kernel cancels the connect when connect_timeout passes, and
 * the connect completes with -ECANCELED. */
int rs_conn_connect(struct rs_conn *c, const struct sockaddr *addr, socklen_t len,
                    uint32_t timeout_ms)
{
    if (len > sizeof c->peer) return -EINVAL;
    memcpy(&c->peer, addr, len);
    c->flags |= RS_CONN_CONNECTING;
    rs_loop_sqe_reserve(c->loop, 2); /* cut, the connect would end at once with -EINPROGRESS */
    struct io_uring_sqe *sqe = conn_sqe(c, RS_OP_CONNECT);
    io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&c->peer, len);
    sqe->flags |= IOSQE_IO_LINK;
    c->connect_ts.tv_sec = timeout_ms / 1000;
    c->connect_ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
    sqe = conn_sqe(c, RS_OP_LINK_TIMEOUT);
    io_uring_prep_link_timeout(sqe, &c->connect_ts, 0);
    return 0;
}

void rs_conn_shutdown_write(struct rs_conn *c)
{
    if (c->flags & RS_CONN_CLOSED) return;
    if (c->tp->shutdown)
        c->tp->shutdown(c);
    else
        rs_conn_shutdown_wire(c);
}

void rs_conn_shutdown_wire(struct rs_conn *c)
{
    if (c->flags & RS_CONN_CLOSED) return;
    c->flags |= RS_CONN_SHUT_WR;
    /* while connecting, the FIN waits for the connect (on_connect) */
    if (c->out.count == 0 && !(c->flags & (RS_CONN_SENDING | RS_CONN_CONNECTING)))
        shutdown(c->fd, SHUT_WR);
}

static void close_now(struct rs_conn *c)
{
    if (c->flags & RS_CONN_CLOSED) return;
    c->flags |= RS_CONN_CLOSED;
    c->h = &detached;
    c->owner = NULL;
    if (c->inflight) {
        /* every operation on this descriptor ends with -ECANCELED; the descriptor is closed only
         * when the last completion arrives, so its number cannot be reused under our feet */
        struct io_uring_sqe *sqe = conn_sqe(c, RS_OP_CANCEL);
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
    }
    c->next_closing = c->loop->closing;
    c->loop->closing = c;
}

void rs_conn_close(struct rs_conn *c)
{
    close_now(c);
}

void rs_conn_close_after_flush(struct rs_conn *c)
{
    if (c->flags & RS_CONN_CLOSED) return;
    if (c->out.count == 0 && !(c->flags & RS_CONN_SENDING)) {
        close_now(c);
        return;
    }
    c->flags |= RS_CONN_CLOSE_AFTER_FLUSH;
    c->h = &detached;
    c->owner = NULL;
    rs_conn_read_stop(c);
}

static void reap(struct rs_loop *loop, bool all)
{
    struct rs_conn **pp = &loop->closing;
    while (*pp) {
        struct rs_conn *c = *pp;
        if (c->inflight && !all) {
            pp = &c->next_closing;
            continue;
        }
        *pp = c->next_closing;
        if (c->flags & RS_CONN_NOBUF) {
            struct rs_conn **np = &loop->nobuf_head;
            while (*np && *np != c) np = &(*np)->next_nobuf;
            if (*np) *np = c->next_nobuf;
        }
        outq_clear(c);
        if (c->tp->destroy) c->tp->destroy(c);
        close(c->fd);
        slot_release(loop, c->slot);
        free(c);
    }
}

void rs_conn_reap(struct rs_loop *loop)
{
    reap(loop, false);
}

void rs_conn_reap_all(struct rs_loop *loop)
{
    loop->flush_head = NULL; /* the loop has stopped: nothing more is sent */
    reap(loop, true);
}

void rs_conn_flush_pending(struct rs_loop *loop)
{
    /* flushing adds nothing to the list (only queue_wire does): one pass empties it */
    struct rs_conn *list = loop->flush_head;
    loop->flush_head = NULL;
    while (list) {
        struct rs_conn *c = list;
        list = c->next_flush;
        c->next_flush = NULL;
        c->flags &= ~RS_CONN_FLUSH_PENDING;
        flush(c);
    }
}

void rs_conn_retry_nobuf(struct rs_loop *loop)
{
    struct rs_conn *list = loop->nobuf_head;
    loop->nobuf_head = NULL;
    while (list) {
        struct rs_conn *c = list;
        list = c->next_nobuf;
        c->flags &= ~RS_CONN_NOBUF;
        c->next_nobuf = NULL;
        if (c->flags & RS_CONN_WANT_READ) arm_recv(c);
    }
}

static void on_recv(struct rs_conn *c, struct io_uring_cqe *cqe)
{
    struct rs_loop *loop = c->loop;
    int res = cqe->res;
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (res > 0) {
        uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        rs_buf_take(loop, bid);
        c->rx_bytes += (uint64_t)res;
        if (c->stats) rs_stat_add(c->stats, c->rx_stat, res);
        c->tp->on_recv(c, (int32_t)bid, rs_buf_data(loop, bid), (size_t)res);
        rs_buf_unref(loop, bid);
    } else if (res == 0) {
        c->flags |= RS_CONN_EOF;
    }
    if (more) return;
    c->flags &= ~(RS_CONN_RECV_ARMED | RS_CONN_CANCEL_SENT);
    if (c->flags & RS_CONN_CLOSED) return;
    if (res == 0) {
        c->tp->on_eof(c);
    } else if (res == -ENOBUFS) {
        /* the ring ran dry: wait for buffers to come back rather than spin */
        c->flags |= RS_CONN_NOBUF;
        c->next_nobuf = loop->nobuf_head;
        loop->nobuf_head = c;
    } else if (res < 0 && res != -ECANCELED) {
        c->h->on_error(c, res);
    } else if (c->flags & RS_CONN_WANT_READ) {
        arm_recv(c);
    }
}

static void after_send(struct rs_conn *c, uint64_t sent)
{
    outq_consume(c, sent);
    c->tx_bytes += sent;
    if (c->stats) rs_stat_add(c->stats, c->tx_stat, (int64_t)sent);
    if (c->flags & RS_CONN_CLOSED) return;
    if (c->out.count) {
        flush(c);
        return;
    }
    if (c->flags & RS_CONN_CLOSE_AFTER_FLUSH) {
        close_now(c);
        return;
    }
    if (c->flags & RS_CONN_SHUT_WR) shutdown(c->fd, SHUT_WR);
    c->h->on_drained(c);
}

static void on_send(struct rs_conn *c, struct io_uring_cqe *cqe)
{
    c->flags &= ~RS_CONN_SENDING;
    if (cqe->res < 0) {
        if (c->flags & RS_CONN_CLOSE_AFTER_FLUSH)
            close_now(c);
        else if (!(c->flags & RS_CONN_CLOSED))
            c->h->on_error(c, cqe->res);
        return;
    }
    after_send(c, (uint64_t)cqe->res);
}

/* A zero-copy send completes twice: the result, then (F_MORE) a notification once the kernel no
 * longer reads our memory. Only then may the segments go back to their owners. */
static void on_send_zc(struct rs_conn *c, struct io_uring_cqe *cqe)
{
    if (cqe->flags & IORING_CQE_F_NOTIF) {
        if ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED) c->flags |= RS_CONN_ZC_OFF;
        c->flags &= ~RS_CONN_SENDING;
        if (c->flags & RS_CONN_CLOSED) return;
        after_send(c, c->zc_bytes);
        return;
    }
    if (cqe->res < 0) {
        /* the segments stay queued until the connection is reaped, after the notification */
        if (cqe->flags & IORING_CQE_F_MORE) c->inflight++;
        c->zc_bytes = 0;
        if (c->flags & RS_CONN_CLOSE_AFTER_FLUSH)
            close_now(c);
        else if (!(c->flags & RS_CONN_CLOSED))
            c->h->on_error(c, cqe->res);
        return;
    }
    c->zc_bytes = (uint64_t)cqe->res;
    if (cqe->flags & IORING_CQE_F_MORE) {
        c->inflight++; /* the notification is still to come */
        return;
    }
    c->flags &= ~RS_CONN_SENDING;
    after_send(c, c->zc_bytes);
}

static void on_connect(struct rs_conn *c, int res)
{
    c->flags &= ~RS_CONN_CONNECTING;
    if (c->flags & RS_CONN_CLOSED) return;
    if (res == -ECANCELED) res = -ETIMEDOUT;
    c->h->on_connected(c, res);
    if (res != 0 || (c->flags & RS_CONN_CLOSED)) return;
    if (c->out.count)
        flush(c);
    else if (c->flags & RS_CONN_SHUT_WR)
        shutdown(c->fd, SHUT_WR);
}

static void on_accept(struct rs_conn *c, struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) c->flags &= ~RS_CONN_RECV_ARMED;
    if (c->flags & RS_CONN_CLOSED) {
        if (cqe->res >= 0) close(cqe->res);
        return;
    }
    if (cqe->res >= 0) {
        c->h->on_accept(c, cqe->res, 0);
        if (!more && !(c->flags & RS_CONN_CLOSED)) rs_conn_accept_start(c);
    } else if (cqe->res != -ECANCELED) {
        c->h->on_accept(c, -1, cqe->res); /* the listener decides when to accept again */
    }
}

void rs_conn_dispatch(struct rs_loop *loop, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    uint32_t slot = rs_ud_slot(ud);
    if (slot >= loop->slot_cap || !loop->slots[slot] || loop->slot_gen[slot] != rs_ud_gen(ud)) {
        rs_debug("worker %d: stale completion op %d slot %u", loop->worker_id, rs_ud_op(ud), slot);
        /* a receive into a buffer for a connection gone since: the buffer still comes back */
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            rs_buf_take(loop, bid);
            rs_buf_unref(loop, bid);
        }
        return;
    }
    struct rs_conn *c = loop->slots[slot];
    c->inflight--;
    switch (rs_ud_op(ud)) {
    case RS_OP_RECV:
        if (cqe->flags & IORING_CQE_F_MORE) c->inflight++;
        on_recv(c, cqe);
        break;
    case RS_OP_ACCEPT:
        if (cqe->flags & IORING_CQE_F_MORE) c->inflight++;
        on_accept(c, cqe);
        break;
    case RS_OP_SEND:
        on_send(c, cqe);
        break;
    case RS_OP_SEND_ZC:
        on_send_zc(c, cqe);
        break;
    case RS_OP_CONNECT:
        on_connect(c, cqe->res);
        break;
    case RS_OP_LINK_TIMEOUT:
    case RS_OP_CANCEL:
    default:
        break;
    }
}
