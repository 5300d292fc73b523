/* A per-thread cache of small fixed-size blocks for memory that lives about as long as one
 * request: message heads being parsed, request and response heads waiting in an output queue.
 * Each worker is one thread, so the cache needs no lock; blocks freed on another thread (none on
 * the data path) simply land in that thread's cache. The cache is bounded: past RS_BLK_CACHE
 * blocks, a returned block goes back to malloc, so a burst does not pin memory for good. */
#ifndef RS_BLK_H
#define RS_BLK_H

#include <stddef.h>

#define RS_BLK_SIZE 1024u
#define RS_BLK_CACHE 64u

/* A block of RS_BLK_SIZE bytes (uninitialised), or NULL when out of memory. */
void *rs_blk_get(void);
/* Gives a block from rs_blk_get back (NULL is ignored). */
void rs_blk_put(void *p);
/* Frees the calling thread's cached blocks (at thread exit; LeakSanitizer). */
void rs_blk_thread_cleanup(void);

#endif
