/* inotify on the mesh file's directory, filtered by the file's name. Events come in bursts (a
 * write is often open+modify+close, a rename is create+move), so a reload runs once the burst has
 * been quiet for DEBOUNCE_MS. */
#include "xds/cp/watch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "xds/cp/log.h"
#include "xds/cp/mesh.h"

#define DEBOUNCE_MS 50

struct cp_watch {
    xds_loop *loop;
    struct cp_ads *ads;
    char *path, *base;
    int fd;
    xds_timer *timer;
    struct cp_watch_stats stats;
};

int cp_watch_reload(struct cp_watch *w)
{
    char err[1024];
    struct cp_mesh *m = cp_mesh_load(w->path, err, sizeof err);
    if (!m) {
        w->stats.rejected++;
        cp_log(CP_LOG_ERROR, "mesh file rejected, previous mesh kept (%llu rejected so far): %s",
               (unsigned long long)w->stats.rejected, err);
        return -1;
    }
    w->stats.reloads++;
    cp_log(CP_LOG_INFO, "mesh reloaded from %s: %zu services, %zu workloads", w->path,
           m->n_services, m->n_workloads);
    cp_ads_set_mesh(w->ads, m);
    return 0;
}

static void on_quiet(xds_loop *loop, void *arg)
{
    (void)loop;
    struct cp_watch *w = arg;
    w->timer = NULL;
    cp_watch_reload(w);
}

static void on_inotify(xds_loop *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct cp_watch *w = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int hit = 0;
    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->mask & IN_Q_OVERFLOW)
                hit = 1;
            else if (ev->len && strcmp(ev->name, w->base) == 0)
                hit = 1;
            p += sizeof *ev + ev->len;
        }
    }
    if (!hit) return;
    xds_loop_timer_cancel(loop, w->timer);
    w->timer = xds_loop_timer(loop, DEBOUNCE_MS, on_quiet, w);
}

struct cp_watch *cp_watch_new(xds_loop *loop, const char *path, struct cp_ads *ads)
{
    struct cp_watch *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->loop = loop;
    w->ads = ads;
    w->path = strdup(path);
    if (!w->path) abort();
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path == 0 ? 1 : slash - path), path);
    else
        snprintf(dir, sizeof dir, ".");
    w->base = strdup(slash ? slash + 1 : path);
    if (!w->base) abort();
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int rc = w->fd < 0 ? -errno : 0;
    if (rc == 0 && inotify_add_watch(w->fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0) rc = -errno;
    if (rc == 0) rc = xds_loop_watch(loop, w->fd, XDS_EV_READ, on_inotify, w);
    if (rc < 0) {
        cp_watch_free(w);
        errno = -rc;
        return NULL;
    }
    return w;
}

void cp_watch_free(struct cp_watch *w)
{
    if (!w) return;
    xds_loop_timer_cancel(w->loop, w->timer);
    if (w->fd >= 0) {
        xds_loop_unwatch(w->loop, w->fd);
        close(w->fd);
    }
    free(w->path);
    free(w->base);
    free(w);
}

const struct cp_watch_stats *cp_watch_stats(const struct cp_watch *w)
{
    return &w->stats;
}
