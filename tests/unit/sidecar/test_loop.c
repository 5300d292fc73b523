/* The loop's provided-buffer pool: only a small set of buffers is touched under a steady stream,
 * idle buffers' pages are given back, and the published target follows demand. Real receives on a
 * socketpair through the loop's ring, so the kernel's FIFO consumption is what is tested. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sidecar/loop.h"
#include "test.h"

#define NBUFS 1024
#define BUFSIZE (16 * 1024)

struct rig {
    struct rs_loop loop;
    int fds[2]; /* [0] receives through the ring, [1] writes */
    uint8_t seen[NBUFS];
    uint32_t seq;
};

static int rig_init(struct rig *r)
{
    memset(r, 0, sizeof *r);
    if (rs_loop_init(&r->loop, 0, 64, NBUFS, BUFSIZE) != 0) return -1;
    return socketpair(AF_UNIX, SOCK_STREAM, 0, r->fds);
}

static void rig_destroy(struct rig *r)
{
    close(r->fds[0]);
    close(r->fds[1]);
    rs_loop_destroy(&r->loop);
}

/* One receive of a 100-byte message into a ring buffer; returns its id (holding one reference) or
 * -1. The message's bytes are checked. */
static int recv_one(struct rig *r)
{
    char msg[100];
    memset(msg, 'a' + (int)(r->seq++ % 26), sizeof msg);
    if (write(r->fds[1], msg, sizeof msg) != (ssize_t)sizeof msg) return -1;
    struct io_uring_sqe *sqe = rs_loop_sqe(&r->loop);
    io_uring_prep_recv(sqe, r->fds[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0; /* the loop's buffer group */
    io_uring_sqe_set_data64(sqe, 1);
    struct io_uring_cqe *cqe;
    if (io_uring_submit_and_wait(&r->loop.ring, 1) < 0) return -1;
    if (io_uring_peek_cqe(&r->loop.ring, &cqe) != 0) return -1;
    int res = cqe->res;
    bool has_buf = cqe->flags & IORING_CQE_F_BUFFER;
    uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    io_uring_cqe_seen(&r->loop.ring, cqe);
    if (res != (int)sizeof msg || !has_buf) return -1;
    rs_buf_take(&r->loop, bid);
    r->seen[bid] = 1;
    if (memcmp(rs_buf_data(&r->loop, bid), msg, sizeof msg) != 0) return -1;
    return (int)bid;
}

static int distinct(const struct rig *r)
{
    int n = 0;
    for (int i = 0; i < NBUFS; i++) n += r->seen[i];
    return n;
}

/* Resident pages of the buffer area. */
static int resident_pages(struct rig *r)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = (size_t)NBUFS * BUFSIZE;
    unsigned char *vec = malloc(len / page);
    if (!vec || mincore(r->loop.br.base, len, vec) != 0) {
        free(vec);
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < len / page; i++) n += vec[i] & 1;
    free(vec);
    return n;
}

static void test_steady_stream_touches_few_buffers(void)
{
    struct rig r;
    CHECK(rig_init(&r) == 0);
    CHECK_EQ_INT(r.loop.br.published, RS_BUF_MIN_TARGET);
    CHECK_EQ_INT(resident_pages(&r), 0);
    /* one receive per turn, released in it: a FIFO of every free buffer would walk all 1024 */
    bool ok = true;
    for (int i = 0; i < 3000 && ok; i++) {
        int bid = recv_one(&r);
        ok = bid >= 0;
        if (ok) rs_buf_unref(&r.loop, (uint32_t)bid);
        rs_loop_bufs_flush(&r.loop);
    }
    CHECK(ok);
    CHECK_EQ_INT(r.loop.br.target, RS_BUF_MIN_TARGET);
    CHECK_EQ_INT(r.loop.br.published, RS_BUF_MIN_TARGET);
    CHECK(distinct(&r) <= RS_BUF_MIN_TARGET);
    int pages = resident_pages(&r);
    CHECK(pages > 0 && pages <= RS_BUF_MIN_TARGET); /* 100 bytes touch one page per buffer */
    rig_destroy(&r);
}

static void test_idle_pages_given_back(void)
{
    struct rig r;
    CHECK(rig_init(&r) == 0);
    for (int i = 0; i < 200; i++) {
        int bid = recv_one(&r);
        CHECK(bid >= 0);
        if (bid < 0) break;
        rs_buf_unref(&r.loop, (uint32_t)bid);
        rs_loop_bufs_flush(&r.loop);
    }
    CHECK(resident_pages(&r) > 0);
    rs_loop_bufs_sweep(&r.loop); /* used in this interval: kept */
    CHECK(resident_pages(&r) > 0);
    rs_loop_bufs_sweep(&r.loop); /* a whole interval unused: given back, in the ring or not */
    CHECK_EQ_INT(resident_pages(&r), 0);
    CHECK(r.loop.br.released_bytes > 0);
    /* a released buffer still in the kernel's ring receives correctly */
    int bid = recv_one(&r);
    CHECK(bid >= 0);
    if (bid >= 0) rs_buf_unref(&r.loop, (uint32_t)bid);
    rig_destroy(&r);
}

static void test_target_follows_demand(void)
{
    struct rig r;
    CHECK(rig_init(&r) == 0);
    /* a turn that uses more than half the published buffers doubles the target */
    int held[40], n = 0;
    for (; n < 40; n++) {
        held[n] = recv_one(&r);
        if (held[n] < 0) break;
    }
    CHECK_EQ_INT(n, 40);
    rs_loop_bufs_flush(&r.loop);
    CHECK_EQ_INT(r.loop.br.target, 2 * RS_BUF_MIN_TARGET);
    CHECK_EQ_INT(r.loop.br.published, 2 * RS_BUF_MIN_TARGET);
    CHECK_EQ_INT(r.loop.br.in_use, 40);
    for (int i = 0; i < n; i++) rs_buf_unref(&r.loop, (uint32_t)held[i]);
    CHECK_EQ_INT(r.loop.br.in_use, 0);
    /* an interval whose busiest turn used an eighth or less halves it, down to the floor */
    rs_loop_bufs_sweep(&r.loop); /* this interval's peak was the 40 */
    CHECK_EQ_INT(r.loop.br.target, 2 * RS_BUF_MIN_TARGET);
    rs_loop_bufs_sweep(&r.loop);
    CHECK_EQ_INT(r.loop.br.target, RS_BUF_MIN_TARGET);
    rs_loop_bufs_sweep(&r.loop);
    CHECK_EQ_INT(r.loop.br.target, RS_BUF_MIN_TARGET);
    rig_destroy(&r);
}

RUN_TESTS(TEST_CASE(test_steady_stream_touches_few_buffers), TEST_CASE(test_idle_pages_given_back),
          TEST_CASE(test_target_follows_demand))
