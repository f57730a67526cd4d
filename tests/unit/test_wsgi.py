"""The WSGI server every service runs on: many keep-alive clients (a fleet
of helpers) do not lock new ones out, and stop() ends it cleanly."""

from __future__ import annotations

import requests
from flask import Flask

from serving.wsgi import BackgroundServer


def test_a_large_fleet_of_keep_alive_clients_does_not_lock_out_the_next_one():
    app = Flask(__name__)
    app.get("/ping")(lambda: "pong")
    server = BackgroundServer(app, "127.0.0.1", 0, threads=4).start()
    fleet = [requests.Session() for _ in range(150)]  # more than waitress's default 100
    try:
        for session in fleet:
            assert session.get(f"{server.url}/ping", timeout=5).text == "pong"
        assert requests.get(f"{server.url}/ping", timeout=5).text == "pong"
    finally:
        for session in fleet:
            session.close()
        server.stop()


def test_stop_closes_the_server():
    app = Flask(__name__)
    app.get("/ping")(lambda: "pong")
    server = BackgroundServer(app, "127.0.0.1", 0).start()
    keep_alive = requests.Session()
    assert keep_alive.get(f"{server.url}/ping", timeout=5).ok
    server.stop()
    keep_alive.close()
    try:
        requests.get(f"{server.url}/ping", timeout=2)
        reached = True
    except requests.ConnectionError:
        reached = False
    assert reached is False
