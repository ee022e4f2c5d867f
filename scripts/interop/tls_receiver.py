"""An independent HTTPS webhook receiver: aiohttp over Python's ssl (OpenSSL), verifying each
delivery with the `standardwebhooks` package. Usage: tls_receiver.py PORT CERT KEY SECONDS;
the secret comes from $WEBHOOK_SECRET. GET /count answers {"verified": n, "refused": n}."""
import asyncio, json, os, ssl, sys

from aiohttp import web
from standardwebhooks import Webhook

hook = Webhook(os.environ["WEBHOOK_SECRET"])
counts = {"verified": 0, "refused": 0}


async def deliver(request):
    body = await request.read()
    try:
        hook.verify(body, dict(request.headers))
    except Exception:
        counts["refused"] += 1
        return web.Response(status=401)
    counts["verified"] += 1
    return web.Response(status=204)


async def count(_):
    return web.Response(text=json.dumps(counts), content_type="application/json")


async def main():
    port, cert, key, seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_post("/hooks/{subscriber}", deliver)
    app.router.add_get("/count", count)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
    await asyncio.sleep(seconds)
    await runner.cleanup()


asyncio.run(main())
