/* Type registry over the table protogen.py writes at build time (xds_registry_table.c): the
 * descriptors are sorted by full name once, then looked up with bsearch. */
#include "xds/registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

extern const ProtobufCMessageDescriptor *const xds_registry_all[];
extern const unsigned xds_registry_count_;

static const ProtobufCMessageDescriptor **sorted;
static size_t n_sorted;
static pthread_once_t sorted_once = PTHREAD_ONCE_INIT;

static int cmp_desc(const void *a, const void *b)
{
    const ProtobufCMessageDescriptor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static void build_sorted(void)
{
    size_t n = xds_registry_count_;
    sorted = malloc(n * sizeof *sorted);
    if (!sorted) abort(); /* control path: out of memory at startup */
    memcpy(sorted, xds_registry_all, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_desc);
    /* A .proto imported twice under two names would give duplicates; keep one of each. */
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (w == 0 || strcmp(sorted[w - 1]->name, sorted[i]->name) != 0) sorted[w++] = sorted[i];
    n_sorted = w;
}

struct key {
    const char *s;
    size_t len;
};

static int cmp_key(const void *k, const void *elem)
{
    const struct key *key = k;
    const char *name = (*(const ProtobufCMessageDescriptor *const *)elem)->name;
    int c = strncmp(key->s, name, key->len);
    if (c != 0) return c;
    return name[key->len] == '\0' ? 0 : -1;
}

const ProtobufCMessageDescriptor *xds_registry_find_n(const char *s, size_t len)
{
    pthread_once(&sorted_once, build_sorted);
    for (size_t i = len; i > 0; i--) {
        if (s[i - 1] == '/') {
            s += i;
            len -= i;
            break;
        }
    }
    if (len == 0) return NULL;
    struct key key = {s, len};
    const ProtobufCMessageDescriptor **hit =
        bsearch(&key, sorted, n_sorted, sizeof *sorted, cmp_key);
    return hit ? *hit : NULL;
}

const ProtobufCMessageDescriptor *xds_registry_find(const char *name_or_url)
{
    return xds_registry_find_n(name_or_url, strlen(name_or_url));
}

size_t xds_registry_count(void)
{
    pthread_once(&sorted_once, build_sorted);
    return n_sorted;
}

const ProtobufCMessageDescriptor *xds_registry_at(size_t i)
{
    pthread_once(&sorted_once, build_sorted);
    return i < n_sorted ? sorted[i] : NULL;
}
