/* The per-worker event loop: one io_uring, a provided-buffer ring for receives, a timer heap, and
 * the table of connection slots that completions are dispatched to.
 *
 * user_data of every submission is (slot << 32 | generation << 8 | op): a completion whose slot was
 * reused since (generation differs) is stale and dropped. */
#ifndef RS_LOOP_H
#define RS_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct rs_conn;
struct rs_loop;

enum rs_op {
    RS_OP_NONE = 0,
    RS_OP_ACCEPT,
    RS_OP_RECV,
    RS_OP_SEND,
    RS_OP_SEND_ZC,
    RS_OP_CONNECT,
    RS_OP_LINK_TIMEOUT,
    RS_OP_CANCEL,
    RS_OP_WAKE,
    RS_OP_SHUTDOWN,
};

static inline uint64_t rs_ud(enum rs_op op, uint32_t slot, uint32_t gen)
{
    return ((uint64_t)slot << 32) | ((uint64_t)(gen & 0xffffff) << 8) | (uint64_t)op;
}
static inline enum rs_op rs_ud_op(uint64_t ud)
{
    return (enum rs_op)(ud & 0xff);
}
static inline uint32_t rs_ud_slot(uint64_t ud)
{
    return (uint32_t)(ud >> 32);
}
static inline uint32_t rs_ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 8) & 0xffffff;
}

/* Timers: a binary min-heap of deadlines (ms on the loop's monotonic clock). */
struct rs_timer {
    uint64_t deadline;
    uint32_t heap_idx; /* 0 = not armed */
    void (*cb)(struct rs_loop *loop, struct rs_timer *t);
};

/* Received buffers come from one provided-buffer ring per worker. A buffer is referenced by
 * whatever still points into it (a queued send, a paused parser) and returns to the pool when the
 * last reference goes.
 *
 * The kernel's ring is FIFO: with every free buffer in it, any steady stream of receives cycles
 * through all of them and every buffer's pages become resident. So only `target` buffers are
 * published to the kernel at a time; free ones wait on a LIFO stack and the most recently used go
 * back first, which keeps the touched set near target plus what is held. target doubles when a
 * loop turn uses half of it (or a receive ran dry) and halves when the busiest turn of a sweep
 * interval used an eighth. Each sweep (rs_loop_bufs_sweep, every RS_BUF_SWEEP_MS) gives back
 * the pages of free buffers not used since the previous one (MADV_DONTNEED). */
#define RS_BUF_MIN_TARGET 64
#define RS_BUF_SWEEP_MS 1000
struct rs_bufring {
    struct io_uring_buf_ring *ring;
    char *base;
    uint16_t *refs;
    uint32_t *used;  /* sweep epoch of the buffer's last receive; 0 = pages given back */
    uint16_t *stack; /* free buffers not in the ring; the top was freed last */
    uint32_t depth;
    uint32_t nbufs, bufsize, mask;
    uint32_t pending_adds; /* buffers added since the last advance */
    uint32_t in_use;       /* referenced (received into, not yet released) */
    uint32_t published;    /* in the kernel's ring */
    uint32_t target;       /* how many the ring is topped up to */
    uint32_t turn_taken;   /* received into since the last top-up */
    uint32_t turn_peak;    /* the most turn_taken reached since the last sweep */
    uint32_t epoch;
    bool may_release_published; /* only our thread's io_uring_enter writes into buffers */
    struct rs_timer sweep;
    uint64_t released_bytes; /* given back by sweeps, in total */
};

struct rs_loop {
    struct io_uring ring;
    struct rs_bufring br;
    uint64_t now_ms; /* monotonic, refreshed once per batch */
    int worker_id;
    void *worker; /* the owning worker */

    struct rs_conn **slots;
    uint32_t *slot_gen;
    uint32_t nslots, slot_cap;
    uint32_t *free_slots;
    uint32_t nfree;

    struct rs_timer **heap; /* 1-based */
    uint32_t heap_len, heap_cap;

    struct rs_conn *closing;    /* closed conns waiting for their last completion */
    struct rs_conn *nobuf_head; /* conns whose receive stopped for lack of buffers */
    struct rs_conn *flush_head; /* conns with output queued this turn, sent at its end */
    int wake_fd;
    uint64_t wake_val;
    bool stop;
    uint64_t cqes, batches;
};

/* Creates the ring (SINGLE_ISSUER|DEFER_TASKRUN where the kernel has them) and the buffer ring of
 * nbufs buffers of bufsize bytes (both powers of two). */
int rs_loop_init(struct rs_loop *loop, int worker_id, uint32_t entries, uint32_t nbufs,
                 uint32_t bufsize);
void rs_loop_destroy(struct rs_loop *loop);

/* Runs until loop->stop. Each turn: submit, wait for at least one completion or the nearest
 * timer, drain the whole batch, run expired timers, reap closed connections. */
void rs_loop_run(struct rs_loop *loop, void (*on_turn)(struct rs_loop *loop));

/* An SQE, submitting first if the SQ is full; never NULL. */
struct io_uring_sqe *rs_loop_sqe(struct rs_loop *loop);
/* Makes room for n SQEs taken next, submitting first if there is less: a chain of linked SQEs
 * must reach the kernel in one submission (a chain cut by a submission between its entries ends
 * at the cut: the first op runs unlinked, the next fails -EINVAL). */
void rs_loop_sqe_reserve(struct rs_loop *loop, unsigned n);

/* Wakes the loop from another thread (it runs on_turn soon after). */
void rs_loop_wake(struct rs_loop *loop);

uint64_t rs_now_ms(void);
/* Monotonic microseconds, for durations (wall time only for timestamps). */
uint64_t rs_now_us(void);

void rs_timer_arm(struct rs_loop *loop, struct rs_timer *t, uint64_t after_ms);
void rs_timer_cancel(struct rs_loop *loop, struct rs_timer *t);
/* Makes t fire no later than after_ms from now, keeping an earlier deadline as it is. For lazy
 * timers, whose callback checks the real deadline (stamped on activity) and re-arms for what is
 * left: a keep-alive request then costs no heap operation for its idle or response deadlines. */
void rs_timer_arm_by(struct rs_loop *loop, struct rs_timer *t, uint64_t after_ms);
static inline bool rs_timer_armed(const struct rs_timer *t)
{
    return t->heap_idx != 0;
}

/* Buffer references. */
static inline char *rs_buf_data(struct rs_loop *loop, uint32_t bid)
{
    return loop->br.base + (size_t)bid * loop->br.bufsize;
}
/* A receive's completion delivered buffer bid (IORING_CQE_F_BUFFER): it now holds one reference. */
void rs_buf_take(struct rs_loop *loop, uint32_t bid);
void rs_buf_ref(struct rs_loop *loop, uint32_t bid);
/* A free buffer the kernel does not hold, for the loop's own writing (TLS decrypts into it), with
 * one reference; -1 when every buffer is in use. */
int32_t rs_buf_alloc(struct rs_loop *loop);
void rs_buf_unref(struct rs_loop *loop, uint32_t bid);
/* After a loop turn (called by the loop; public for tests): sizes target, tops the kernel's ring
 * up to it from the free stack and re-arms receives that ran dry. */
void rs_loop_bufs_flush(struct rs_loop *loop);
/* Gives back the pages of free buffers unused for a sweep interval and shrinks target (called by
 * the loop's timer; public for tests). */
void rs_loop_bufs_sweep(struct rs_loop *loop);

#endif
