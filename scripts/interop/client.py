import asyncio, websockets, os
async def main():
    async with websockets.connect("ws://127.0.0.1:" + __import__("sys").argv[1] + "/ws/7", max_size=None) as ws:
        for size in [0, 10, 125, 126, 70000, 200000]:
            msg = os.urandom(size)
            await ws.send(msg)
            assert await ws.recv() == msg, size
        await ws.send("héllo text")
        assert await ws.recv() == "héllo text"
        pong = await ws.ping(b"abc")
        await asyncio.wait_for(pong, 2)
        print("python client: echo of 0..200000 bytes, text and ping ok")
    try:
        async with websockets.connect("ws://127.0.0.1:" + __import__("sys").argv[1] + "/nope") as ws:
            pass
    except Exception as e:
        print("non-ws path refused:", type(e).__name__, str(e)[:60])
asyncio.run(main())
