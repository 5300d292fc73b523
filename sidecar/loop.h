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
 * whatever still points into it (a queued send, a paused parser) and returns to the ring when the
 * last reference goes. */
struct rs_bufring {
    struct io_uring_buf_ring *ring;
    char *base;
    uint16_t *refs;
    uint32_t nbufs, bufsize, mask;
    uint32_t pending_adds; /* buffers added since the last advance */
    uint32_t in_use;
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
void rs_buf_ref(struct rs_loop *loop, uint32_t bid);
void rs_buf_unref(struct rs_loop *loop, uint32_t bid);

#endif
