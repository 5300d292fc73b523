/* Watching the mesh file: inotify on its directory (editors and `mv` replace the file by rename,
 * which a watch on the file itself would miss), a short debounce, then a reload. A valid file
 * replaces the mesh and pushes; an invalid one is reported on stderr, counted, and the previous
 * mesh stays. */
#ifndef XDS_CP_WATCH_H
#define XDS_CP_WATCH_H

#include <stdint.h>

#include "xds/cp/ads_server.h"
#include "xds/grpc.h"

struct cp_watch;

struct cp_watch_stats {
    uint64_t reloads, rejected;
};

/* Watches path on loop, reloading into ads. NULL with errno set if inotify fails. */
struct cp_watch *cp_watch_new(xds_loop *loop, const char *path, struct cp_ads *ads);

/* Stops watching (before the loop is freed). */
void cp_watch_free(struct cp_watch *w);

const struct cp_watch_stats *cp_watch_stats(const struct cp_watch *w);

/* Reloads now (also what the watch does after a change). 0 if the new mesh was taken. */
int cp_watch_reload(struct cp_watch *w);

#endif
