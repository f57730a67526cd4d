"""`python -m bench.footprint_bare PORT`: the footprint baseline, a bare
Flask app with one route, served by waitress with 8 threads."""

from __future__ import annotations

import sys

from flask import Flask
from waitress import serve

app = Flask("bare")


@app.get("/healthz")
def healthz():
    return {"ok": True}


if __name__ == "__main__":
    serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=8)
