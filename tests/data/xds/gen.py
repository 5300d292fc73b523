#!/usr/bin/env python3
"""Writes a resources file for tests/peers/ads_server.js (Envoy v3 resources as proto3 JSON).

  gen.py [--cluster NAME[=PORT[*W],PORT[*W]...]] [--lb NAME=POLICY] [--big NAME=BYTES]
         [--listener NAME=PORT:ROUTE_CONFIG] [--freebind NAME]
         [--route CONFIG=PREFIX>CLUSTER[*W][+CLUSTER*W...]] [--fail NODE_ID=CODE=MESSAGE]

--cluster NAME=...  an EDS cluster and its ClusterLoadAssignment (127.0.0.1 endpoints, weights);
                    NAME alone: the cluster without an assignment (warming).
--lb NAME=POLICY    the cluster's lb_policy (RING_HASH is one Ringside refuses).
--big NAME=BYTES    the cluster's alt_stat_name padded to BYTES (an oversized response).
--listener          127.0.0.1:PORT, an HTTP connection manager with RDS (ads) ROUTE_CONFIG.
--freebind NAME     sets freebind on that listener (a field Ringside refuses).
--route             appends a route to CONFIG's single virtual host (domains "*"), in order.
--fail              the server ends every stream from NODE_ID with gRPC status CODE and MESSAGE
                    after its first request (as istiod does with a node it refuses).
Each type's version is a hash of its resources, so a push sends only the types that changed.
"""
import argparse
import hashlib
import json
import sys

T = "type.googleapis.com/"
ADS = {"ads": {}, "resource_api_version": "V3"}


def typ(res):
    v = hashlib.sha256(json.dumps(res, sort_keys=True).encode()).hexdigest()[:10]
    return {"version": "v" + v, "resources": res}


def build(argv):
    """The resources file's contents (a dict) for gen.py's command-line arguments."""
    p = argparse.ArgumentParser(prog="gen.py")
    p.add_argument("--cluster", action="append", default=[])
    p.add_argument("--lb", action="append", default=[])
    p.add_argument("--big", action="append", default=[])
    p.add_argument("--listener", action="append", default=[])
    p.add_argument("--freebind", action="append", default=[])
    p.add_argument("--route", action="append", default=[])
    p.add_argument("--fail")
    a = p.parse_args(argv)

    lb = dict(x.split("=", 1) for x in a.lb)
    big = {k: int(v) for k, v in (x.split("=", 1) for x in a.big)}
    clusters, clas, listeners, routes = [], [], [], {}

    for spec in a.cluster:
        name, _, eps = spec.partition("=")
        c = {"@type": T + "envoy.config.cluster.v3.Cluster", "name": name, "type": "EDS",
             "eds_cluster_config": {"eds_config": ADS}, "connect_timeout": "1s",
             "lb_policy": lb.get(name, "ROUND_ROBIN")}
        if name in big:
            c["alt_stat_name"] = "x" * big[name]
        clusters.append(c)
        if not eps:
            continue
        lbe = []
        for ep in eps.split(","):
            port, _, w = ep.partition("*")
            lbe.append({"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                    "port_value": int(port)}}},
                        "load_balancing_weight": int(w or 1)})
        clas.append({"@type": T + "envoy.config.endpoint.v3.ClusterLoadAssignment",
                     "cluster_name": name, "endpoints": [{"lb_endpoints": lbe}]})

    for spec in a.listener:
        name, rest = spec.split("=", 1)
        port, rc = rest.split(":", 1)
        hcm = {"@type": T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
               "stat_prefix": name, "rds": {"config_source": ADS, "route_config_name": rc},
               "http_filters": [{"name": "envoy.filters.http.router",
                                 "typed_config": {"@type": T + "envoy.extensions.filters.http.router.v3.Router"}}]}
        lis = {"@type": T + "envoy.config.listener.v3.Listener", "name": name,
               "address": {"socket_address": {"address": "127.0.0.1", "port_value": int(port)}},
               "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                               "typed_config": hcm}]}]}
        if name in a.freebind:
            lis["freebind"] = True
        listeners.append(lis)

    for spec in a.route:
        cfg, rest = spec.split("=", 1)
        prefix, targets = rest.split(">", 1)
        ws = []
        for t in targets.split("+"):
            c, _, w = t.partition("*")
            ws.append((c, int(w or 1)))
        action = ({"cluster": ws[0][0]} if len(ws) == 1 else
                  {"weighted_clusters": {"clusters": [{"name": c, "weight": w} for c, w in ws]}})
        routes.setdefault(cfg, []).append({"match": {"prefix": prefix}, "route": action})

    rcs = [{"@type": T + "envoy.config.route.v3.RouteConfiguration", "name": cfg,
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": rl}]}
           for cfg, rl in routes.items()]
    doc = {T + "envoy.config.cluster.v3.Cluster": typ(clusters),
           T + "envoy.config.endpoint.v3.ClusterLoadAssignment": typ(clas),
           T + "envoy.config.listener.v3.Listener": typ(listeners),
           T + "envoy.config.route.v3.RouteConfiguration": typ(rcs)}
    if a.fail:
        node, code, message = a.fail.split("=", 2)
        doc["_fail"] = {"node_id": node, "code": int(code), "message": message}
    return doc


if __name__ == "__main__":
    print(json.dumps(build(sys.argv[1:])))
