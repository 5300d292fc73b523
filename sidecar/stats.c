/* Stats registry and per-worker shards. */
#include "sidecar/stats.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Envoy's default histogram bucket bounds (ms). */
const double rs_hist_bounds_ms[RS_HIST_BUCKETS - 1] = {
    0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
    2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};

struct entry {
    char *name;
    enum rs_stat_kind kind;
    rs_stat_id id;
    uint32_t hash_next;
};

/* A registered block (rs_stats_register_block): its prefix, specs and the ids they got. */
struct block {
    char *prefix;
    const struct rs_stat_spec *specs;
    size_t n;
    uint32_t hash_next; /* block index + 1 */
    rs_stat_id ids[];
};

static struct {
    pthread_mutex_t lock;
    int nshards;
    struct rs_stats_shard shards[RS_STATS_MAX_SHARDS]; /* [0] shared, [1..] workers */
    struct entry *entries;
    size_t n, cap;
    uint32_t next_counter, next_hist;
    uint32_t *buckets; /* hash of names -> entry index + 1; at most half full */
    size_t nbuckets;
    struct block **blocks;
    size_t nblocks, blocks_cap;
    uint32_t *block_buckets; /* hash of prefix and specs -> block index + 1; at most half full */
    size_t nblock_buckets;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *map_zeroed(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) abort(); /* control path: start-up only */
    return p;
}

int rs_stats_init(int nworkers)
{
    if (nworkers + 1 > RS_STATS_MAX_SHARDS) return -1;
    pthread_mutex_lock(&reg.lock);
    for (int i = reg.nshards; i < nworkers + 1; i++) {
        reg.shards[i].vals = map_zeroed(RS_STATS_MAX * sizeof(uint64_t));
        reg.shards[i].hists = map_zeroed(RS_HISTS_MAX * sizeof(struct rs_hist_shard));
        reg.shards[i].shared = i == 0;
    }
    if (reg.nshards < nworkers + 1) reg.nshards = nworkers + 1;
    if (!reg.buckets) {
        /* grown with the registry (a fixed 64k-bucket table was 200 KiB resident: names hash
         * all over it) */
        reg.nbuckets = 1024;
        reg.buckets = calloc(reg.nbuckets, sizeof *reg.buckets);
        if (!reg.buckets) abort();
    }
    pthread_mutex_unlock(&reg.lock);
    return 0;
}

int rs_stats_nshards(void)
{
    return reg.nshards ? reg.nshards : 1;
}

struct rs_stats_shard *rs_stats_shard(int worker)
{
    if (reg.nshards == 0) rs_stats_init(0);
    return &reg.shards[worker + 1];
}

#define FNV_BASIS 2166136261u

static uint32_t hash_more(uint32_t h, const char *s)
{
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static uint32_t hash_name(const char *s)
{
    return hash_more(FNV_BASIS, s);
}

/* Doubles the bucket table and rehashes every entry; called with the lock held. */
static void grow_buckets(void)
{
    size_t nb = reg.nbuckets * 2;
    uint32_t *b = calloc(nb, sizeof *b);
    if (!b) abort(); /* control path */
    for (size_t i = 0; i < reg.n; i++) {
        uint32_t h = hash_name(reg.entries[i].name) & (uint32_t)(nb - 1);
        reg.entries[i].hash_next = b[h];
        b[h] = (uint32_t)(i + 1);
    }
    free(reg.buckets);
    reg.buckets = b;
    reg.nbuckets = nb;
}

/* Finds or adds `name` (of hash h); called with the lock held. */
static rs_stat_id register_locked(const char *name, uint32_t h, enum rs_stat_kind kind)
{
    uint32_t b = h & (uint32_t)(reg.nbuckets - 1);
    for (uint32_t i = reg.buckets[b]; i; i = reg.entries[i - 1].hash_next) {
        struct entry *e = &reg.entries[i - 1];
        if (e->kind == kind && strcmp(e->name, name) == 0) return e->id;
    }
    if (kind == RS_STAT_HISTOGRAM ? reg.next_hist >= RS_HISTS_MAX
                                  : reg.next_counter >= RS_STATS_MAX)
        return UINT32_MAX;
    if (reg.n == reg.cap) {
        size_t cap = reg.cap ? reg.cap * 2 : 256;
        struct entry *ne = realloc(reg.entries, cap * sizeof *ne);
        if (!ne) abort();
        reg.entries = ne;
        reg.cap = cap;
    }
    if (2 * (reg.n + 1) > reg.nbuckets) {
        grow_buckets();
        b = h & (uint32_t)(reg.nbuckets - 1);
    }
    rs_stat_id id = kind == RS_STAT_HISTOGRAM ? reg.next_hist++ : reg.next_counter++;
    struct entry *e = &reg.entries[reg.n++];
    e->name = strdup(name);
    if (!e->name) abort();
    e->kind = kind;
    e->id = id;
    e->hash_next = reg.buckets[b];
    reg.buckets[b] = (uint32_t)reg.n;
    return id;
}

rs_stat_id rs_stats_register(const char *name, enum rs_stat_kind kind)
{
    if (reg.nshards == 0) rs_stats_init(0);
    pthread_mutex_lock(&reg.lock);
    rs_stat_id id = register_locked(name, hash_name(name), kind);
    pthread_mutex_unlock(&reg.lock);
    return id;
}

static uint32_t block_hash(const char *prefix, const struct rs_stat_spec *specs, size_t n)
{
    uint32_t h = hash_name(prefix);
    uintptr_t k = (uintptr_t)specs ^ (uintptr_t)n;
    for (size_t i = 0; i < sizeof k; i++) h = (h ^ (uint8_t)(k >> (8 * i))) * 16777619u;
    return h;
}

/* Remembers a block; called with the lock held. */
static void block_add(const char *prefix, const struct rs_stat_spec *specs, size_t n,
                      const rs_stat_id *ids, uint32_t h)
{
    if (2 * (reg.nblocks + 1) > reg.nblock_buckets) {
        size_t nb = reg.nblock_buckets ? reg.nblock_buckets * 2 : 256;
        uint32_t *bb = calloc(nb, sizeof *bb);
        if (!bb) abort(); /* control path */
        for (size_t i = 0; i < reg.nblocks; i++) {
            struct block *k = reg.blocks[i];
            uint32_t b = block_hash(k->prefix, k->specs, k->n) & (uint32_t)(nb - 1);
            k->hash_next = bb[b];
            bb[b] = (uint32_t)(i + 1);
        }
        free(reg.block_buckets);
        reg.block_buckets = bb;
        reg.nblock_buckets = nb;
    }
    if (reg.nblocks == reg.blocks_cap) {
        size_t cap = reg.blocks_cap ? reg.blocks_cap * 2 : 256;
        struct block **nbk = realloc(reg.blocks, cap * sizeof *nbk);
        if (!nbk) abort();
        reg.blocks = nbk;
        reg.blocks_cap = cap;
    }
    struct block *k = malloc(sizeof *k + n * sizeof *ids);
    if (!k || !(k->prefix = strdup(prefix))) abort();
    k->specs = specs;
    k->n = n;
    memcpy(k->ids, ids, n * sizeof *ids);
    uint32_t b = h & (uint32_t)(reg.nblock_buckets - 1);
    k->hash_next = reg.block_buckets[b];
    reg.block_buckets[b] = (uint32_t)(reg.nblocks + 1);
    reg.blocks[reg.nblocks++] = k;
}

void rs_stats_register_block(const char *prefix, const struct rs_stat_spec *specs, size_t n,
                             rs_stat_id *ids)
{
    if (reg.nshards == 0) rs_stats_init(0);
    uint32_t bh = block_hash(prefix, specs, n);
    pthread_mutex_lock(&reg.lock);
    for (uint32_t i = reg.nblock_buckets ? reg.block_buckets[bh & (reg.nblock_buckets - 1)] : 0; i;
         i = reg.blocks[i - 1]->hash_next) {
        const struct block *k = reg.blocks[i - 1];
        if (k->specs == specs && k->n == n && strcmp(k->prefix, prefix) == 0) {
            memcpy(ids, k->ids, n * sizeof *ids);
            pthread_mutex_unlock(&reg.lock);
            return;
        }
    }
    /* the prefix and the dot are hashed and copied once */
    size_t plen = strlen(prefix);
    char name[512];
    if (plen + 2 > sizeof name) plen = sizeof name - 2;
    memcpy(name, prefix, plen);
    name[plen] = '.';
    name[plen + 1] = '\0';
    uint32_t ph = hash_more(FNV_BASIS, name);
    bool full = false;
    for (size_t i = 0; i < n; i++) {
        snprintf(name + plen + 1, sizeof name - plen - 1, "%s", specs[i].leaf);
        ids[i] = register_locked(name, hash_more(ph, name + plen + 1), specs[i].kind);
        full |= ids[i] == UINT32_MAX;
    }
    if (!full) block_add(prefix, specs, n, ids, bh); /* a full registry: try again next time */
    pthread_mutex_unlock(&reg.lock);
}

void rs_stat_set(rs_stat_id id, uint64_t v)
{
    __atomic_store_n(&reg.shards[0].vals[id], v, __ATOMIC_RELAXED);
}

void rs_hist_record(struct rs_stats_shard *s, rs_stat_id id, uint64_t us)
{
    struct rs_hist_shard *h = &s->hists[id];
    double ms = (double)us / 1000.0;
    int b = 0;
    while (b < RS_HIST_BUCKETS - 1 && ms > rs_hist_bounds_ms[b]) b++;
    if (s->shared) {
        __atomic_fetch_add(&h->buckets[b], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&h->sum_us, us, __ATOMIC_RELAXED);
        return;
    }
    __atomic_store_n(&h->buckets[b], h->buckets[b] + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&h->count, h->count + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&h->sum_us, h->sum_us + us, __ATOMIC_RELAXED);
}

uint64_t rs_stats_value(rs_stat_id id)
{
    uint64_t sum = 0;
    for (int i = 0; i < reg.nshards; i++)
        sum += __atomic_load_n(&reg.shards[i].vals[id], __ATOMIC_RELAXED);
    return sum;
}

void rs_hist_value(rs_stat_id id, struct rs_hist_shard *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < reg.nshards; i++) {
        const struct rs_hist_shard *h = &reg.shards[i].hists[id];
        for (int b = 0; b < RS_HIST_BUCKETS; b++)
            out->buckets[b] += __atomic_load_n(&h->buckets[b], __ATOMIC_RELAXED);
        out->count += __atomic_load_n(&h->count, __ATOMIC_RELAXED);
        out->sum_us += __atomic_load_n(&h->sum_us, __ATOMIC_RELAXED);
    }
}

double rs_hist_quantile(const struct rs_hist_shard *h, double q)
{
    uint64_t total = 0;
    for (int b = 0; b < RS_HIST_BUCKETS; b++) total += h->buckets[b];
    if (total == 0) return NAN;
    double rank = q * (double)total, seen = 0;
    for (int b = 0; b < RS_HIST_BUCKETS; b++) {
        if (h->buckets[b] == 0) continue;
        if (seen + (double)h->buckets[b] >= rank) {
            double lo = b == 0 ? 0 : rs_hist_bounds_ms[b - 1];
            double hi = b < RS_HIST_BUCKETS - 1 ? rs_hist_bounds_ms[b] : lo * 2;
            /* linear interpolation inside the bucket, as Envoy's summaries do */
            return lo + (hi - lo) * ((rank - seen) / (double)h->buckets[b]);
        }
        seen += (double)h->buckets[b];
    }
    return rs_hist_bounds_ms[RS_HIST_BUCKETS - 2];
}

size_t rs_stats_count(void)
{
    pthread_mutex_lock(&reg.lock);
    size_t n = reg.n;
    pthread_mutex_unlock(&reg.lock);
    return n;
}

const char *rs_stats_name(size_t i, enum rs_stat_kind *kind, rs_stat_id *id)
{
    pthread_mutex_lock(&reg.lock);
    const char *name = NULL;
    if (i < reg.n) {
        name = reg.entries[i].name;
        *kind = reg.entries[i].kind;
        *id = reg.entries[i].id;
    }
    pthread_mutex_unlock(&reg.lock);
    return name;
}
