/* Stats registry, per-worker shards and histograms. */
#include <math.h>
#include <pthread.h>

#include "sidecar/stats.h"
#include "test.h"

static void test_register_dedupes(void)
{
    rs_stats_init(2);
    rs_stat_id a = rs_stats_register("cluster.a.upstream_rq_total", RS_STAT_COUNTER);
    rs_stat_id b = rs_stats_register("cluster.a.upstream_rq_total", RS_STAT_COUNTER);
    rs_stat_id c = rs_stats_register("cluster.b.upstream_rq_total", RS_STAT_COUNTER);
    CHECK_EQ_INT(a, b);
    CHECK(a != c);
    enum rs_stat_kind kind;
    rs_stat_id id;
    int found = 0;
    for (size_t i = 0; i < rs_stats_count(); i++) {
        const char *n = rs_stats_name(i, &kind, &id);
        if (n && strcmp(n, "cluster.b.upstream_rq_total") == 0 && id == c &&
            kind == RS_STAT_COUNTER)
            found++;
    }
    CHECK_EQ_INT(found, 1);
}

/* A block registers "<prefix>.<leaf>" names: the same ids as one by one, found again by
 * prefix, and a different prefix gets its own. */
static void test_register_block(void)
{
    rs_stats_init(2);
    static const struct rs_stat_spec specs[] = {{"upstream_rq_total", RS_STAT_COUNTER},
                                                {"membership_total", RS_STAT_GAUGE},
                                                {"upstream_rq_time", RS_STAT_HISTOGRAM}};
    rs_stat_id pre = rs_stats_register("cluster.blk.membership_total", RS_STAT_GAUGE);
    rs_stat_id ids[3], again[3], other[3];
    rs_stats_register_block("cluster.blk", specs, 3, ids);
    CHECK_EQ_INT(ids[1], pre); /* registered before, one by one */
    CHECK_EQ_INT(ids[0], rs_stats_register("cluster.blk.upstream_rq_total", RS_STAT_COUNTER));
    CHECK_EQ_INT(ids[2], rs_stats_register("cluster.blk.upstream_rq_time", RS_STAT_HISTOGRAM));
    size_t n = rs_stats_count();
    rs_stats_register_block("cluster.blk", specs, 3, again);
    CHECK(memcmp(ids, again, sizeof ids) == 0);
    CHECK_EQ_INT(rs_stats_count(), n);
    rs_stats_register_block("cluster.blk2", specs, 3, other);
    CHECK_EQ_INT(rs_stats_count(), n + 3);
    CHECK(other[0] != ids[0] && other[1] != ids[1] && other[2] != ids[2]);
    enum rs_stat_kind kind;
    rs_stat_id id;
    const char *name = rs_stats_name(n + 1, &kind, &id);
    CHECK(name && strcmp(name, "cluster.blk2.membership_total") == 0);
    CHECK(kind == RS_STAT_GAUGE && id == other[1]);
}

struct adder {
    int worker;
    rs_stat_id id;
    int n;
};

static void *add_many(void *arg)
{
    struct adder *a = arg;
    struct rs_stats_shard *s = rs_stats_shard(a->worker);
    for (int i = 0; i < a->n; i++) rs_stat_inc(s, a->id);
    return NULL;
}

static void test_shards_sum(void)
{
    rs_stats_init(2);
    rs_stat_id id = rs_stats_register("http.x.downstream_rq_total", RS_STAT_COUNTER);
    struct adder a[3] = {{0, id, 100000}, {1, id, 50000}, {-1, id, 25000}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, add_many, &a[i]);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    CHECK_EQ_INT(rs_stats_value(id), 175000);
}

static void test_gauge_up_and_down(void)
{
    rs_stats_init(2);
    rs_stat_id g = rs_stats_register("cluster.a.upstream_cx_active", RS_STAT_GAUGE);
    /* a connection opened on one worker and counted down on another still sums to zero */
    rs_stat_inc(rs_stats_shard(0), g);
    rs_stat_inc(rs_stats_shard(0), g);
    rs_stat_dec(rs_stats_shard(1), g);
    CHECK_EQ_INT(rs_stats_value(g), 1);
    rs_stat_dec(rs_stats_shard(1), g);
    CHECK_EQ_INT(rs_stats_value(g), 0);
}

static void test_histogram_buckets_and_quantiles(void)
{
    rs_stats_init(2);
    rs_stat_id h = rs_stats_register("http.x.downstream_rq_time", RS_STAT_HISTOGRAM);
    struct rs_hist_shard out;
    rs_hist_value(h, &out);
    CHECK(isnan(rs_hist_quantile(&out, 0.5)));
    /* 900 samples at 3 ms (bucket (1,5]) and 100 at 40 ms (bucket (25,50]) */
    for (int i = 0; i < 900; i++) rs_hist_record(rs_stats_shard(i & 1), h, 3000);
    for (int i = 0; i < 100; i++) rs_hist_record(rs_stats_shard(-1), h, 40000);
    rs_hist_value(h, &out);
    CHECK_EQ_INT(out.count, 1000);
    CHECK_EQ_INT(out.sum_us, 900 * 3000 + 100 * 40000);
    CHECK_EQ_INT(out.buckets[2], 900); /* (1, 5] */
    CHECK_EQ_INT(out.buckets[5], 100); /* (25, 50] */
    double p50 = rs_hist_quantile(&out, 0.5), p99 = rs_hist_quantile(&out, 0.99);
    CHECK(p50 > 1 && p50 <= 5);
    CHECK(p99 > 25 && p99 <= 50);
    /* a sample past the last bound lands in +Inf */
    rs_hist_record(rs_stats_shard(0), h, 4000000000ull);
    rs_hist_value(h, &out);
    CHECK_EQ_INT(out.buckets[RS_HIST_BUCKETS - 1], 1);
}

static void test_bucket_edges(void)
{
    rs_stats_init(1);
    rs_stat_id h = rs_stats_register("edge.hist", RS_STAT_HISTOGRAM);
    rs_hist_record(rs_stats_shard(0), h, 500); /* exactly 0.5 ms: first bucket, le="0.5" */
    rs_hist_record(rs_stats_shard(0), h, 501); /* just above */
    rs_hist_record(rs_stats_shard(0), h, 0);
    struct rs_hist_shard out;
    rs_hist_value(h, &out);
    CHECK_EQ_INT(out.buckets[0], 2);
    CHECK_EQ_INT(out.buckets[1], 1);
}

RUN_TESTS(TEST_CASE(test_register_dedupes), TEST_CASE(test_register_block),
          TEST_CASE(test_shards_sum), TEST_CASE(test_gauge_up_and_down),
          TEST_CASE(test_histogram_buckets_and_quantiles), TEST_CASE(test_bucket_edges))
