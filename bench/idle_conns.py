#!/usr/bin/env python3
"""Opens N TCP connections to 127.0.0.1:PORT and holds them idle (nothing sent), for measuring a
proxy's memory per idle connection. Prints "open N" once all are established, then waits until
stdin closes (or SIGTERM) and closes them.

    idle_conns.py PORT N
"""
import resource
import socket
import sys


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if n + 16 > hard:
        sys.exit(f"idle_conns: {n} connections need more than the fd limit {hard}")
    conns, failed = [], 0
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            conns.append(s)
        except OSError:
            failed += 1
            s.close()
    print(f"open {len(conns)} failed {failed}", flush=True)
    sys.stdin.read()
    for s in conns:
        s.close()


if __name__ == "__main__":
    main()
