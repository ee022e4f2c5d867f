"""An aiohttp-sse server for scripts/interop-sse.sh: GET /events/{subscriber} streams JSON
events {"ts": <unix us>, "seq": <n>} to each subscriber at RATE events/s, with `id: <seq>`,
a multi-line event and a comment now and then (the parser must take both), and `retry`.
A reconnect with Last-Event-ID resumes after it. Usage: sse_server.py PORT RATE SECONDS.
Prints the events it sent when it stops."""
import asyncio, json, sys, time

from aiohttp import web
from aiohttp_sse import sse_response

PORT, RATE, SECONDS = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
sent = 0


async def events(request):
    last = request.headers.get("Last-Event-ID")
    seq = int(last) + 1 if last else 0
    try:
        await stream(request, seq)
    except ConnectionResetError:
        pass  # the client went: the end of its stream
    return web.Response()


async def stream(request, seq):
    global sent
    async with sse_response(request) as resp:
        resp.ping_interval = 1
        await resp.send(json.dumps({"ts": time.time_ns() // 1000, "seq": seq}), id=str(seq), retry=500)
        sent += 1
        seq += 1
        while True:
            await asyncio.sleep(1 / RATE)
            ts = time.time_ns() // 1000
            if seq % 10 == 3:
                # The same JSON split over two data lines: joined with LF, it still parses.
                await resp.send('{"ts": %d,\n"seq": %d}' % (ts, seq), id=str(seq))
            else:
                await resp.send(json.dumps({"ts": ts, "seq": seq}), id=str(seq))
            sent += 1
            seq += 1


async def main():
    app = web.Application()
    app.router.add_get("/events/{subscriber}", events)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT).start()
    await asyncio.sleep(SECONDS)
    print(f"aiohttp-sse server: {sent} events sent")
    await runner.cleanup()


asyncio.run(main())
