"""An aiohttp client long-polling `pushbench serve ws`'s /poll/{subscriber} while events are
published over the server's control port (33-byte records, see src/websocket/proto.rs).
Checks: every event arrives once, in order, with its fields; the cursor moves with the last
one; a caught-up poll is held for its timeout and answered empty. Usage: longpoll_client.py
PORT CONTROL."""
import asyncio, json, struct, sys, time

import aiohttp

PORT, CONTROL = int(sys.argv[1]), int(sys.argv[2])
SUB, N = 3, 25


def publish(seq):
    now = time.time_ns() // 1000
    return struct.pack("<BIQQQI", 1, SUB, seq, now, now, 200)


async def main():
    reader, writer = await asyncio.open_connection("127.0.0.1", CONTROL)
    # The first poll makes the server ask for the subscriber's events (a RESUME record).
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{PORT}/poll/{SUB}"
        first = asyncio.create_task(http.get(url, params={"cursor": "", "timeout_ms": "5000"}))
        rec = await asyncio.wait_for(reader.readexactly(13), 5)
        tag, sub, start = struct.unpack("<BIQ", rec)
        assert (tag, sub, start) == (4, SUB, 0), (tag, sub, start)
        for seq in range(N):
            writer.write(publish(seq))
        await writer.drain()
        seen, cursor, polls = [], None, 0
        resp = await first
        while True:
            assert resp.status == 200 and resp.content_type == "application/json", resp
            body = await resp.json()
            polls += 1
            for e in body["events"]:
                assert e["subscriber"] == SUB and len(json.dumps(e, separators=(",", ":"))) == 200, e
                seen.append(e["seq"])
            cursor = body["cursor"]
            if len(seen) >= N:
                break
            resp = await http.get(url, params={"cursor": str(cursor), "timeout_ms": "5000"})
        assert seen == list(range(N)), seen
        assert cursor == N - 1, cursor
        t0 = time.monotonic()
        async with http.get(url, params={"cursor": str(cursor), "timeout_ms": "400"}) as r:
            empty = await r.json()
        held = time.monotonic() - t0
        assert empty == {"cursor": N - 1, "events": []} and held >= 0.39, (empty, held)
    writer.close()
    print(f"aiohttp client -> pushbench /poll: {len(seen)} events in order in {polls} answers, "
          f"cursor {cursor}; caught up, held {held:.2f} s and answered empty")


asyncio.run(main())
