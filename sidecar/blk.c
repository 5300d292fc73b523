/* The per-thread small-block cache: a LIFO free list threaded through the blocks themselves, so
 * the most recently used (cache-warm) block goes out first. */
#include "sidecar/blk.h"

#include <stdlib.h>

struct free_blk {
    struct free_blk *next;
};

static __thread struct free_blk *cache;
static __thread unsigned ncached;

void *rs_blk_get(void)
{
    struct free_blk *b = cache;
    if (!b) return malloc(RS_BLK_SIZE);
    cache = b->next;
    ncached--;
    return b;
}

void rs_blk_put(void *p)
{
    if (!p) return;
    if (ncached >= RS_BLK_CACHE) {
        free(p);
        return;
    }
    struct free_blk *b = p;
    b->next = cache;
    cache = b;
    ncached++;
}

void rs_blk_thread_cleanup(void)
{
    while (cache) {
        struct free_blk *b = cache;
        cache = b->next;
        free(b);
    }
    ncached = 0;
}
