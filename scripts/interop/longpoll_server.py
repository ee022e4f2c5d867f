"""A long-polling server on aiohttp for scripts/interop-longpoll.sh, in the shape the
[longpoll] table describes: GET /poll/{subscriber}?cursor=N answers {"events": [...]} with the
subscriber's events after sequence N (cursor empty: from the first), each {"seq": n, "ts": <unix
us of the event>, "data": "..."}, as soon as there is one, or {"events": []} after HOLD seconds.
Events are made at RATE per second per subscriber and kept (an answer lost is sent again).
Usage: longpoll_server.py PORT RATE HOLD SECONDS. Prints what it made and answered."""
import asyncio, sys, time
from collections import defaultdict

from aiohttp import web

PORT, RATE, HOLD, SECONDS = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
events = defaultdict(list)  # subscriber -> [event]
waiters = defaultdict(asyncio.Event)
counts = {"made": 0, "polls": 0, "empty": 0}


async def producer(sub):
    seq = 0
    while True:
        events[sub].append({"seq": seq, "ts": time.time_ns() // 1000, "data": "x" * 64})
        counts["made"] += 1
        seq += 1
        waiters[sub].set()
        await asyncio.sleep(1 / RATE)


async def poll(request):
    sub = request.match_info["subscriber"]
    if sub not in events:
        events[sub] = []
        asyncio.get_running_loop().create_task(producer(sub))
    cursor = request.query.get("cursor", "")
    after = int(cursor) if cursor else -1
    deadline = time.monotonic() + HOLD
    counts["polls"] += 1
    while True:
        fresh = [e for e in events[sub] if e["seq"] > after]
        if fresh:
            return web.json_response({"events": fresh[:100]})
        waiters[sub].clear()
        left = deadline - time.monotonic()
        if left <= 0:
            counts["empty"] += 1
            return web.json_response({"events": []})
        try:
            await asyncio.wait_for(waiters[sub].wait(), left)
        except asyncio.TimeoutError:
            pass


async def main():
    app = web.Application()
    app.router.add_get("/poll/{subscriber}", poll)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT).start()
    await asyncio.sleep(SECONDS)
    print(f"aiohttp long-poll server: {counts['made']} events made, {counts['polls']} polls, "
          f"{counts['empty']} answered empty")
    await runner.cleanup()


asyncio.run(main())
