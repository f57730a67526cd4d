"""A channel process: its stores, its app, served by cheroot."""

from __future__ import annotations

from pymongo.database import Database

from channel.app import create_app
from channel.artifacts import ArtifactStore
from channel.inputs import InputStore
from channel.store import ResultStore
from serving.tls import ServerCert
from serving.wsgi import BackgroundServer


class ChannelServer:
    def __init__(
        self,
        db: Database,
        token: str,
        host: str = "127.0.0.1",
        port: int = 7071,
        config: dict | None = None,
        tls: ServerCert | None = None,
        receipt_key: bytes | None = None,
    ):
        self.store = ResultStore(db)
        self.store.ensure_indexes()
        self.artifacts = ArtifactStore(db)
        self.artifacts.ensure_indexes()
        self.inputs = InputStore(db, self.artifacts)
        self.inputs.ensure_indexes()
        self.app = create_app(
            config,
            store=self.store,
            token=token,
            artifacts=self.artifacts,
            receipt_key=receipt_key,
            inputs=self.inputs,
        )
        self.server = BackgroundServer(self.app, host, port, threads=16, cert=tls)
        self.url = self.server.url

    def start(self) -> ChannelServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
