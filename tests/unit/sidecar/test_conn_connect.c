/* rs_conn_connect's timeout holds whatever room is left in the submission queue: the connect and
 * its linked timeout must reach the kernel in the same submission, or the link is cut (the connect
 * runs with no timeout, the timeout alone fails with -EINVAL). A connect toward a listener whose
 * accept queue is full (its SYNs are dropped) must end with -ETIMEDOUT after connect_timeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sidecar/conn.h"
#include "sidecar/loop.h"
#include "test.h"

#define TIMEOUT_MS 200

struct result {
    bool done;
    int err;
    uint64_t at_ms;
};

static void on_connected(struct rs_conn *c, int err)
{
    struct result *r = c->owner;
    r->done = true;
    r->err = err;
    r->at_ms = rs_now_ms();
    c->loop->stop = true;
}

static const struct rs_conn_handler handler = {.on_connected = on_connected};

static void on_deadline(struct rs_loop *loop, struct rs_timer *t)
{
    (void)t;
    loop->stop = true;
}

/* A listener with a full accept queue (backlog 0, one connection queued and never accepted):
 * the kernel drops further SYNs, so a connect to it stays pending until it is timed out. */
static int full_listener(struct sockaddr_in *addr, int *queued)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof *addr;
    if (l < 0 || bind(l, (struct sockaddr *)addr, len) != 0 || listen(l, 0) != 0 ||
        getsockname(l, (struct sockaddr *)addr, &len) != 0)
        return -1;
    *queued = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*queued, (struct sockaddr *)addr, sizeof *addr) != 0) return -1;
    return l;
}

/* Connects with `free_sqes` entries left in the submission queue. */
static void connect_with_room(unsigned free_sqes)
{
    struct rs_loop loop;
    CHECK_EQ_INT(rs_loop_init(&loop, 0, 8, 64, 4096), 0);
    struct sockaddr_in addr;
    int queued = -1;
    int l = full_listener(&addr, &queued);
    CHECK(l >= 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct result r = {0};
    struct rs_conn *c = rs_conn_new(&loop, fd, &handler, &r);
    CHECK(c != NULL);
    /* fill the submission queue up to free_sqes with no-ops the loop ignores */
    while (io_uring_sq_space_left(&loop.ring) > free_sqes) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&loop.ring);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, rs_ud(RS_OP_NONE, 0, 0));
    }
    uint64_t start = rs_now_ms();
    CHECK_EQ_INT(rs_conn_connect(c, (struct sockaddr *)&addr, sizeof addr, TIMEOUT_MS), 0);
    struct rs_timer deadline = {.cb = on_deadline};
    rs_timer_arm(&loop, &deadline, 3000); /* a SYN is retransmitted after 1 s, then 3 s */
    rs_loop_run(&loop, NULL);
    CHECK(r.done);
    CHECK_EQ_INT(r.err, -ETIMEDOUT);
    CHECK(r.at_ms - start < 1000);
    rs_timer_cancel(&loop, &deadline);
    rs_conn_close(c);
    rs_conn_reap(&loop);
    for (int i = 0; i < 20 && loop.closing; i++) { /* its last completions, then it is freed */
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_nsec = 50 * 1000 * 1000};
        io_uring_submit_and_wait_timeout(&loop.ring, &cqe, 1, &ts, NULL);
        unsigned head, n = 0;
        io_uring_for_each_cqe(&loop.ring, head, cqe)
        {
            if (rs_ud_op(io_uring_cqe_get_data64(cqe)) != RS_OP_NONE) rs_conn_dispatch(&loop, cqe);
            n++;
        }
        io_uring_cq_advance(&loop.ring, n);
        rs_conn_reap(&loop);
    }
    CHECK(loop.closing == NULL);
    rs_conn_reap_all(&loop);
    close(queued);
    close(l);
    rs_loop_destroy(&loop);
}

static void test_connect_timeout_with_room(void)
{
    connect_with_room(4);
}

/* Exactly one free entry: the connect fits, its timeout does not. */
static void test_connect_timeout_with_one_free_sqe(void)
{
    connect_with_room(1);
}

RUN_TESTS(TEST_CASE(test_connect_timeout_with_room),
          TEST_CASE(test_connect_timeout_with_one_free_sqe))
