/* Stats: Envoy-named counters, gauges and histograms.
 *
 * Names live in one process-wide registry, registered on the control path (config compile). Each
 * worker owns a shard of values indexed by stat id and is the only writer of it, so the hot path
 * is a plain add with no lock and no shared cache line; readers (admin) sum the shards with
 * relaxed loads. Threads that are not workers write to the shared shard with atomic adds. */
#ifndef RS_STATS_H
#define RS_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rs_stat_kind { RS_STAT_COUNTER, RS_STAT_GAUGE, RS_STAT_HISTOGRAM };

typedef uint32_t rs_stat_id;

#define RS_STATS_MAX (1u << 18) /* counters and gauges */
#define RS_HISTS_MAX (1u << 12) /* histograms */
#define RS_HIST_BUCKETS 20      /* Envoy's default bucket bounds, in ms, plus +Inf */
#define RS_STATS_MAX_SHARDS 65

struct rs_stats_shard {
    uint64_t *vals; /* RS_STATS_MAX values, mapped lazily: untouched pages cost no RSS */
    struct rs_hist_shard *hists;
    bool shared; /* the shard of non-worker threads: atomic adds */
};

struct rs_hist_shard {
    uint64_t buckets[RS_HIST_BUCKETS];
    uint64_t count;
    uint64_t sum_us;
};

extern const double rs_hist_bounds_ms[RS_HIST_BUCKETS - 1];

/* Number of shards: workers + 1 (the shared one is shard 0; worker w is shard w + 1). */
int rs_stats_nshards(void);

/* Process-wide set-up; returns the shard for worker w (0 <= w < nworkers), or the shared shard for
 * w == -1. */
int rs_stats_init(int nworkers);
struct rs_stats_shard *rs_stats_shard(int worker);

/* Registers (or finds) a stat by its full Envoy name; control path only. Returns the id, or
 * UINT32_MAX when the registry is full. */
rs_stat_id rs_stats_register(const char *name, enum rs_stat_kind kind);

/* A stat of a block: registered as "<prefix>.<leaf>". */
struct rs_stat_spec {
    const char *leaf;
    enum rs_stat_kind kind;
};

/* Registers (or finds) the n stats "<prefix>.<specs[i].leaf>" under one lock and stores their
 * ids in ids[i] (UINT32_MAX for one that does not fit). The block is remembered by prefix and
 * by the specs array (which must be static): registering it again, as every compile of an
 * unchanged cluster does, is one lookup. Control path only. */
void rs_stats_register_block(const char *prefix, const struct rs_stat_spec *specs, size_t n,
                             rs_stat_id *ids);

static inline void rs_stat_add(struct rs_stats_shard *s, rs_stat_id id, int64_t d)
{
    if (s->shared) {
        __atomic_fetch_add(&s->vals[id], (uint64_t)d, __ATOMIC_RELAXED);
        return;
    }
    /* single writer: a relaxed load+store is enough and compiles to a plain add */
    __atomic_store_n(&s->vals[id], __atomic_load_n(&s->vals[id], __ATOMIC_RELAXED) + (uint64_t)d,
                     __ATOMIC_RELAXED);
}
static inline void rs_stat_inc(struct rs_stats_shard *s, rs_stat_id id)
{
    rs_stat_add(s, id, 1);
}
static inline void rs_stat_dec(struct rs_stats_shard *s, rs_stat_id id)
{
    rs_stat_add(s, id, -1);
}
/* Sets a gauge owned by one writer (the shared shard). */
void rs_stat_set(rs_stat_id id, uint64_t v);

/* Records a duration sample (µs) into histogram id. */
void rs_hist_record(struct rs_stats_shard *s, rs_stat_id id, uint64_t us);

/* Reading, for admin: the value of a stat summed over all shards. */
uint64_t rs_stats_value(rs_stat_id id);
void rs_hist_value(rs_stat_id id, struct rs_hist_shard *out);
/* Estimated quantile q (0..1) in ms from bucket counts, NAN when empty. */
double rs_hist_quantile(const struct rs_hist_shard *h, double q);

/* Iteration over registered names, in registration order. */
size_t rs_stats_count(void);
const char *rs_stats_name(size_t i, enum rs_stat_kind *kind, rs_stat_id *id);

#endif
