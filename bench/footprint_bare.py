"""`python -m bench.footprint_bare PORT`: the footprint baseline, a bare
Flask app with one route, served by cheroot with 8 threads."""

from __future__ import annotations

import sys

from cheroot import wsgi
from flask import Flask

app = Flask("bare")


@app.get("/healthz")
def healthz():
    return {"ok": True}


if __name__ == "__main__":
    wsgi.Server(("127.0.0.1", int(sys.argv[1])), app, numthreads=8, max=8).start()
