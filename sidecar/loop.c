/* The per-worker io_uring loop: ring and buffer-ring set-up, batch dispatch, timers, wake-ups. */
#include "sidecar/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "sidecar/conn.h"
#include "sidecar/log.h"

#define RS_BGID 0

uint64_t rs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t rs_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void sweep_timer(struct rs_loop *loop, struct rs_timer *t);

static int bufring_init(struct rs_loop *loop, uint32_t nbufs, uint32_t bufsize)
{
    struct rs_bufring *br = &loop->br;
    size_t ring_bytes = nbufs * sizeof(struct io_uring_buf);
    void *ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring == MAP_FAILED) return -errno;
    /* The buffers themselves are mapped lazily: pages cost memory only once data lands in them. */
    char *base = mmap(NULL, (size_t)nbufs * bufsize, PROT_READ | PROT_WRITE,
                      MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        munmap(ring, ring_bytes);
        return -errno;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)ring, .ring_entries = nbufs, .bgid = RS_BGID};
    int ret = io_uring_register_buf_ring(&loop->ring, &reg, 0);
    if (ret) {
        munmap(ring, ring_bytes);
        munmap(base, (size_t)nbufs * bufsize);
        return ret;
    }
    br->ring = ring;
    br->base = base;
    br->nbufs = nbufs;
    br->bufsize = bufsize;
    br->mask = io_uring_buf_ring_mask(nbufs);
    br->refs = calloc(nbufs, sizeof *br->refs);
    br->used = calloc(nbufs, sizeof *br->used);
    br->stack = malloc(nbufs * sizeof *br->stack);
    if (!br->refs || !br->used || !br->stack) return -ENOMEM;
    br->epoch = 1;
    br->target = nbufs < RS_BUF_MIN_TARGET ? nbufs : RS_BUF_MIN_TARGET;
    /* With DEFER_TASKRUN the kernel fills buffers only inside this thread's io_uring_enter, so a
     * published buffer's pages can be given back between two enters without racing a receive. */
    br->may_release_published = loop->ring.flags & IORING_SETUP_DEFER_TASKRUN;
    br->sweep.cb = sweep_timer;
    io_uring_buf_ring_init(br->ring);
    /* the stack pops the lowest ids first: the touched part of the mapping stays compact */
    for (uint32_t i = 0; i < nbufs; i++) br->stack[i] = (uint16_t)(nbufs - 1 - i);
    br->depth = nbufs;
    rs_loop_bufs_flush(loop);
    return 0;
}

int rs_loop_init(struct rs_loop *loop, int worker_id, uint32_t entries, uint32_t nbufs,
                 uint32_t bufsize)
{
    memset(loop, 0, sizeof *loop);
    loop->worker_id = worker_id;
    loop->wake_fd = -1;
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.flags |= IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 8;
    int ret = io_uring_queue_init_params(entries, &loop->ring, &p);
    if (ret == -EINVAL) {
        /* older kernels: without DEFER_TASKRUN/SINGLE_ISSUER */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 8;
        ret = io_uring_queue_init_params(entries, &loop->ring, &p);
    }
    if (ret) return ret;
    ret = bufring_init(loop, nbufs, bufsize);
    if (ret) {
        io_uring_queue_exit(&loop->ring);
        return ret;
    }
    loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wake_fd < 0) return -errno;
    loop->now_ms = rs_now_ms();
    return 0;
}

void rs_loop_destroy(struct rs_loop *loop)
{
    io_uring_queue_exit(&loop->ring);
    if (loop->br.base) munmap(loop->br.base, (size_t)loop->br.nbufs * loop->br.bufsize);
    if (loop->br.ring) munmap(loop->br.ring, loop->br.nbufs * sizeof(struct io_uring_buf));
    free(loop->br.refs);
    free(loop->br.used);
    free(loop->br.stack);
    if (loop->wake_fd >= 0) close(loop->wake_fd);
    free(loop->slots);
    free(loop->slot_gen);
    free(loop->free_slots);
    free(loop->heap);
}

struct io_uring_sqe *rs_loop_sqe(struct rs_loop *loop)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
    while (!sqe) {
        io_uring_submit(&loop->ring);
        sqe = io_uring_get_sqe(&loop->ring);
    }
    return sqe;
}

void rs_loop_sqe_reserve(struct rs_loop *loop, unsigned n)
{
    if (io_uring_sq_space_left(&loop->ring) < n) io_uring_submit(&loop->ring);
}

void rs_loop_wake(struct rs_loop *loop)
{
    uint64_t one = 1;
    ssize_t w = write(loop->wake_fd, &one, sizeof one);
    (void)w;
}

static void arm_wake(struct rs_loop *loop)
{
    struct io_uring_sqe *sqe = rs_loop_sqe(loop);
    io_uring_prep_read(sqe, loop->wake_fd, &loop->wake_val, sizeof loop->wake_val, 0);
    io_uring_sqe_set_data64(sqe, rs_ud(RS_OP_WAKE, 0, 0));
}

/* Buffers: a reference count per buffer; the last unref puts it on the free stack, and the ring
 * is topped up from the stack once per turn, its tail advanced once. */
void rs_buf_take(struct rs_loop *loop, uint32_t bid)
{
    struct rs_bufring *br = &loop->br;
    br->refs[bid] = 1;
    br->used[bid] = br->epoch;
    br->in_use++;
    br->published--;
    br->turn_taken++;
}

void rs_buf_ref(struct rs_loop *loop, uint32_t bid)
{
    loop->br.refs[bid]++;
}

int32_t rs_buf_alloc(struct rs_loop *loop)
{
    struct rs_bufring *br = &loop->br;
    if (br->depth == 0) return -1;
    uint32_t bid = br->stack[--br->depth];
    br->refs[bid] = 1;
    br->used[bid] = br->epoch;
    br->in_use++;
    return (int32_t)bid;
}

void rs_buf_unref(struct rs_loop *loop, uint32_t bid)
{
    struct rs_bufring *br = &loop->br;
    if (--br->refs[bid] != 0) return;
    br->stack[br->depth++] = (uint16_t)bid;
    br->in_use--;
}

void rs_loop_bufs_flush(struct rs_loop *loop)
{
    struct rs_bufring *br = &loop->br;
    if (br->turn_taken > br->turn_peak) br->turn_peak = br->turn_taken;
    /* Grow before the ring runs dry: a receive that meets an empty ring ends with -ENOBUFS and
     * costs a re-arm and a turn of latency. */
    if ((br->turn_taken * 2 > br->target || loop->nobuf_head) && br->target < br->nbufs)
        br->target *= 2;
    br->turn_taken = 0;
    uint32_t add = 0;
    while (br->published + add < br->target && br->depth) {
        uint32_t bid = br->stack[--br->depth];
        io_uring_buf_ring_add(br->ring, rs_buf_data(loop, bid), br->bufsize, (uint16_t)bid,
                              br->mask, (int)add);
        add++;
    }
    if (add) {
        io_uring_buf_ring_advance(br->ring, (int)add);
        br->published += add;
    }
    /* A receive that ran out of buffers is re-armed whenever the ring has some again, not only
     * when some came back this turn: its -ENOBUFS may be read turns after the buffers returned,
     * and waiting for the next return could wait for ever on an otherwise idle worker. */
    if (loop->nobuf_head && br->published) rs_conn_retry_nobuf(loop);
    if (!rs_timer_armed(&br->sweep) && br->turn_peak)
        rs_timer_arm(loop, &br->sweep, RS_BUF_SWEEP_MS);
}

/* Marks free buffer bid for release if no receive used it in this sweep interval. */
static void mark_cold(struct rs_bufring *br, uint32_t bid)
{
    if (br->used[bid] != 0 && br->used[bid] != br->epoch) br->used[bid] = UINT32_MAX;
}

void rs_loop_bufs_sweep(struct rs_loop *loop)
{
    struct rs_bufring *br = &loop->br;
    for (uint32_t i = 0; i < br->depth; i++) mark_cold(br, br->stack[i]);
    /* The ring holds the last `published` buffers added, behind its tail. A completion not yet
     * read (or held back in the kernel's overflow list) may point into one of them: then leave the
     * ring alone this time. */
    if (br->may_release_published && !io_uring_cq_ready(&loop->ring) &&
        !io_uring_cq_has_overflow(&loop->ring)) {
        uint16_t tail = br->ring->tail;
        for (uint32_t i = 1; i <= br->published; i++)
            mark_cold(br, br->ring->bufs[(uint16_t)(tail - i) & br->mask].bid);
    }
    /* one madvise per run of adjacent buffers */
    for (uint32_t bid = 0; bid < br->nbufs;) {
        if (br->used[bid] != UINT32_MAX) {
            bid++;
            continue;
        }
        uint32_t end = bid;
        while (end < br->nbufs && br->used[end] == UINT32_MAX) br->used[end++] = 0;
        size_t len = (size_t)(end - bid) * br->bufsize;
        if (madvise(rs_buf_data(loop, bid), len, MADV_DONTNEED) == 0) br->released_bytes += len;
        bid = end;
    }
    if (br->turn_peak * 8 <= br->target && br->target > RS_BUF_MIN_TARGET) br->target /= 2;
    br->turn_peak = 0;
    br->epoch = br->epoch == UINT32_MAX - 1 ? 1 : br->epoch + 1;
}

/* Re-armed while anything may still be given back: buffers used since the last sweep, or a
 * target above its floor. An idle worker stops sweeping until the next receive. */
static void sweep_timer(struct rs_loop *loop, struct rs_timer *t)
{
    struct rs_bufring *br = &loop->br;
    bool busy = br->turn_peak != 0;
    rs_loop_bufs_sweep(loop);
    if (busy || br->target > RS_BUF_MIN_TARGET) rs_timer_arm(loop, t, RS_BUF_SWEEP_MS);
}

/* Timer heap. */
static void heap_swap(struct rs_loop *loop, uint32_t a, uint32_t b)
{
    struct rs_timer *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_idx = a;
    loop->heap[b]->heap_idx = b;
}

static void heap_up(struct rs_loop *loop, uint32_t i)
{
    while (i > 1 && loop->heap[i / 2]->deadline > loop->heap[i]->deadline) {
        heap_swap(loop, i, i / 2);
        i /= 2;
    }
}

static void heap_down(struct rs_loop *loop, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i, r = l + 1, m = i;
        if (l <= loop->heap_len && loop->heap[l]->deadline < loop->heap[m]->deadline) m = l;
        if (r <= loop->heap_len && loop->heap[r]->deadline < loop->heap[m]->deadline) m = r;
        if (m == i) return;
        heap_swap(loop, i, m);
        i = m;
    }
}

void rs_timer_cancel(struct rs_loop *loop, struct rs_timer *t)
{
    uint32_t i = t->heap_idx;
    if (!i) return;
    t->heap_idx = 0;
    if (i != loop->heap_len) {
        struct rs_timer *moved = loop->heap[loop->heap_len];
        loop->heap[i] = moved;
        moved->heap_idx = i;
        loop->heap_len--;
        heap_up(loop, i);
        heap_down(loop, moved->heap_idx);
    } else {
        loop->heap_len--;
    }
}

void rs_timer_arm(struct rs_loop *loop, struct rs_timer *t, uint64_t after_ms)
{
    rs_timer_cancel(loop, t);
    if (loop->heap_len + 1 >= loop->heap_cap) {
        uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 1024;
        struct rs_timer **nh = realloc(loop->heap, cap * sizeof *nh);
        if (!nh) abort(); /* bounded by connections; treated like a control-path OOM */
        loop->heap = nh;
        loop->heap_cap = cap;
    }
    t->deadline = loop->now_ms + after_ms;
    t->heap_idx = ++loop->heap_len;
    loop->heap[t->heap_idx] = t;
    heap_up(loop, t->heap_idx);
}

void rs_timer_arm_by(struct rs_loop *loop, struct rs_timer *t, uint64_t after_ms)
{
    if (t->heap_idx && t->deadline <= loop->now_ms + after_ms) return;
    rs_timer_arm(loop, t, after_ms);
}

static void run_timers(struct rs_loop *loop)
{
    /* bounded: each timer fires once per turn; re-armed ones land in the future */
    uint32_t budget = loop->heap_len;
    while (budget-- && loop->heap_len && loop->heap[1]->deadline <= loop->now_ms) {
        struct rs_timer *t = loop->heap[1];
        rs_timer_cancel(loop, t);
        t->cb(loop, t);
    }
}

static void dispatch(struct rs_loop *loop, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    switch (rs_ud_op(ud)) {
    case RS_OP_WAKE:
        arm_wake(loop);
        break;
    case RS_OP_NONE:
        break;
    default:
        rs_conn_dispatch(loop, cqe);
    }
}

void rs_loop_run(struct rs_loop *loop, void (*on_turn)(struct rs_loop *loop))
{
    arm_wake(loop);
    while (!loop->stop) {
        struct __kernel_timespec ts, *tsp = NULL;
        if (loop->heap_len) {
            uint64_t now = rs_now_ms();
            uint64_t d = loop->heap[1]->deadline > now ? loop->heap[1]->deadline - now : 0;
            ts.tv_sec = (long long)(d / 1000);
            ts.tv_nsec = (long long)(d % 1000) * 1000000;
            tsp = &ts;
        }
        struct io_uring_cqe *cqe;
        int ret = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, tsp, NULL);
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY)
            rs_error("worker %d: io_uring wait failed: %s", loop->worker_id, strerror(-ret));
        loop->now_ms = rs_now_ms();
        unsigned head, n = 0;
        io_uring_for_each_cqe(&loop->ring, head, cqe)
        {
            dispatch(loop, cqe);
            n++;
        }
        io_uring_cq_advance(&loop->ring, n);
        loop->cqes += n;
        loop->batches++;
        run_timers(loop);
        if (on_turn) on_turn(loop);
        rs_conn_flush_pending(loop);
        rs_conn_reap(loop);
        rs_loop_bufs_flush(loop);
    }
}
