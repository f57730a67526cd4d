"""Certificates for the TLS tests, made by trustme in the test: a CA and a
server certificate (127.0.0.1 and localhost by default) written as PEM files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class CertFiles:
    ca: Path  # what clients pass as --ca-cert
    cert: Path  # --tls-cert
    key: Path  # --tls-key


def make_certs(directory: Path, *hosts: str) -> CertFiles:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert(*(hosts or ("127.0.0.1", "localhost")))
    files = CertFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    for i, pem in enumerate(issued.cert_chain_pems):  # the certificate, then its chain
        pem.write_to_path(str(files.cert), append=i > 0)
    issued.private_key_pem.write_to_path(str(files.key))
    return files
