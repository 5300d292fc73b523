#!/usr/bin/env python3
"""ads_push.py RESOURCES LOG PID [SECONDS] < pushes: for each stdin line (gen.py's arguments, shell
quoted), writes RESOURCES, has tests/peers/ads_server.js (PID) push it with SIGHUP, and waits
(polling, bounded by SECONDS per push) until its LOG shows the reload and every response it sent
was answered (ACK or NACK) by a request carrying its nonce on the same stream. One process for
many pushes, so a push costs what the server and Ringside take, not a Python start. Exit 1 at a
deadline, saying what is missing."""
import json
import os
import shlex
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402


def settled(path, offset):
    with open(path, "rb") as f:
        data = f.read()
    lines = [json.loads(x) for x in data.decode().splitlines() if x.strip().endswith("}")]
    reloaded = any("reloaded" in json.loads(x) for x in data[offset:].decode().splitlines()
                   if x.strip().endswith("}"))
    answered = {(o["stream"], o["response_nonce"]) for o in lines if "kind" in o}
    missing = [o["sent"]["nonce"] for o in lines
               if "sent" in o and (o["stream"], o["sent"]["nonce"]) not in answered]
    if not reloaded:
        return "no reload yet"
    return "unanswered nonces %s" % missing if missing else ""


def push(res, log, pid, secs, argv):
    doc = gen.build(argv)
    with open(res + ".tmp", "w") as f:
        json.dump(doc, f)
    os.rename(res + ".tmp", res)
    offset = os.path.getsize(log)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + secs
    while True:
        why = settled(log, offset)
        if not why:
            return
        if time.monotonic() > deadline:
            sys.exit("ads_push: %s after %ss: %s" % (" ".join(argv), secs, why))
        time.sleep(0.005)


def main():
    res, log, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    secs = float(sys.argv[4]) if len(sys.argv) > 4 else 10
    for line in sys.stdin:
        if line.strip():
            push(res, log, pid, secs, shlex.split(line))


if __name__ == "__main__":
    main()
