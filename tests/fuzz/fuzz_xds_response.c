/* Fuzzes the ADS client: arbitrary bytes as one DiscoveryResponse and as one
 * DeltaDiscoveryResponse through decoding and the state machine, and as a sequence of responses
 * (first byte: bit 0 selects delta; then 2-byte big-endian lengths, each followed by one
 * message) so later types (EDS, LDS, RDS, SDS) are reached once earlier ones are accepted; bit
 * 1 makes the apply callback reject every other candidate (NACK paths). Every state is released,
 * so leaks show under ASan. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "xds/ads.h"

static bool reject_some;

static int apply(void *arg, struct xds_state *cand, int changed, char *err, size_t errlen)
{
    unsigned *n = arg;
    /* Touch what the translation would read. */
    for (int t = 0; t < XDS_NTYPES; t++)
        for (size_t i = 0; i < cand->types[t]->n; i++)
            (void)xds_state_find(cand, t, cand->types[t]->res[i]->name);
    (void)changed;
    if (++*n % 2 == 0 && reject_some) {
        snprintf(err, errlen, "rejected by the fuzzer");
        return 1;
    }
    return 0;
}

static int discard(void *arg, const uint8_t *msg, size_t len)
{
    (void)arg, (void)msg, (void)len;
    return 0;
}

static uint64_t fixed_clock(void)
{
    return 1000;
}

static xds_ads *client(bool delta, unsigned *counter)
{
    struct xds_ads_config cfg = {
        .delta = delta, .apply = apply, .arg = counter, .now_ms = fixed_clock, .max_msg = 1 << 20};
    xds_ads *a = xds_ads_new(&cfg);
    xds_ads_stream_open(a, discard, NULL);
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned counter = 0;
    reject_some = size > 0 && (data[0] & 2);
    for (int delta = 0; delta < 2; delta++) {
        xds_ads *a = client(delta, &counter);
        xds_ads_on_message(a, data, size);
        xds_ads_free(a);
    }
    if (size < 1) return 0;
    counter = 0;
    xds_ads *a = client(data[0] & 1, &counter);
    for (size_t off = 1; off + 2 <= size;) {
        size_t len = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (len > size - off) len = size - off;
        if (xds_ads_on_message(a, data + off, len) < 0) { /* the binding would reconnect */
            xds_ads_stream_closed(a);
            xds_ads_stream_open(a, discard, NULL);
        }
        off += len;
    }
    xds_ads_on_timer(a);
    xds_ads_free(a);
    return 0;
}
