"""The long polls of a simulated fleet of pulling helpers, all on one
asyncio event loop: a connection of its own per helper, as a real helper
holds, but no thread. (A thread per helper, as helper/agent.py has, is
right for one helper on a host; 5,000 of them in one Python process on two
cores spend the machine contending for the interpreter lock the moment
their polls come back together, and the fleet, not the seeker, is then
what the benchmark measures.)

Each poll is an HTTP/1.1 POST on a keep-alive connection, read with its
Content-Length (what the seeker's server sends); a reply with work in it
is handled on a small thread pool with the helper's blocking code
(`PullingHelper.handle`: acknowledgements and refusals are ordinary
requests)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from helper.poller import POLL_SLACK

log = logging.getLogger("bench.polls")
HANDLERS = 8  # threads that handle replies with work in them


class PollConnection:
    """One helper's keep-alive connection to the seeker."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict, credential: str) -> tuple[int, dict]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {credential}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        reply = await self.reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, json.loads(reply) if reply else {}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Polls:
    """Runs `PullingHelper`s' poll loops (their `poll_body()`, `polled()`,
    `poll_wait()`, `handle()`, `register()` and `credential`) on one event
    loop thread."""

    def __init__(self, seeker_url: str, counters, stop: threading.Event):
        url = urlsplit(seeker_url.split(",")[0])
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.counters = counters
        self.stop = stop
        self.loop = asyncio.new_event_loop()
        self.pool = ThreadPoolExecutor(HANDLERS, thread_name_prefix="poll-reply")
        threading.Thread(target=self.loop.run_forever, name="polls", daemon=True).start()

    def start(self, helper) -> None:
        """Poll for `helper` from now on (thread-safe)."""
        asyncio.run_coroutine_threadsafe(self._poll_forever(helper), self.loop)

    async def _poll_forever(self, helper) -> None:
        """helper/agent.py `_poll_loop`: poll, handle, again; back off up to
        5 s while the seeker cannot be reached or refuses."""
        conn, backoff = PollConnection(self.host, self.port), 0.5
        path = f"/api/v1/helpers/{helper.helper_id}/work"
        while not self.stop.is_set():
            self.counters.add("polling")
            try:
                status, work = await asyncio.wait_for(
                    conn.post(path, helper.poll_body(), helper.credential),
                    helper.poll_wait() + POLL_SLACK,
                )
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                status, work = None, {"error": f"{type(exc).__name__}: {exc}"}
                conn.close()
            finally:
                self.counters.add("polling", -1)
            if status != 200:
                await self._failed(helper, status, work, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.counters.add("polls")
            helper.polled(work)
            backoff = 0.5
            if work.get("assignments") or work.get("stop"):
                await self._off_loop(helper.handle, work)

    async def _failed(self, helper, status: int | None, why: dict, backoff: float) -> None:
        self.counters.add("poll_failures")
        log.warning("poll of %s failed (%s): %s", helper.name, status, why.get("error"))
        if status in (401, 404, 409):  # purged, removed or restarted: register again
            await self._off_loop(helper.register)
        await asyncio.sleep(backoff)

    async def _off_loop(self, fn: Callable, *args) -> None:
        await self.loop.run_in_executor(self.pool, fn, *args)
