"""`python -m bench.dbserver DIR`: SecantusDB in a process of its own, with
its data in DIR; prints its URL, then serves until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from secantus import SecantusDBServer

from serving.database import stop_embedded


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    server = SecantusDBServer(storage_path=sys.argv[1])
    server.start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(server.uri, flush=True)
    done.wait()
    stop_embedded(server)


if __name__ == "__main__":
    main()
