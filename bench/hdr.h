/* hdr: the latency histogram of bench/loadgen, log-linear in the manner of HdrHistogram.
 *
 * Values are microseconds. Below 256 every value has its own bucket; above, each power of two
 * [2^m, 2^(m+1)) is cut into 128 equal buckets, so a bucket is never wider than 1/128 of the
 * values it holds and a reported value (the bucket's midpoint) is within 0.4% of the true one.
 * The top is 2^32 - 1 µs (71 minutes); a larger value is counted in the top bucket and in
 * `clamped`, while min, max and the mean keep the exact values. Fixed size (26 KiB), no
 * allocation: one per thread, merged at the end.
 *
 * Header-only on purpose: bench/CMakeLists.txt builds every .c file in bench/ into its own
 * executable, so a bench/hdr.c would need a main; loadgen and
 * tests/unit/sidecar/test_loadgen_hist.c both include this file. */
#ifndef RS_BENCH_HDR_H
#define RS_BENCH_HDR_H

#include <stdint.h>
#include <string.h>

#define RS_HDR_SUB_BITS 7  /* 2^7 buckets per power of two */
#define RS_HDR_TOP_BITS 32 /* values up to 2^32 - 1 µs are tracked */
#define RS_HDR_TOP ((UINT64_C(1) << RS_HDR_TOP_BITS) - 1)
#define RS_HDR_BUCKETS ((RS_HDR_TOP_BITS - RS_HDR_SUB_BITS + 1) << RS_HDR_SUB_BITS)

struct rs_hdr {
    uint64_t count;   /* values recorded */
    uint64_t clamped; /* of which above RS_HDR_TOP, counted in the top bucket */
    uint64_t min, max;
    double sum; /* exact up to 2^53 µs in total, plenty for a run */
    uint64_t buckets[RS_HDR_BUCKETS];
};

/* The bucket holding v (v <= RS_HDR_TOP): v itself below 2^(SUB_BITS+1); above, the exponent
 * beyond SUB_BITS picks the row and the SUB_BITS bits under the leading one the column. */
static inline unsigned rs_hdr_bucket_of(uint64_t v)
{
    unsigned msb = v ? 63u - (unsigned)__builtin_clzll(v) : 0;
    unsigned shift = msb > RS_HDR_SUB_BITS ? msb - RS_HDR_SUB_BITS : 0;
    return (shift << RS_HDR_SUB_BITS) + (unsigned)(v >> shift);
}

/* The width of bucket i: 1 in the exact range, doubling with each power of two above it. */
static inline uint64_t rs_hdr_bucket_width(unsigned i)
{
    unsigned row = i >> RS_HDR_SUB_BITS;
    return row < 2 ? 1 : UINT64_C(1) << (row - 1);
}

/* The smallest value that falls in bucket i. */
static inline uint64_t rs_hdr_bucket_low(unsigned i)
{
    unsigned row = i >> RS_HDR_SUB_BITS;
    unsigned shift = row < 2 ? 0 : row - 1;
    return (uint64_t)(i - (shift << RS_HDR_SUB_BITS)) << shift;
}

static inline void rs_hdr_init(struct rs_hdr *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static inline void rs_hdr_record(struct rs_hdr *h, uint64_t v)
{
    h->count++;
    h->sum += (double)v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    if (v > RS_HDR_TOP) {
        h->clamped++;
        v = RS_HDR_TOP;
    }
    h->buckets[rs_hdr_bucket_of(v)]++;
}

/* Adds src's values to dst, as if dst had recorded them too. */
static inline void rs_hdr_merge(struct rs_hdr *dst, const struct rs_hdr *src)
{
    dst->count += src->count;
    dst->clamped += src->clamped;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    for (unsigned i = 0; i < RS_HDR_BUCKETS; i++) dst->buckets[i] += src->buckets[i];
}

static inline double rs_hdr_mean(const struct rs_hdr *h)
{
    return h->count ? h->sum / (double)h->count : 0;
}

/* The value at percentile p (0..100): the midpoint of the bucket holding the value of rank
 * ceil(p% of count) (nearest-rank, as HdrHistogram and wrk report), kept within [min, max];
 * percentile 100 is max exactly. 0 when nothing was recorded. */
static inline uint64_t rs_hdr_percentile(const struct rs_hdr *h, double p)
{
    if (!h->count) return 0;
    double r = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r) rank++;
    if (rank < 1) rank = 1;
    if (rank >= h->count) return h->max;
    uint64_t seen = 0;
    for (unsigned i = 0; i < RS_HDR_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen < rank) continue;
        uint64_t v = rs_hdr_bucket_low(i) + rs_hdr_bucket_width(i) / 2;
        if (v < h->min) v = h->min;
        if (v > h->max) v = h->max;
        return v;
    }
    return h->max;
}

#endif
