#!/usr/bin/env python3
"""TCP echo server for the integration tests: echoes every byte back; on the peer's half-close it
finishes echoing and closes. Usage: echoserver.py PORT"""
import asyncio
import sys


async def handle(r, w):
    try:
        while True:
            d = await r.read(65536)
            if not d:
                break
            w.write(d)
            await w.drain()
    except ConnectionError:
        pass
    finally:
        w.close()


async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    async with srv:
        await srv.serve_forever()


asyncio.run(main())
