/* The control-plane event loop (xds_loop_* in grpc.h): epoll for fd watches, a deadline-sorted
 * list of one-shot timers (a control plane holds a handful), and an eventfd that wakes the loop
 * for functions posted from other threads and for stop. Not the data plane's io_uring loop. */
#include "xds/grpc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct watch {
    xds_fd_cb cb;
    void *arg;
    unsigned events;
};

struct xds_timer {
    uint64_t deadline;
    xds_timer_cb cb;
    void *arg;
    struct xds_timer *next;
};

struct post {
    xds_post_fn fn;
    void *arg;
    struct post *next;
};

struct xds_loop {
    int epfd;
    int wakefd;            /* eventfd: posts and stop */
    struct watch *watches; /* indexed by fd */
    int nwatches;
    xds_timer *timers;    /* sorted by deadline, earliest first */
    pthread_mutex_t lock; /* guards the post queue */
    struct post *posts, **posts_tail;
    atomic_bool stop;
};

uint64_t xds_loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

xds_loop *xds_loop_new(void)
{
    xds_loop *loop = calloc(1, sizeof *loop);
    if (!loop) return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&loop->lock, NULL);
    loop->posts_tail = &loop->posts;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = -1};
    if (loop->epfd < 0 || loop->wakefd < 0 ||
        epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0) {
        int err = errno;
        xds_loop_free(loop);
        errno = err;
        return NULL;
    }
    return loop;
}

void xds_loop_free(xds_loop *loop)
{
    if (!loop) return;
    while (loop->timers) {
        xds_timer *t = loop->timers;
        loop->timers = t->next;
        free(t);
    }
    while (loop->posts) {
        struct post *p = loop->posts;
        loop->posts = p->next;
        free(p);
    }
    if (loop->epfd >= 0) close(loop->epfd);
    if (loop->wakefd >= 0) close(loop->wakefd);
    pthread_mutex_destroy(&loop->lock);
    free(loop->watches);
    free(loop);
}

static uint32_t epoll_events(unsigned events)
{
    return ((events & XDS_EV_READ) ? EPOLLIN | EPOLLRDHUP : 0) |
           ((events & XDS_EV_WRITE) ? EPOLLOUT : 0);
}

int xds_loop_watch(xds_loop *loop, int fd, unsigned events, xds_fd_cb cb, void *arg)
{
    if (fd < 0 || !cb) return -EINVAL;
    if (fd >= loop->nwatches) {
        int n = loop->nwatches ? loop->nwatches : 64;
        while (n <= fd) n *= 2;
        struct watch *w = realloc(loop->watches, (size_t)n * sizeof *w);
        if (!w) return -ENOMEM;
        for (int i = loop->nwatches; i < n; i++) w[i] = (struct watch){0};
        loop->watches = w;
        loop->nwatches = n;
    }
    struct watch *w = &loop->watches[fd];
    struct epoll_event ev = {.events = epoll_events(events), .data.fd = fd};
    if (epoll_ctl(loop->epfd, w->cb ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0) return -errno;
    *w = (struct watch){.cb = cb, .arg = arg, .events = events};
    return 0;
}

void xds_loop_unwatch(xds_loop *loop, int fd)
{
    if (fd < 0 || fd >= loop->nwatches || !loop->watches[fd].cb) return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    loop->watches[fd] = (struct watch){0};
}

xds_timer *xds_loop_timer(xds_loop *loop, uint64_t ms, xds_timer_cb cb, void *arg)
{
    xds_timer *t = malloc(sizeof *t);
    if (!t) return NULL;
    *t = (xds_timer){.deadline = xds_loop_now_ms() + ms, .cb = cb, .arg = arg};
    xds_timer **pp = &loop->timers;
    /* Equal deadlines fire in the order armed. */
    while (*pp && (*pp)->deadline <= t->deadline) pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
    return t;
}

void xds_loop_timer_cancel(xds_loop *loop, xds_timer *t)
{
    for (xds_timer **pp = &loop->timers; t && *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            free(t);
            return;
        }
    }
}

static void wake(xds_loop *loop)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
    ssize_t n = write(loop->wakefd, &one, sizeof one);
    (void)n;
}

int xds_loop_post(xds_loop *loop, xds_post_fn fn, void *arg)
{
    struct post *p = malloc(sizeof *p);
    if (!p) return -ENOMEM;
    *p = (struct post){.fn = fn, .arg = arg};
    pthread_mutex_lock(&loop->lock);
    *loop->posts_tail = p;
    loop->posts_tail = &p->next;
    pthread_mutex_unlock(&loop->lock);
    wake(loop);
    return 0;
}

void xds_loop_stop(xds_loop *loop)
{
    atomic_store(&loop->stop, true);
    wake(loop);
}

static void run_posts(xds_loop *loop)
{
    uint64_t n;
    if (read(loop->wakefd, &n, sizeof n) < 0 && errno != EAGAIN) return;
    pthread_mutex_lock(&loop->lock);
    struct post *p = loop->posts;
    loop->posts = NULL;
    loop->posts_tail = &loop->posts;
    pthread_mutex_unlock(&loop->lock);
    while (p) {
        struct post *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
}

/* Fires the timers due now. A timer armed by a callback for "now" waits for the next turn, so
 * a callback re-arming itself at 0 ms cannot starve the fds. */
static void run_timers(xds_loop *loop)
{
    uint64_t now = xds_loop_now_ms();
    xds_timer *due = NULL, **tail = &due;
    while (loop->timers && loop->timers->deadline <= now) {
        xds_timer *t = loop->timers;
        loop->timers = t->next;
        t->next = NULL;
        *tail = t;
        tail = &t->next;
    }
    while (due) {
        xds_timer *t = due;
        due = t->next;
        t->cb(loop, t->arg);
        free(t);
    }
}

static int next_wait_ms(xds_loop *loop)
{
    if (!loop->timers) return -1;
    uint64_t now = xds_loop_now_ms();
    if (loop->timers->deadline <= now) return 0;
    uint64_t d = loop->timers->deadline - now;
    return d > 60000 ? 60000 : (int)d;
}

static void dispatch(xds_loop *loop, const struct epoll_event *ev)
{
    int fd = ev->data.fd;
    if (fd < 0) {
        run_posts(loop);
        return;
    }
    /* The watch may have been removed by an earlier callback of this batch. */
    if (fd >= loop->nwatches || !loop->watches[fd].cb) return;
    struct watch w = loop->watches[fd];
    unsigned events = 0;
    if (ev->events & (EPOLLIN | EPOLLRDHUP)) events |= XDS_EV_READ;
    if (ev->events & EPOLLOUT) events |= XDS_EV_WRITE;
    if (ev->events & (EPOLLERR | EPOLLHUP)) events |= XDS_EV_ERROR;
    w.cb(loop, fd, events, w.arg);
}

int xds_loop_run(xds_loop *loop)
{
    struct epoll_event evs[64];
    while (!atomic_load(&loop->stop)) {
        int n = epoll_wait(loop->epfd, evs, 64, next_wait_ms(loop));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        for (int i = 0; i < n; i++) dispatch(loop, &evs[i]);
        run_timers(loop);
    }
    atomic_store(&loop->stop, false);
    return 0;
}
