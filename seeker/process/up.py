"""`seeker up`: seeker, channel and one local helper in one process, sharing
one database (embedded unless a URL is given)."""

from __future__ import annotations

from pathlib import Path

from channel.server import ChannelServer
from helper.agent import HelperAgent
from helper.config import HelperConfig
from seeker.process.server import SeekerServer
from serving.database import DatabaseConnection
from serving.secret_files import resolve_secret
from serving.tls import ServerCert


class Stack:
    def __init__(
        self,
        data_dir: Path,
        token: str,
        mongo_url: str | None = None,
        host: str = "127.0.0.1",
        seeker_port: int = 7070,
        channel_port: int = 7071,
        helper_port: int = 7072,
        slots: int = 2,
        helper_name: str | None = None,
        tls: ServerCert | None = None,
        ca_cert: Path | None = None,
        databases: tuple[str, str] = ("seeker", "channel"),
        prefetch: int = 0,
        pull: bool = False,
    ):
        """`tls`: the three servers serve HTTPS with this one certificate;
        `ca_cert`: the CA that signed it, which they trust as each other's
        clients; `databases`: the seeker's and the channel's (when the URL
        names none); `prefetch`, `pull`: the helper's (helper start
        --prefetch, --pull)."""
        self.conn = DatabaseConnection(mongo_url, data_dir)
        self.seeker_db = self.conn.database(databases[0])
        self.channel_db = self.conn.database(databases[1])
        self.channel = ChannelServer(self.channel_db, token, host, channel_port, tls=tls)
        credential_key, _ = resolve_secret(None, Path(data_dir), "credential-key")
        self.seeker = SeekerServer(
            self.seeker_db,
            token,
            self.channel.url,
            host,
            seeker_port,
            credential_key=credential_key.encode(),
            tls=tls,
            ca_cert=ca_cert,
        )
        self.helper = HelperAgent(
            HelperConfig(
                seeker_url=self.seeker.url,
                channel_url=self.channel.url,
                token=token,
                data_dir=Path(data_dir) / "helper",
                host=host,
                port=helper_port,
                slots=slots,
                prefetch=prefetch,
                pull=pull,
                name=helper_name,
                tls=tls,
                ca_cert=ca_cert,
            )
        )

    def start(self) -> Stack:
        self.channel.start()
        self.seeker.start()
        self.helper.start()
        return self

    def stop(self) -> None:
        self.helper.stop()
        self.seeker.stop()
        self.channel.stop()
        self.conn.close()
