/* The gRPC side of ADS: one cp_ads_stream per gRPC stream, messages in, responses out. */
#include "xds/cp/ads_grpc.h"

#include <stdint.h>

static int io_send(void *ctx, const uint8_t *msg, size_t len)
{
    return xds_grpc_stream_send(ctx, msg, len);
}

static void io_finish(void *ctx, int status, const char *message)
{
    xds_grpc_stream_finish(ctx, status, message);
}

static const struct cp_ads_io grpc_io = {.send = io_send, .finish = io_finish};

static void open_stream(xds_grpc_stream *gs, struct cp_ads *ads, int delta)
{
    struct cp_ads_stream *s =
        cp_ads_stream_open(ads, delta, xds_grpc_stream_peer(gs), &grpc_io, gs);
    xds_grpc_stream_set_user(gs, s);
}

static void on_open_sotw(xds_grpc_stream *gs, void *arg)
{
    open_stream(gs, arg, CP_ADS_SOTW);
}
static void on_open_delta(xds_grpc_stream *gs, void *arg)
{
    open_stream(gs, arg, CP_ADS_DELTA);
}
static void on_open_sds(xds_grpc_stream *gs, void *arg)
{
    open_stream(gs, arg, CP_ADS_SDS);
}

static void on_message(xds_grpc_stream *gs, const uint8_t *msg, size_t len, void *arg)
{
    (void)arg;
    /* A finish inside the request (a rejected node) closes the ADS stream: the gRPC stream has
     * ended then too, and no further callback comes for it. */
    cp_ads_stream_request(xds_grpc_stream_user(gs), msg, len);
}

/* The client is done sending: as istiod does, end the stream with OK. */
static void on_half_close(xds_grpc_stream *gs, void *arg)
{
    (void)arg;
    struct cp_ads_stream *s = xds_grpc_stream_user(gs);
    xds_grpc_stream_finish(gs, XDS_GRPC_OK, NULL);
    cp_ads_stream_close(s);
}

static void on_cancel(xds_grpc_stream *gs, void *arg)
{
    (void)arg;
    cp_ads_stream_close(xds_grpc_stream_user(gs));
}

int cp_ads_grpc_register(xds_grpc_server *srv, struct cp_ads *ads)
{
    const struct xds_grpc_handler sotw = {.on_open = on_open_sotw,
                                          .on_message = on_message,
                                          .on_half_close = on_half_close,
                                          .on_cancel = on_cancel};
    struct xds_grpc_handler delta = sotw;
    delta.on_open = on_open_delta;
    int rc = xds_grpc_server_register(srv, CP_ADS_SOTW_METHOD, &sotw, ads);
    if (rc == 0) rc = xds_grpc_server_register(srv, CP_ADS_DELTA_METHOD, &delta, ads);
    return rc;
}

int cp_sds_grpc_register(xds_grpc_server *srv, struct cp_ads *ads)
{
    const struct xds_grpc_handler sds = {.on_open = on_open_sds,
                                         .on_message = on_message,
                                         .on_half_close = on_half_close,
                                         .on_cancel = on_cancel};
    return xds_grpc_server_register(srv, CP_SDS_METHOD, &sds, ads);
}
