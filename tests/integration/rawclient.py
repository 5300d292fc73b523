#!/usr/bin/env python3
"""Raw HTTP/1.1 client for the integration tests: sends exact bytes, reads what comes back.

  rawclient.py PORT DATA [--responses N] [--idle S] [--wait-close] [--pause S] [--split]

With --probe PATH, a separate keep-alive connection does GET PATH before and after the exchange
and a last line "<<PROBE s1 s2>>" gives both statuses (a bad client must not hurt a good one).
DATA has Python escapes (\\r\\n, \\x00) decoded; "-" reads it from stdin. With --split, DATA is
split on the marker "|PAUSE|" and the pieces are sent --pause seconds apart (slow clients).
Prints the bytes received, then a last line "<<CLOSED>>" when the peer closed (EOF or reset) or
"<<OPEN>>" when it did not: reading stops at EOF, after N complete responses (unless
--wait-close, which then waits for EOF up to --idle), or after --idle seconds without data.
"""
import argparse
import socket
import sys
import time


def complete_responses(buf):
    """Counts complete HTTP/1.1 responses at the start of buf (no HEAD requests assumed)."""
    n, off = 0, 0
    while True:
        end = buf.find(b"\r\n\r\n", off)
        if end < 0:
            return n
        head = buf[off:end].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        hdrs = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        body = end + 4
        if status in (204, 304) or 100 <= status < 200:
            off = body
        elif "content-length" in hdrs:
            off = body + int(hdrs["content-length"])
            if off > len(buf):
                return n
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            p = body
            while True:
                eol = buf.find(b"\r\n", p)
                if eol < 0:
                    return n
                size = int(buf[p:eol].split(b";")[0], 16)
                p = eol + 2 + size + 2
                if p > len(buf):
                    return n
                if size == 0:
                    break
            off = p
        else:
            return n  # body until close
        n += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("data")
    ap.add_argument("--responses", type=int, default=0)
    ap.add_argument("--idle", type=float, default=3.0)
    ap.add_argument("--wait-close", action="store_true")
    ap.add_argument("--pause", type=float, default=0.0)
    ap.add_argument("--split", action="store_true")
    ap.add_argument("--probe")
    a = ap.parse_args()
    probe = None
    if a.probe:
        probe = socket.create_connection(("127.0.0.1", a.port))
        before = probe_get(probe, a.probe)
    raw = sys.stdin.buffer.read() if a.data == "-" else a.data.encode("latin-1").decode("unicode_escape").encode("latin-1")
    pieces = raw.split(b"|PAUSE|") if a.split else [raw]
    s = socket.create_connection(("127.0.0.1", a.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    closed = False
    try:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(a.pause)  # the test is about a slow client: this pause is the input
            s.sendall(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the peer answered early and closed: read what it sent
    buf = b""
    s.settimeout(a.idle)
    while not closed:
        if a.responses and not a.wait_close and complete_responses(buf) >= a.responses:
            break
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not d:
            closed = True
            break
        buf += d
    sys.stdout.write(buf.decode("latin-1"))
    sys.stdout.write("\n<<CLOSED>>\n" if closed else "\n<<OPEN>>\n")
    if probe:
        sys.stdout.write("<<PROBE %s %s>>\n" % (before, probe_get(probe, a.probe)))


def probe_get(s, path):
    """One GET on keep-alive connection s; returns the status, or "closed"."""
    try:
        s.settimeout(10)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: probe\r\n\r\n" % path.encode())
        buf = b""
        while complete_responses(buf) < 1:
            d = s.recv(65536)
            if not d:
                return "closed"
            buf += d
        return buf.split(b" ")[1].decode()
    except OSError as e:
        return "error:%s" % e.__class__.__name__


if __name__ == "__main__":
    main()
