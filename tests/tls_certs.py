"""Certificates made at test time (trustme): a CA for the SMSC's certificate, another for the
ESME's client certificate, and a third that signed nothing here (the "wrong CA")."""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

from gateway.tls import server_context


@dataclass(frozen=True)
class Certs:
    ca: Path  # signed server_cert
    server_cert: Path  # for 127.0.0.1 and localhost
    server_key: Path
    client_ca: Path  # signed client_cert
    client_cert: Path
    client_key: Path
    other_ca: Path  # signed nothing here
    other_client_cert: Path  # a client certificate signed by other_ca
    other_client_key: Path
    misnamed_cert: Path  # signed by ca, for smsc.example only
    misnamed_key: Path
    expired_cert: Path  # signed by ca, for 127.0.0.1, expired yesterday
    expired_key: Path

    def listener(self, *, mutual: bool = False) -> ssl.SSLContext:
        """The SMSC's listening context with ``server_cert``; ``mutual``: clients must present
        a certificate signed by ``client_ca``."""
        client_ca = str(self.client_ca) if mutual else ""
        return server_context(str(self.server_cert), str(self.server_key), client_ca)


def make_certs(directory: Path) -> Certs:
    directory.mkdir(parents=True, exist_ok=True)
    ca, client_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    paths: dict[str, Path] = {}

    def write(name: str, blob: trustme.Blob) -> None:
        path = directory / f"{name}.pem"
        blob.write_to_path(str(path))
        paths[name] = path

    def leaf(name: str, cert: trustme.LeafCert) -> None:
        write(f"{name}_cert", cert.cert_chain_pems[0])
        write(f"{name}_key", cert.private_key_pem)

    write("ca", ca.cert_pem)
    write("client_ca", client_ca.cert_pem)
    write("other_ca", other_ca.cert_pem)
    leaf("server", ca.issue_cert("127.0.0.1", "localhost"))
    leaf("client", client_ca.issue_cert("idea24-esme.example"))
    leaf("other_client", other_ca.issue_cert("idea24-esme.example"))
    leaf("misnamed", ca.issue_cert("smsc.example"))
    # OpenSSL checks validity against the machine's clock, so the expired one is dated from it.
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue_cert(
        "127.0.0.1",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    leaf("expired", expired)
    return Certs(**paths)
