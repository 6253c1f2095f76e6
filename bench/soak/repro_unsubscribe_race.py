#!/usr/bin/env python3
"""bench/soak/repro_unsubscribe_race.py — the soak's "own UNSUBSCRIBE while live" finding, alone.

A user's only connection closes; its close handling (forced unsubscribe, with the `unsubscribe`
webhook because the channel is `moderated_unsubscribe`) is slow because the web app is slow to
answer that hook. The same user connects again meanwhile, asks to recover the channel, gets
`recovered: true` and its replay, and then receives an UNSUBSCRIBE for the channel from the old
connection's close handling: the new connection is no longer subscribed, though its own
SUBSCRIBE succeeded after the old connection was gone.

Usage: bench/soak/.venv/bin/python bench/soak/repro_unsubscribe_race.py target/release/hookbox
       [memory|redis]   (redis: a private redis-server on a free port)
Prints every frame the second connection receives, with the time since it opened.
"""
import asyncio
import json
import socket
import sys
import time

import aiohttp
from aiohttp import web

STALL = 1.5  # s the web app takes to answer the unsubscribe hook (under --webhook-timeout 2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main():
    hookbox = sys.argv[1]
    engine = sys.argv[2] if len(sys.argv) > 2 else "memory"
    hp, wp = free_port(), free_port()
    hooks = []

    async def hook(request):
        name = request.match_info["hook"]
        await request.post()
        hooks.append((time.monotonic(), name))
        if name == "connect":
            return web.json_response([True, {"name": request.cookies["user"]}])
        if name == "create_channel":
            return web.json_response([True, {"history_size": 50, "moderated": False,
                                             "moderated_unsubscribe": True}])
        if name == "unsubscribe":
            await asyncio.sleep(STALL)
        if name == "destroy_channel":
            return web.json_response([False, {}])
        return web.json_response([True, {}])

    app = web.Application()
    app.router.add_post("/hookbox/{hook}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", wp).start()
    procs = []
    extra = []
    if engine == "redis":
        rp = free_port()
        procs.append(await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(rp), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", stdout=asyncio.subprocess.DEVNULL))
        extra = ["--engine", "redis", "--redis-url", f"redis://127.0.0.1:{rp}"]
        await asyncio.sleep(0.5)
    procs.append(await asyncio.create_subprocess_exec(
        hookbox, "-i", "127.0.0.1", "-p", str(hp), "--cbport", str(wp), "-r", "tok",
        "--webhook-timeout", "2", "-L", "WARNING", *extra, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL))
    try:
        await scenario(hp, hooks)
    finally:
        for p in procs:
            p.terminate()
            await p.wait()
        await runner.cleanup()


async def scenario(hp, hooks):
    s = aiohttp.ClientSession()
    for _ in range(100):
        try:
            async with s.get(f"http://127.0.0.1:{hp}/readyz") as r:
                if r.status == 200:
                    break
        except aiohttp.ClientError:
            await asyncio.sleep(0.1)

    async def publish(seq):
        async with s.post(f"http://127.0.0.1:{hp}/web/publish",
                          data={"security_token": "tok", "channel_name": "ch",
                                "payload": json.dumps({"seq": seq})}) as r:
            return await r.json(content_type=None)

    def frames(msg):
        return [json.loads(x) for x in msg.data.split("\r\n") if x.strip()]

    # Connection 1: join, get two publications, leave (its close handling now stalls 1.5 s).
    ws = await s.ws_connect(f"http://127.0.0.1:{hp}/ws")
    await ws.send_str(json.dumps([1, "CONNECT", {"cookie_string": "user=x", "recovery": True}]) + "\r\n")
    await ws.receive()
    await ws.send_str(json.dumps([2, "SUBSCRIBE", {"channel_name": "ch"}]) + "\r\n")
    own = frames(await ws.receive())[0][2]
    epoch, pos = own["epoch"], own["offset"]
    for seq in (1, 2):
        await publish(seq)
        for f in frames(await ws.receive()):
            pos = max(pos, f[2].get("offset", pos))
    await ws.close()
    print(f"connection 1 closed at position ({epoch}, {pos})")
    await publish(3)  # missed while away
    await asyncio.sleep(0.2)

    # Connection 2: the same user, recovering.
    t0 = time.monotonic()
    ws = await s.ws_connect(f"http://127.0.0.1:{hp}/ws")
    await ws.send_str(json.dumps([1, "CONNECT", {"cookie_string": "user=x", "recovery": True}]) + "\r\n")
    sent = False

    async def publisher():
        for seq in range(4, 10):
            await asyncio.sleep(0.5)
            await publish(seq)

    pt = asyncio.create_task(publisher())
    while time.monotonic() - t0 < 4:
        try:
            msg = await asyncio.wait_for(ws.receive(), 4 - (time.monotonic() - t0))
        except asyncio.TimeoutError:
            break
        if msg.type != aiohttp.WSMsgType.TEXT:
            print(f"{time.monotonic() - t0:6.3f}s {msg.type}")
            break
        for f in frames(msg):
            a = f[2]
            short = {k: a[k] for k in ("channel_name", "user", "offset", "epoch", "recovered",
                                        "payload", "name") if k in a}
            print(f"{time.monotonic() - t0:6.3f}s  {f[1]} {json.dumps(short)}")
            if f[1] == "CONNECTED" and not sent:
                sent = True
                await ws.send_str(json.dumps([2, "SUBSCRIBE", {
                    "channel_name": "ch", "recover": {"epoch": epoch, "offset": pos}}]) + "\r\n")
    await pt
    print("webhooks (s since connection 2 opened): " +
          ", ".join(f"{t - t0:+.3f} {n}" for t, n in hooks))
    await ws.close()
    await s.close()


asyncio.run(main())
