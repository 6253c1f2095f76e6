#!/usr/bin/env python3
"""bench/soak/soak.py — the soak: two hookbox nodes on one private Redis, ~200 recovering
WebSocket clients with connection churn, a Web API publisher, a web app that injects webhook
failures, a node killed and restarted, Redis restarted empty; then every delivery is checked
(lost / duplicated / out of order, per client per channel) and RSS is followed.

Started by bench/soak/run.sh (which builds hookbox and makes the venv); see that file for the
knobs. Python 3.11, asyncio, aiohttp (client WebSockets, the web app, the publisher).

What "expected" means (also written into the report):
- A client's life on a channel is cut into *segments*. A segment starts at an own SUBSCRIBE
  that is not a successful recovery: the answer to a plain SUBSCRIBE (first join), or an answer
  with `recovered: false`. Its start is that frame's (epoch, offset). A `recovered: true` answer
  continues the segment (the replay is part of it). The segment ends at the next
  `recovered: false` answer for that client and channel, or at the end of the run.
- A publication is identified by (channel, epoch, offset) as seen in the PUBLISH frames; its
  payload `seq` ties it to the publisher's record. A publication is *expected* in a segment when
  its seq was accepted by the Web API (`[true, {}]`), it has the segment's epoch and an offset
  above the segment's start, and
    * the segment lasted to the end of the run (everything later is expected), or
    * its offset is at most the last offset the segment received, or
    * it was accepted more than GRACE s before the segment stopped being live (the client's
      connection closed, or the server sent it an UNSUBSCRIBE) — the "tail" of a segment that
      ended with `recovered: false`.
- lost = expected and not received in the segment; duplicated = an offset received more than once
  in the segment; out of order = an offset received after a higher one in the segment.
- Accepted publications that no client ever received have no known offset; they are counted
  apart, and as lost for every segment whose neighbouring observed publications enclose them.
- PUBLISH frames that arrive between sending a SUBSCRIBE and its answer are dropped, as the
  protocol's recovery rule says (the answer replays them); they are counted, not checked.
"""
import argparse
import asyncio
import collections
import csv
import json
import os
import random
import signal
import socket
import sys
import time

import aiohttp
from aiohttp import web

GRACE = 1.0  # s: a publication accepted this long before a segment stopped is its tail


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now():
    return time.monotonic()


class Stats:
    def __init__(self):
        self.c = collections.Counter()

    def inc(self, key, n=1):
        self.c[key] += n


ST = Stats()
EVENTS = []  # (t, text): the run's timeline
T0 = None


def rel():
    return now() - T0 if T0 is not None else 0.0


def event(text):
    EVENTS.append((rel(), text))
    print(f"[{rel():7.1f}s] {text}", flush=True)


# ---------------------------------------------------------------- processes


class Procs:
    def __init__(self, args):
        self.a = args
        self.redis = None
        self.nodes = {}  # n -> Popen-like (asyncio process)
        self.redis_port = free_port()
        self.node_ports = {1: free_port(), 2: free_port()}
        self.webapp_port = free_port()
        self.token = "soaktoken"
        self.incarnation = collections.Counter()

    async def start_redis(self):
        log = open(os.path.join(self.a.out, "redis.log"), "ab")
        self.redis = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", stdout=log, stderr=log)
        self.incarnation["redis"] += 1
        for _ in range(100):
            try:
                r, w = await asyncio.open_connection("127.0.0.1", self.redis_port)
                w.write(b"PING\r\n")
                await w.drain()
                line = await asyncio.wait_for(r.readline(), 1)
                w.close()
                if b"PONG" in line:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    async def stop_redis(self):
        self.redis.send_signal(signal.SIGTERM)
        await self.redis.wait()

    async def start_node(self, n):
        self.incarnation[f"node{n}"] += 1
        inc = self.incarnation[f"node{n}"]
        log = open(os.path.join(self.a.out, f"node{n}.log"), "ab")
        log.write(f"==== soak: node{n} incarnation {inc} started at t={rel():.1f}s\n".encode())
        log.flush()
        cmd = [self.a.hookbox, "--engine", "redis", "--redis-url",
               f"redis://127.0.0.1:{self.redis_port}", "-i", "127.0.0.1",
               "-p", str(self.node_ports[n]), "--cbhost", "127.0.0.1",
               "--cbport", str(self.webapp_port), "--webhook-timeout", str(self.a.webhook_timeout),
               "-r", self.token, "--max-connections-per-ip", "100000", "-L", "INFO",
               "-E", os.path.join(self.a.out, f"node{n}.warn.log")]
        p = await asyncio.create_subprocess_exec(*cmd, stdout=log, stderr=log)
        self.nodes[n] = p
        async with aiohttp.ClientSession() as s:
            for _ in range(200):
                try:
                    async with s.get(f"http://127.0.0.1:{self.node_ports[n]}/readyz",
                                     timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                if p.returncode is not None:
                    raise RuntimeError(f"node{n} exited ({p.returncode})")
                await asyncio.sleep(0.1)
        raise RuntimeError(f"node{n} not ready")

    def kill_node(self, n):
        self.nodes[n].send_signal(signal.SIGKILL)

    async def stop_all(self):
        for p in self.nodes.values():
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in self.nodes.values():
            try:
                await asyncio.wait_for(p.wait(), 15)
            except asyncio.TimeoutError:
                p.kill()
                await p.wait()
        if self.redis and self.redis.returncode is None:
            await self.stop_redis()

    def pids(self):
        out = {}
        for n, p in self.nodes.items():
            out[f"node{n}"] = p.pid if p.returncode is None else None
        out["redis"] = self.redis.pid if self.redis and self.redis.returncode is None else None
        return out


def rss_kb(pid):
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- the web app


class WebApp:
    def __init__(self, args):
        self.a = args
        self.calls = collections.Counter()  # (hook, outcome)

    def channel_options(self):
        return {"history_size": self.a.history_size, "reflective": True, "moderated": False,
                "moderated_unsubscribe": True}

    async def handle(self, request):
        hook = request.match_info["hook"]
        await request.post()
        if hook in ("connect", "disconnect", "unsubscribe") and random.random() < self.a.fail_frac:
            if random.random() < 0.5:
                self.calls[(hook, "injected_500")] += 1
                return web.Response(status=500, text="injected failure")
            self.calls[(hook, "injected_stall")] += 1
            await asyncio.sleep(self.a.webhook_timeout + 1.0)
            return web.json_response([True, {}])
        self.calls[(hook, "answered")] += 1
        if hook == "connect":
            user = request.cookies.get("user")
            if not user:
                return web.json_response([False, {"error": "no user cookie"}])
            return web.json_response([True, {"name": user}])
        if hook == "create_channel":
            return web.json_response([True, self.channel_options()])
        if hook == "destroy_channel":
            return web.json_response([False, {}])
        return web.json_response([True, {}])

    async def start(self, port):
        app = web.Application()
        app.router.add_post("/hookbox/{hook}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()


# ---------------------------------------------------------------- the publisher


class Publisher:
    def __init__(self, args, procs, channels):
        self.a = args
        self.p = procs
        self.channels = channels
        self.accepted = {c: {} for c in channels}  # seq -> t accepted (rel)
        self.failed = {c: {} for c in channels}  # seq -> t given up
        self.attempt_outcomes = collections.Counter()
        self.latency = []  # s from the first attempt to the acceptance
        self.running = True

    async def api(self, node, method, form, timeout=5):
        form = dict(form, security_token=self.p.token)
        url = f"http://127.0.0.1:{self.p.node_ports[node]}/web/{method}"
        async with self.session.post(url, data=form,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            return await r.json(content_type=None)

    async def create(self, node, ch):
        opts = {k: json.dumps(v) for k, v in WebAppOpts.items()}
        res = await self.api(node, "create_channel", dict(opts, channel_name=ch))
        self.attempt_outcomes["create_channel " + ("ok" if res[0] else res[1].get("msg", "?")[:40])] += 1

    async def publish_one(self, ch, seq):
        first = now()
        payload = json.dumps({"ch": ch, "seq": seq})
        while True:
            node = random.choice((1, 2))
            try:
                res = await self.api(node, "publish", {"channel_name": ch, "payload": payload})
                if res[0]:
                    self.attempt_outcomes["accepted"] += 1
                    self.accepted[ch][seq] = rel()
                    self.latency.append(now() - first)
                    return
                msg = str(res[1].get("msg", ""))
                if "doesn't exist" in msg:
                    self.attempt_outcomes["refused: channel doesn't exist"] += 1
                    try:
                        await self.create(node, ch)
                    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                        pass
                    continue
                self.attempt_outcomes["refused: " + msg.split(":")[0][:40]] += 1
            except asyncio.TimeoutError:
                self.attempt_outcomes["timeout (may have been applied)"] += 1
            except aiohttp.ClientConnectorError:
                self.attempt_outcomes["connection refused"] += 1
            except (aiohttp.ClientError, ValueError) as e:
                self.attempt_outcomes[f"error (may have been applied): {type(e).__name__}"] += 1
            if now() - first > self.a.publish_give_up:
                self.failed[ch][seq] = rel()
                self.attempt_outcomes["given up"] += 1
                return
            await asyncio.sleep(0.3)

    async def channel_loop(self, ch):
        seq = 0
        per = self.a.rate / len(self.channels)
        while self.running:
            await asyncio.sleep(random.expovariate(per))
            if not self.running:
                break
            seq += 1
            await self.publish_one(ch, seq)

    async def run(self):
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        for ch in self.channels:
            await self.create(1, ch)
        self.tasks = [asyncio.create_task(self.channel_loop(ch)) for ch in self.channels]

    async def stop(self):
        self.running = False
        await asyncio.gather(*self.tasks)
        await self.session.close()


WebAppOpts = {}


# ---------------------------------------------------------------- clients


class Segment:
    __slots__ = ("client", "ch", "epoch", "start", "t_start", "recv", "end", "t_end_live",
                 "recoveries", "start_kind")

    def __init__(self, client, ch, epoch, start, start_kind):
        self.client = client
        self.ch = ch
        self.epoch = epoch
        self.start = start
        self.t_start = rel()
        self.recv = []  # (offset, seq)
        self.end = None  # 'final' or 'not_recovered'
        self.t_end_live = None
        self.recoveries = 0
        self.start_kind = start_kind


class ChanState:
    __slots__ = ("state", "epoch", "pos", "seg", "resub", "asked_at", "sub_id")

    def __init__(self):
        self.state = "idle"  # idle | plain | recover | live
        self.epoch = None
        self.pos = None
        self.seg = None
        self.resub = False
        self.asked_at = None
        self.sub_id = None


SEGMENTS = []
SUSPICIOUS = []  # (t, text)


def suspicious(text):
    ST.inc("suspicious")
    if len(SUSPICIOUS) < 200:
        SUSPICIOUS.append((rel(), text))
    print(f"[{rel():7.1f}s] SUSPICIOUS {text}", flush=True)


class Client:
    def __init__(self, idx, channels, ctx):
        self.idx = idx
        self.user = f"u{idx}"
        self.channels = channels
        self.ctx = ctx
        self.chans = {c: ChanState() for c in channels}
        self.ws = None
        self.node = None
        self.connected = False
        self.connected_at = None
        self.last_churn = -1e9
        self.churning = False
        self.stop = False
        self.frame_id = 0
        self.connect_id = None
        self.sub_ids = {}
        self.recording = True

    def all_live(self):
        return self.connected and all(cs.state == "live" for cs in self.chans.values())

    async def send(self, name, args):
        self.frame_id += 1
        await self.ws.send_str(json.dumps([self.frame_id, name, args]) + "\r\n")
        return self.frame_id

    async def subscribe(self, ch):
        cs = self.chans[ch]
        args = {"channel_name": ch}
        if cs.epoch is not None:
            args["recover"] = {"epoch": cs.epoch, "offset": cs.pos}
            cs.state = "recover"
            ST.inc("client: SUBSCRIBE with recover sent")
        else:
            cs.state = "plain"
            ST.inc("client: plain SUBSCRIBE sent")
        cs.resub = False
        cs.asked_at = rel()
        fid = await self.send("SUBSCRIBE", args)
        self.sub_ids[fid] = ch

    async def run(self):
        session = self.ctx.ws_session
        first = True
        while not self.stop:
            if not first:
                await asyncio.sleep(random.uniform(0.05, 0.5))
            first = False
            node = random.choice((1, 2))
            url = f"http://127.0.0.1:{self.ctx.procs.node_ports[node]}/ws"
            try:
                ws = await session.ws_connect(url, autoping=True, heartbeat=None, max_msg_size=0,
                                              timeout=aiohttp.ClientWSTimeout(ws_close=2))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                ST.inc("client: WebSocket open failed")
                await asyncio.sleep(random.uniform(0.3, 1.0))
                continue
            self.ws = ws
            self.node = node
            self.frame_id = 0
            self.sub_ids = {}
            ST.inc("client: WebSocket opened")
            try:
                self.connect_id = await self.send(
                    "CONNECT", {"cookie_string": f"user={self.user}", "recovery": True})
                why = await self.read_loop()
            except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError, RuntimeError) as e:
                why = f"exception {type(e).__name__}"
            t = rel()
            was_connected = self.connected
            self.connected = False
            for cs in self.chans.values():
                if cs.state == "live" and cs.seg is not None:
                    cs.seg.t_end_live = t
                if cs.state == "plain":
                    cs.state = "idle"
                elif cs.state in ("live", "recover"):
                    cs.state = "idle"
            if not ws.closed:
                await ws.close()
            if self.churning:
                self.churning = False
                ST.inc("client: closed by churn")
                why = "churn"
            elif self.stop:
                ST.inc("client: closed at the end of the run")
            else:
                code = ws.close_code
                ST.inc(f"client: closed, {why}, code {code}, {'after' if was_connected else 'before'} CONNECTED")
            self.ws = None

    async def read_loop(self):
        buf = ""
        while True:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                buf += msg.data
                while "\r\n" in buf:
                    line, buf = buf.split("\r\n", 1)
                    if not line.strip():
                        continue
                    r = await self.handle(json.loads(line))
                    if r:
                        return r
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.CLOSED):
                return "by server" if not self.churning else "churn"
            elif msg.type == aiohttp.WSMsgType.ERROR:
                return "socket error"

    async def handle(self, frame):
        fid, name, args = frame
        if name == "PUBLISH":
            ch = args.get("channel_name")
            cs = self.chans.get(ch)
            if cs is None:
                suspicious(f"{self.user}: PUBLISH for a channel it never subscribed: {ch}")
                return None
            if cs.state != "live":
                ST.inc("deliveries dropped while waiting for a SUBSCRIBE answer")
                return None
            off = args.get("offset")
            payload = args.get("payload") or {}
            seq = payload.get("seq") if isinstance(payload, dict) else None
            if off is None or seq is None or payload.get("ch") != ch:
                suspicious(f"{self.user}: PUBLISH without offset/seq or wrong channel: {args}")
                return None
            if self.recording:
                cs.seg.recv.append((off, seq))
            ST.inc("deliveries recorded")
            if cs.pos is None or off > cs.pos:
                cs.pos = off
            return None
        if name == "CONNECTED":
            self.connected = True
            self.connected_at = rel()
            ST.inc("client: CONNECTED")
            for ch in self.channels:
                await self.subscribe(ch)
            return None
        if name == "SUBSCRIBE":
            if args.get("user") != self.user:
                return None  # presence (not used: channels are not presenceful)
            ch = args["channel_name"]
            cs = self.chans.get(ch)
            if cs is None:
                suspicious(f"{self.user}: own SUBSCRIBE for {ch}")
                return None
            epoch, off = args.get("epoch"), args.get("offset")
            if "recovered" in args:
                if cs.state != "recover":
                    suspicious(f"{self.user}: SUBSCRIBE {ch} recovered={args['recovered']} while {cs.state}"
                               f" (asked at {cs.asked_at})")
                    ST.inc("unsolicited recovery answers")
                    return None
                if args["recovered"]:
                    if epoch != cs.epoch:
                        suspicious(f"{self.user}: recovered=true with another epoch on {ch}")
                    ST.inc("recovered: true")
                    cs.seg.recoveries += 1
                    cs.state = "live"
                else:
                    same = epoch == cs.epoch
                    ST.inc("recovered: false, " + ("same epoch" if same else "new epoch"))
                    if same:
                        RECOVERY_FALSE_SAME.append((rel(), self.user, ch, cs.pos, off))
                    self.end_segment(cs, "not_recovered")
                    self.start_segment(cs, ch, epoch, off, "not_recovered")
                self.answered(cs)
            else:
                if cs.state == "plain":
                    self.start_segment(cs, ch, epoch, off, "first")
                    self.answered(cs)
                elif cs.state == "recover":
                    ST.inc("replayed own SUBSCRIBE while recovering (ignored)")
                else:
                    ST.inc(f"own SUBSCRIBE without recovered while {cs.state} (ignored)")
                    return None
            if cs.resub and cs.state == "live":
                await self.subscribe(ch)
            return None
        if name == "UNSUBSCRIBE":
            if args.get("user") != self.user:
                return None
            ch = args["channel_name"]
            cs = self.chans.get(ch)
            ST.inc("own UNSUBSCRIBE received")
            UNSUBS.append((rel(), self.user, ch, cs.state))
            if cs.state == "live":
                cs.seg.t_end_live = rel()
                await self.subscribe(ch)
            else:
                cs.resub = True
            return None
        if name == "ERROR":
            eid = args.get("id")
            msg = str(args.get("msg"))
            if eid is not None and eid == self.connect_id:
                ST.inc(f"CONNECT refused: {msg[:60]}")
                await self.ws.close()
                return "CONNECT refused"
            ch = self.sub_ids.get(eid)
            if ch is not None:
                ST.inc(f"SUBSCRIBE refused: {msg[:60]}")
                cs = self.chans[ch]
                asyncio.get_running_loop().call_later(
                    1.0, lambda: asyncio.ensure_future(self.retry_subscribe(ch, self.ws)))
                return None
            ST.inc(f"other ERROR: {msg[:60]}")
            return None
        ST.inc(f"frame {name} ignored")
        return None

    async def retry_subscribe(self, ch, ws):
        if ws is not None and self.ws is ws and self.connected and not ws.closed:
            try:
                await self.subscribe(ch)
            except (aiohttp.ClientError, ConnectionError, RuntimeError):
                pass

    def answered(self, cs):
        cs.state = "live"
        if cs.asked_at is not None:
            WAITS.append(rel() - cs.asked_at)

    def start_segment(self, cs, ch, epoch, off, kind):
        cs.epoch = epoch
        cs.pos = off
        cs.seg = Segment(self.idx, ch, epoch, off, kind)
        if self.recording:
            SEGMENTS.append(cs.seg)

    def end_segment(self, cs, kind):
        if cs.seg is not None and cs.seg.end is None:
            cs.seg.end = kind


RECOVERY_FALSE_SAME = []
UNSUBS = []
WAITS = []


class Ctx:
    pass


# ---------------------------------------------------------------- metrics


async def scrape(procs, n):
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{procs.node_ports[n]}/metrics",
                             timeout=aiohttp.ClientTimeout(total=5)) as r:
                return await r.text()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return ""


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
        except ValueError:
            pass
    return out


# ---------------------------------------------------------------- main


async def main():
    global T0
    ap = argparse.ArgumentParser()
    ap.add_argument("--hookbox", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--stamp", required=True)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--channels", type=int, default=20)
    ap.add_argument("--subs", type=int, default=2)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--churn", type=float, default=3, help="client reconnects started per second")
    ap.add_argument("--fail-frac", type=float, default=0.05)
    ap.add_argument("--webhook-timeout", type=float, default=2)
    ap.add_argument("--history-size", type=int, default=200)
    ap.add_argument("--node-down", type=float, default=10)
    ap.add_argument("--redis-down", type=float, default=3)
    ap.add_argument("--publish-give-up", type=float, default=15)
    ap.add_argument("--sample", type=float, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--meta", default="")
    ap.add_argument("--no-events", action="store_true",
                    help="no node kill, no Redis restart (a plain churn soak, e.g. for memory)")
    a = ap.parse_args()
    random.seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    WebAppOpts.update({"history_size": a.history_size, "reflective": True, "moderated": False,
                       "moderated_unsubscribe": True})
    warmup = min(60.0, a.duration / 6)
    t_kill = a.duration / 3
    t_redis = 2 * a.duration / 3

    T0 = now()
    procs = Procs(a)
    webapp = WebApp(a)
    await webapp.start(procs.webapp_port)
    await procs.start_redis()
    await procs.start_node(1)
    await procs.start_node(2)
    event(f"redis :{procs.redis_port}, node1 :{procs.node_ports[1]}, node2 :{procs.node_ports[2]},"
          f" web app :{procs.webapp_port}")

    channels = [f"ch{i:02d}" for i in range(a.channels)]
    pub = Publisher(a, procs, channels)
    await pub.run()
    event(f"publisher started ({a.channels} channels created through the Web API)")
    ctx = Ctx()
    ctx.procs = procs
    ctx.ws_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    clients = []
    for i in range(a.clients):
        chs = random.sample(channels, a.subs)
        clients.append(Client(i, chs, ctx))
    T0_load = rel()
    tasks = []
    for c in clients:  # ramp up over ~5 s
        tasks.append(asyncio.create_task(c.run()))
        await asyncio.sleep(5.0 / a.clients)
    event(f"{a.clients} clients started; publisher at {a.rate}/s over {a.channels} channels")

    samples = []

    def sample(phase):
        pids = procs.pids()
        row = {"t": round(rel(), 1), "phase": phase,
               "node1_rss_kb": rss_kb(pids.get("node1")), "node2_rss_kb": rss_kb(pids.get("node2")),
               "redis_rss_kb": rss_kb(pids.get("redis")),
               "clients_connected": sum(1 for c in clients if c.connected),
               "node1_pid": pids.get("node1"), "node2_pid": pids.get("node2"),
               "redis_pid": pids.get("redis")}
        samples.append(row)
        return row

    phase = {"v": "warmup"}

    async def sampler():
        while True:
            sample(phase["v"])
            await asyncio.sleep(a.sample)

    sampler_task = asyncio.create_task(sampler())

    churn_on = {"v": True}

    async def churner():
        while churn_on["v"]:
            await asyncio.sleep(1.0)
            k = int(a.churn) + (1 if random.random() < a.churn - int(a.churn) else 0)
            t = rel()
            cands = [c for c in clients if c.all_live() and t - c.last_churn > 5 and c.ws is not None]
            for c in random.sample(cands, min(k, len(cands))):
                c.last_churn = t
                c.churning = True
                ST.inc("churn closes")
                asyncio.ensure_future(c.ws.close())

    churn_task = asyncio.create_task(churner())

    async def until(t):
        d = t - rel()
        if d > 0:
            await asyncio.sleep(d)

    await until(warmup)
    warm = sample("warmup end")
    event(f"warm-up over: RSS node1 {warm['node1_rss_kb']} kB, node2 {warm['node2_rss_kb']} kB, "
          f"redis {warm['redis_rss_kb']} kB")
    phase["v"] = "load"
    if not a.no_events:
        await until(t_kill)
        before = sum(1 for c in clients if c.connected and c.node == 2)
        procs.kill_node(2)
        await procs.nodes[2].wait()
        phase["v"] = "node2 down"
        event(f"node2 SIGKILLed ({before} clients were on it)")
        await asyncio.sleep(a.node_down)
        await procs.start_node(2)
        phase["v"] = "load"
        event("node2 restarted")
        await until(t_redis)
        await procs.stop_redis()
        phase["v"] = "redis down"
        event("redis-server stopped")
        await asyncio.sleep(a.redis_down)
        await procs.start_redis()
        phase["v"] = "load"
        event("redis-server started again (empty)")
    await until(a.duration)

    # The end: no more churn or publications; everyone back and live; a drain; then the checks.
    churn_on["v"] = False
    await churn_task
    await pub.stop()
    phase["v"] = "drain"
    event("publisher and churn stopped")
    t_wait = rel()
    while rel() - t_wait < 30 and not all(c.all_live() for c in clients):
        await asyncio.sleep(0.5)
    not_live = [c for c in clients if not c.all_live()]
    event(f"{a.clients - len(not_live)} clients live on all their channels after {rel() - t_wait:.1f}s")
    await asyncio.sleep(5)
    for c in clients:
        c.recording = False
        for cs in c.chans.values():
            if cs.seg is not None and cs.seg.end is None:
                if c.all_live():
                    cs.seg.end = "final"
                else:
                    cs.seg.end = "not live at the end"
                    if cs.seg.t_end_live is None:
                        cs.seg.t_end_live = rel()
    with_clients = sample("end, clients connected")
    metrics_loaded = {n: await scrape(procs, n) for n in (1, 2)}
    per_node = collections.Counter(c.node for c in clients if c.connected)
    event("checks frozen; closing every client")
    for c in clients:
        c.stop = True
        if c.ws is not None:
            asyncio.ensure_future(c.ws.close())
    await asyncio.gather(*tasks, return_exceptions=True)
    await ctx.ws_session.close()
    phase["v"] = "idle"
    # Wait for both nodes to have no connection and no user left, then 10 s more.
    t_wait = rel()
    while rel() - t_wait < 60:
        ms = [parse_metrics(await scrape(procs, n)) for n in (1, 2)]
        conns = sum(v for m in ms for k, v in m.items() if k.startswith("hookbox_connections"))
        users = sum(m.get("hookbox_users", 0) for m in ms)
        if conns == 0 and users == 0:
            break
        await asyncio.sleep(1)
    event(f"nodes idle after {rel() - t_wait:.1f}s (connections {conns}, users {users})")
    await asyncio.sleep(10)
    final = sample("final, no clients")
    metrics_final = {n: await scrape(procs, n) for n in (1, 2)}
    for n in (1, 2):
        with open(os.path.join(a.out, f"node{n}.metrics.txt"), "w") as f:
            f.write(metrics_final[n])
    sampler_task.cancel()
    event("stopping nodes and redis")
    await procs.stop_all()
    await webapp.runner.cleanup()

    report(a, procs, pub, webapp, clients, samples, warm, with_clients, final, metrics_final,
           metrics_loaded, per_node, not_live, warmup, t_kill, t_redis)


# ---------------------------------------------------------------- checks and report


def analyse(pub, clients):
    # Where each publication was seen: (ch, epoch, offset) -> seqs; (ch, seq) -> positions.
    seqs_at = collections.defaultdict(set)
    pos_of = collections.defaultdict(set)
    receivers = collections.Counter()
    for s in SEGMENTS:
        for off, seq in s.recv:
            seqs_at[(s.ch, s.epoch, off)].add(seq)
            pos_of[(s.ch, seq)].add((s.epoch, off))
            receivers[(s.ch, s.epoch, off)] += 1
    r = collections.Counter()
    examples = collections.defaultdict(list)
    for k, v in seqs_at.items():
        if len(v) > 1:
            r["positions carrying two seqs"] += 1
            examples["positions carrying two seqs"].append((k, sorted(v)))
    accepted = pub.accepted
    acc_pos = collections.defaultdict(list)  # (ch, epoch) -> [(offset, seq, t_accept)]
    unobserved = []
    for ch, d in accepted.items():
        for seq, t in d.items():
            ps = pos_of.get((ch, seq))
            if not ps:
                unobserved.append((ch, seq, t))
                continue
            if len(ps) > 1:
                r["accepted seqs seen at two positions (publisher retry applied twice)"] += 1
            for e, off in ps:
                acc_pos[(ch, e)].append((off, seq, t))
    for k in acc_pos:
        acc_pos[k].sort()
    not_accepted_seen = 0
    for (ch, seq), ps in pos_of.items():
        if seq not in accepted[ch]:
            not_accepted_seen += 1
    r["seqs delivered although the API did not accept them"] = not_accepted_seen
    r["accepted publications no client received"] = len(unobserved)
    # Unobserved accepted seqs: their neighbours (by seq) that were observed, per channel.
    obs_sorted = collections.defaultdict(list)  # ch -> [(seq, epoch, off)] over observed seqs
    for (ch, seq), ps in pos_of.items():
        for e, off in ps:
            obs_sorted[ch].append((seq, e, off))
    for ch in obs_sorted:
        obs_sorted[ch].sort()
    import bisect
    unobs_bounds = []
    for ch, seq, t in unobserved:
        lst = obs_sorted.get(ch, [])
        i = bisect.bisect_left(lst, (seq,))
        lo = lst[i - 1] if i > 0 else None
        hi = lst[i] if i < len(lst) else None
        unobs_bounds.append((ch, seq, t, lo, hi))

    tot = collections.Counter()
    per_seg_lost = []
    for s in SEGMENTS:
        offs = [o for o, _ in s.recv]
        seen = set()
        mx = None
        for o in offs:
            if o in seen:
                tot["duplicated"] += 1
                if len(examples["duplicated"]) < 10:
                    examples["duplicated"].append((s.client, s.ch, s.epoch, o))
            elif mx is not None and o < mx:
                tot["out of order"] += 1
                if len(examples["out of order"]) < 10:
                    examples["out of order"].append((s.client, s.ch, s.epoch, o, mx))
            if s.start is not None and o <= s.start:
                tot["received at or below the segment start"] += 1
            seen.add(o)
            mx = o if mx is None else max(mx, o)
        tot["deliveries checked"] += len(offs)
        last = mx if mx is not None else s.start
        expected = set()
        tail = set()
        for off, seq, t in acc_pos.get((s.ch, s.epoch), []):
            if off <= s.start:
                continue
            if s.end == "final" or off <= last:
                expected.add(off)
            elif s.t_end_live is not None and t < s.t_end_live - GRACE:
                expected.add(off)
                tail.add(off)
        lost = expected - seen
        tot["expected"] += len(expected)
        tot["lost"] += len(lost)
        tot["lost in a tail"] += len(lost & tail)
        for ch, seq, t, lo, hi in unobs_bounds:
            if ch != s.ch or lo is None or lo[1] != s.epoch or lo[2] <= s.start:
                continue
            if s.end == "final" or (hi is not None and hi[1] == s.epoch and hi[2] <= last):
                tot["lost (accepted, received by nobody)"] += 1
                tot["expected"] += 1
        if lost:
            per_seg_lost.append((s, sorted(lost)))
        tot[f"segments ending {s.end}"] += 1
        tot["segments"] += 1
        tot["recoveries inside segments"] += s.recoveries
    for s, lost in per_seg_lost[:15]:
        seqs = [min(seqs_at[(s.ch, s.epoch, o)]) for o in lost]
        others = [receivers[(s.ch, s.epoch, o)] for o in lost]
        examples["lost"].append(
            f"client u{s.client} {s.ch} epoch {s.epoch[:8]} segment from offset {s.start} "
            f"(t={s.t_start:.1f}s, {s.start_kind}, {s.recoveries} recoveries, end {s.end}, "
            f"live until {s.t_end_live}): lost offsets {lost[:12]}{'…' if len(lost) > 12 else ''}"
            f" seqs {seqs[:12]} (received by {others[:12]} other segments)")
    return r, tot, examples, unobs_bounds, per_seg_lost


def kb(v):
    return "—" if v is None else f"{v / 1024:.1f}"


def report(a, procs, pub, webapp, clients, samples, warm, with_clients, final, metrics, metrics_loaded,
           per_node, not_live, warmup, t_kill, t_redis):
    r, tot, examples, unobs, per_seg_lost = analyse(pub, clients)
    accepted = sum(len(d) for d in pub.accepted.values())
    failed = sum(len(d) for d in pub.failed.values())
    csv_path = os.path.join(a.results_dir, f"soak-{a.stamp}-rss.csv")
    md_path = os.path.join(a.results_dir, f"soak-{a.stamp}.md")
    cols = ["t", "phase", "node1_rss_kb", "node2_rss_kb", "redis_rss_kb", "clients_connected",
            "node1_pid", "node2_pid", "redis_pid"]
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for row in samples:
            w.writerow(row)

    def peak(key, t_from=0, t_to=1e9):
        vals = [s[key] for s in samples if s[key] is not None and t_from <= s["t"] <= t_to]
        return max(vals) if vals else None

    # Samples after each restart's own warm-up, for the restarted processes.
    def first_after(key, t):
        for s in samples:
            if s["t"] >= t and s[key] is not None:
                return s[key]
        return None

    m = {n: parse_metrics(metrics[n]) for n in (1, 2)}
    ml = {n: parse_metrics(metrics_loaded[n]) for n in (1, 2)}

    def msum(prefix, which=m):
        return int(sum(v for n in (1, 2) for k, v in which[n].items() if k.startswith(prefix)))

    L = []
    L.append(f"# Soak run {a.stamp}")
    L.append("")
    L.append(f"{a.meta}")
    L.append("")
    L.append(f"Duration {a.duration:.0f} s of load, {a.clients} WebSocket clients (each in {a.subs} of "
             f"{a.channels} channels, `recovery: true`), Web API publisher at {a.rate:g}/s, churn "
             f"{a.churn:g} reconnects/s, {a.fail_frac * 100:g} % injected failures of the connect, "
             f"disconnect and unsubscribe webhooks (half HTTP 500, half a stall past "
             f"`--webhook-timeout {a.webhook_timeout:g}`), history_size {a.history_size}. " +
             ("No node kill, no Redis restart (`--no-events`)." if a.no_events else
              f"node2 SIGKILLed at {t_kill:.0f} s for {a.node_down:g} s, Redis stopped at {t_redis:.0f} s for "
              f"{a.redis_down:g} s and started again empty."))
    L.append("")
    L.append("## Timeline")
    L.append("")
    for t, text in EVENTS:
        L.append(f"- {t:7.1f} s: {text}")
    L.append("")
    L.append("## Deliveries")
    L.append("")
    L.append("| figure | value |")
    L.append("|---|---|")
    L.append(f"| publications accepted by the Web API | {accepted} |")
    L.append(f"| publications given up (not accepted within {a.publish_give_up:g} s of retries) | {failed} |")
    for k in ("deliveries checked", "expected", "lost", "lost in a tail",
              "lost (accepted, received by nobody)", "duplicated", "out of order",
              "received at or below the segment start"):
        L.append(f"| {k} | {tot[k]} |")
    for k, v in sorted(r.items()):
        L.append(f"| {k} | {v} |")
    L.append(f"| segments (client × channel × unrecovered restart) | {tot['segments']} |")
    for k, v in sorted(tot.items()):
        if k.startswith("segments ending"):
            L.append(f"| {k} | {v} |")
    L.append(f"| clients not live on all channels at the end | {len(not_live)} |")
    L.append("")
    if pub.latency:
        lt = sorted(pub.latency)
        L.append(f"Publish time until accepted (retries included) p50 / p99 / max: "
                 f"{lt[len(lt) // 2] * 1000:.1f} / {lt[int(len(lt) * 0.99)] * 1000:.1f} / {lt[-1] * 1000:.0f} ms.")
        L.append("")
    L.append("Publisher attempt outcomes: " + ", ".join(f"{k}: {v}" for k, v in sorted(pub.attempt_outcomes.items())))
    L.append("")
    L.append("## Client-side counts")
    L.append("")
    L.append("| count | value |")
    L.append("|---|---|")
    for k, v in sorted(ST.c.items()):
        L.append(f"| {k} | {v} |")
    if WAITS:
        ws = sorted(WAITS)
        L.append(f"| SUBSCRIBE answer wait p50 / p99 / max (s) | {ws[len(ws) // 2]:.3f} / "
                 f"{ws[int(len(ws) * 0.99)]:.3f} / {ws[-1]:.3f} |")
    L.append("")
    L.append("`recovered: false` with the same epoch (position asked → answer's offset), first 20: " +
             (", ".join(f"t={t:.0f}s {u} {ch} {p}→{o}" for t, u, ch, p, o in RECOVERY_FALSE_SAME[:20]) or "none"))
    L.append("")
    by_phase = collections.Counter()
    for t, u, ch, st in UNSUBS:
        when = "" if a.no_events else f"{'before' if t < t_redis else 'after'} the Redis restart, "
        by_phase[f"{when}while {st}"] += 1
    L.append("Own UNSUBSCRIBE frames received: " + (", ".join(f"{k}: {v}" for k, v in sorted(by_phase.items())) or "none"))
    if UNSUBS:
        buckets = collections.Counter(int(t // 20) * 20 for t, _, _, _ in UNSUBS)
        L.append("")
        L.append("Their times (20-s buckets, s: count): " +
                 ", ".join(f"{b}: {v}" for b, v in sorted(buckets.items())))
    L.append("")
    L.append("## Web app (webhook calls received)")
    L.append("")
    L.append("| hook | answered | injected HTTP 500 | injected stall |")
    L.append("|---|---|---|---|")
    hooks = sorted({h for h, _ in webapp.calls})
    for h in hooks:
        L.append(f"| {h} | {webapp.calls[(h, 'answered')]} | {webapp.calls[(h, 'injected_500')]} | "
                 f"{webapp.calls[(h, 'injected_stall')]} |")
    inj = sum(v for (h, o), v in webapp.calls.items() if o.startswith("injected"))
    L.append(f"| **injected failures, total** | | | {inj} |")
    L.append("")
    L.append("## Memory (VmRSS, MiB)")
    L.append("")
    L.append("| process | end of warm-up | peak | end of load (clients connected) | final (no clients) |")
    L.append("|---|---|---|---|---|")
    for key, name in (("node1_rss_kb", "node1"), ("node2_rss_kb", "node2"), ("redis_rss_kb", "redis-server")):
        L.append(f"| {name} | {kb(warm[key])} | {kb(peak(key))} | {kb(with_clients[key])} | {kb(final[key])} |")
    L.append("")
    if not a.no_events:
        L.append(f"node2 was restarted at {t_kill + a.node_down:.0f} s: its first sample ≥ 60 s after that is "
                 f"{kb(first_after('node2_rss_kb', t_kill + a.node_down + 60))} MiB, its peak after the restart "
                 f"{kb(peak('node2_rss_kb', t_kill + a.node_down))} MiB. redis-server was restarted at "
                 f"{t_redis + a.redis_down:.0f} s: first sample ≥ 60 s after that "
                 f"{kb(first_after('redis_rss_kb', t_redis + a.redis_down + 60))} MiB.")
    L.append(f"Every sample: `{os.path.basename(csv_path)}`.")
    L.append("")
    L.append("## Node metrics at the end (both nodes summed; node2 counts only since its restart)")
    L.append("")
    keys = ["hookbox_recoveries_total", "hookbox_webhook_calls_total", "hookbox_webhook_retries_total",
            "hookbox_refusals_total", "hookbox_timeouts_total", "hookbox_engine_errors_total",
            "hookbox_redis_reconnects_total", "hookbox_engine_lost_events_total",
            "hookbox_engine_replaced_channels_total", "hookbox_engine_state_losses_total",
            "hookbox_close_retries_total", "hookbox_slow_consumer_closes_total",
            "hookbox_publishes_total", "hookbox_log_lines_dropped_total"]
    agg = collections.Counter()
    for n in (1, 2):
        for k, v in m[n].items():
            if any(k.startswith(p) for p in keys):
                agg[k] += v
    L.append("| metric | node1 | node2 | sum |")
    L.append("|---|---|---|---|")
    for k in sorted(agg):
        if agg[k] == 0:
            continue
        L.append(f"| `{k}` | {m[1].get(k, 0):g} | {m[2].get(k, 0):g} | {agg[k]:g} |")
    L.append("")
    L.append(f"Clients per node at the end of the load: {dict(sorted(per_node.items()))}.")
    L.append("")
    L.append("## Node logs")
    L.append("")
    for n in (1, 2):
        path = os.path.join(a.out, f"node{n}.warn.log")
        kinds = collections.Counter()
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    parts = line.split(" - ", 3)
                    msg = parts[3] if len(parts) == 4 else line
                    key = " ".join(w for w in msg.split()[:6] if not any(ch.isdigit() for ch in w))
                    kinds[key] += 1
        except OSError:
            pass
        L.append(f"node{n} WARNING/ERROR lines by kind: " +
                 ("; ".join(f"`{k}` × {v}" for k, v in kinds.most_common(12)) or "none"))
        L.append("")
    if SUSPICIOUS or any(examples.values()) or unobs:
        L.append("## Anomalies and unreceived publications")
        L.append("")
        for t, text in SUSPICIOUS[:40]:
            L.append(f"- t={t:.1f}s {text}")
        for k, v in examples.items():
            for e in v[:15]:
                L.append(f"- {k}: {e}")
        when = collections.Counter(f"{int(t // 5) * 5}-{int(t // 5) * 5 + 5} s" for _, _, t, _, _ in unobs)
        if unobs:
            L.append("- accepted publications received by nobody, by when they were accepted: " +
                     ", ".join(f"{k}: {v}" for k, v in sorted(when.items(), key=lambda kv: int(kv[0].split("-")[0]))))
        for ch, seq, t, lo, hi in unobs[:8]:
            L.append(f"- accepted, received by nobody: {ch} seq {seq} accepted at t={t:.1f}s, "
                     f"observed neighbours (seq, epoch, offset) {lo} and {hi}")
        L.append("")
    L.append("## Definitions")
    L.append("")
    L.append(__doc__.split('What "expected" means (also written into the report):')[1].strip())
    L.append("")
    with open(md_path, "w") as f:
        f.write("\n".join(L) + "\n")
    summary = {"accepted": accepted, "failed": failed, "tot": dict(tot), "r": dict(r),
               "client": dict(ST.c), "webapp": {f"{h}/{o}": v for (h, o), v in webapp.calls.items()},
               "warm": warm, "with_clients": with_clients, "final": final}
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    print(f"soak.py: wrote {md_path} and {csv_path}")
    print(f"soak.py: accepted {accepted}, checked {tot['deliveries checked']}, lost {tot['lost']}, "
          f"dup {tot['duplicated']}, ooo {tot['out of order']}, suspicious {ST.c['suspicious']}")


if __name__ == "__main__":
    asyncio.run(main())
