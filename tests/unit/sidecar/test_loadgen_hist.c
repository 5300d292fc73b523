/* Tests of bench/hdr.h, the latency histogram of bench/loadgen: percentiles of known
 * distributions, merge, exact max, clamping at the top, and the bucket precision bound. */
#include "bench/hdr.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>

static struct rs_hdr h1, h2, h3;

/* |got - want| <= tol_pct% of want */
static int within(uint64_t got, double want, double tol_pct)
{
    return fabs((double)got - want) <= want * tol_pct / 100.0;
}

/* xorshift64*: a fixed sequence, so failures reproduce */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static void test_empty(void)
{
    rs_hdr_init(&h1);
    CHECK_EQ_INT(h1.count, 0);
    CHECK_EQ_INT(rs_hdr_percentile(&h1, 50), 0);
    CHECK(rs_hdr_mean(&h1) == 0);
}

static void test_uniform(void)
{
    rs_hdr_init(&h1);
    for (uint64_t v = 1; v <= 10000; v++) rs_hdr_record(&h1, v);
    CHECK_EQ_INT(h1.count, 10000);
    CHECK(within(rs_hdr_percentile(&h1, 50), 5000, 1));
    CHECK(within(rs_hdr_percentile(&h1, 90), 9000, 1));
    CHECK(within(rs_hdr_percentile(&h1, 99), 9900, 1));
    CHECK(within(rs_hdr_percentile(&h1, 99.9), 9990, 1));
    CHECK_EQ_INT(rs_hdr_percentile(&h1, 100), 10000);
    CHECK_EQ_INT(h1.min, 1);
    CHECK(fabs(rs_hdr_mean(&h1) - 5000.5) < 1e-9);
}

/* Exact below 256: every value its own bucket. */
static void test_small_values_exact(void)
{
    rs_hdr_init(&h1);
    for (uint64_t v = 0; v < 200; v++) rs_hdr_record(&h1, v);
    CHECK_EQ_INT(rs_hdr_percentile(&h1, 50), 99); /* rank 100 of 0..199 */
    CHECK_EQ_INT(rs_hdr_percentile(&h1, 0), 0);
    CHECK_EQ_INT(rs_hdr_percentile(&h1, 10), 19);
}

/* 90% fast (100 µs), 10% slow (50 ms): the percentiles either side of the step land on their
 * modes, and the step is where it should be. */
static void test_bimodal(void)
{
    rs_hdr_init(&h1);
    for (int i = 0; i < 90000; i++) rs_hdr_record(&h1, 100 + (uint64_t)(i % 11) - 5);
    for (int i = 0; i < 10000; i++) rs_hdr_record(&h1, 50000 + (uint64_t)(i % 101) * 10 - 500);
    CHECK(within(rs_hdr_percentile(&h1, 50), 100, 6));
    CHECK(within(rs_hdr_percentile(&h1, 89.9), 105, 1));
    CHECK(within(rs_hdr_percentile(&h1, 90.1), 49500, 2));
    CHECK(within(rs_hdr_percentile(&h1, 95), 50000, 1));
    CHECK(within(rs_hdr_percentile(&h1, 99), 50400, 1));
    CHECK_EQ_INT(rs_hdr_percentile(&h1, 100), 50500);
    CHECK_EQ_INT(h1.min, 95);
    CHECK(fabs(rs_hdr_mean(&h1) - (0.9 * 100 + 0.1 * 50000)) < 1);
}

/* Merging two histograms is the same as recording both streams into one. */
static void test_merge(void)
{
    rs_hdr_init(&h1);
    rs_hdr_init(&h2);
    rs_hdr_init(&h3);
    for (int i = 0; i < 50000; i++) {
        uint64_t a = rng() % 20000, b = 1000 + rng() % 5000000;
        rs_hdr_record(&h1, a);
        rs_hdr_record(&h2, b);
        rs_hdr_record(&h3, a);
        rs_hdr_record(&h3, b);
    }
    rs_hdr_record(&h2, UINT64_C(1) << 40); /* a clamped one merges too */
    rs_hdr_record(&h3, UINT64_C(1) << 40);
    rs_hdr_merge(&h1, &h2);
    CHECK_EQ_INT(h1.count, h3.count);
    CHECK_EQ_INT(h1.clamped, 1);
    CHECK_EQ_INT(h1.min, h3.min);
    CHECK_EQ_INT(h1.max, h3.max);
    CHECK(h1.sum == h3.sum);
    CHECK(memcmp(h1.buckets, h3.buckets, sizeof h1.buckets) == 0);
    static const double ps[] = {0, 1, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    for (unsigned i = 0; i < sizeof ps / sizeof ps[0]; i++)
        CHECK_EQ_INT(rs_hdr_percentile(&h1, ps[i]), rs_hdr_percentile(&h3, ps[i]));
    /* merging an empty one changes nothing, min included */
    rs_hdr_init(&h2);
    rs_hdr_merge(&h1, &h2);
    CHECK_EQ_INT(h1.min, h3.min);
    CHECK_EQ_INT(h1.count, h3.count);
}

/* max is the value recorded, not a bucket's bound, however large. */
static void test_max_exact(void)
{
    rs_hdr_init(&h1);
    for (uint64_t v = 1000; v < 2000; v++) rs_hdr_record(&h1, v);
    rs_hdr_record(&h1, 123457);
    CHECK_EQ_INT(h1.max, 123457);
    CHECK_EQ_INT(rs_hdr_percentile(&h1, 100), 123457);
    rs_hdr_record(&h1, 60000001); /* a 60 s stall */
    CHECK_EQ_INT(rs_hdr_percentile(&h1, 100), 60000001);
    CHECK_EQ_INT(h1.clamped, 0);
}

/* Above the top: counted in the top bucket and in clamped; max and mean stay exact. */
static void test_clamp(void)
{
    rs_hdr_init(&h1);
    rs_hdr_record(&h1, 10);
    rs_hdr_record(&h1, RS_HDR_TOP);
    rs_hdr_record(&h1, RS_HDR_TOP + 1);
    rs_hdr_record(&h1, UINT64_MAX);
    CHECK_EQ_INT(h1.count, 4);
    CHECK_EQ_INT(h1.clamped, 2);
    CHECK_EQ_INT(h1.buckets[RS_HDR_BUCKETS - 1], 3);
    CHECK(h1.max == UINT64_MAX);
    CHECK(rs_hdr_percentile(&h1, 50) >= RS_HDR_TOP - rs_hdr_bucket_width(RS_HDR_BUCKETS - 1));
    CHECK(rs_hdr_percentile(&h1, 50) <= RS_HDR_TOP);
    CHECK_EQ_INT(rs_hdr_bucket_of(RS_HDR_TOP), RS_HDR_BUCKETS - 1);
}

/* The buckets tile the range: each starts where the previous one ended. */
static void test_buckets_contiguous(void)
{
    for (unsigned i = 1; i < RS_HDR_BUCKETS; i++)
        CHECK_EQ_INT(rs_hdr_bucket_low(i), rs_hdr_bucket_low(i - 1) + rs_hdr_bucket_width(i - 1));
    CHECK_EQ_INT(rs_hdr_bucket_low(RS_HDR_BUCKETS - 1) + rs_hdr_bucket_width(RS_HDR_BUCKETS - 1),
                 RS_HDR_TOP + 1);
}

/* For random values over the whole range: the value falls inside its bucket, the bucket is no
 * wider than 1/128 of its values, and a single recorded value reads back within 0.4%. */
static void test_precision_random(void)
{
    int bad_bucket = 0, bad_width = 0, bad_read = 0;
    for (int i = 0; i < 200000; i++) {
        uint64_t v = rng() >> (rng() % 64); /* spread over all magnitudes */
        if (v > RS_HDR_TOP) v &= RS_HDR_TOP;
        unsigned b = rs_hdr_bucket_of(v);
        uint64_t lo = rs_hdr_bucket_low(b), w = rs_hdr_bucket_width(b);
        if (v < lo || v >= lo + w) bad_bucket++;
        if (w > 1 && (double)w > (double)lo / 128.0) bad_width++;
        rs_hdr_init(&h1);
        rs_hdr_record(&h1, v);
        rs_hdr_record(&h1, v);
        uint64_t got = rs_hdr_percentile(&h1, 50);
        if (fabs((double)got - (double)v) > (double)v * 0.004 + 0.5) bad_read++;
    }
    CHECK_EQ_INT(bad_bucket, 0);
    CHECK_EQ_INT(bad_width, 0);
    CHECK_EQ_INT(bad_read, 0);
}

/* Percentiles of many random values against the exact ones from a sorted copy: within 1%. */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_percentiles_vs_sorted(void)
{
    enum { N = 100000 };
    static uint64_t vals[N];
    rs_hdr_init(&h1);
    for (int i = 0; i < N; i++) {
        /* log-uniform 10 µs .. ~10 s: a latency-like spread */
        double e = 1.0 + 6.0 * (double)(rng() >> 11) / 9007199254740992.0;
        vals[i] = (uint64_t)pow(10.0, e);
        rs_hdr_record(&h1, vals[i]);
    }
    qsort(vals, N, sizeof vals[0], cmp_u64);
    static const double ps[] = {1, 10, 50, 90, 99, 99.9, 99.99};
    for (unsigned i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        uint64_t rank = (uint64_t)ceil(ps[i] / 100.0 * N);
        uint64_t want = vals[rank - 1], got = rs_hdr_percentile(&h1, ps[i]);
        if (!within(got, (double)want, 1)) {
            fprintf(stderr, "  p%g: got %llu want %llu\n", ps[i], (unsigned long long)got,
                    (unsigned long long)want);
            CHECK(0);
        }
    }
    CHECK_EQ_INT(rs_hdr_percentile(&h1, 100), vals[N - 1]);
}

RUN_TESTS(TEST_CASE(test_empty), TEST_CASE(test_uniform), TEST_CASE(test_small_values_exact),
          TEST_CASE(test_bimodal), TEST_CASE(test_merge), TEST_CASE(test_max_exact),
          TEST_CASE(test_clamp), TEST_CASE(test_buckets_contiguous),
          TEST_CASE(test_precision_random), TEST_CASE(test_percentiles_vs_sorted))
