"""``smpps://`` URLs, the HTTPS settings, and the TLS context builders' answers to bad files."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from backend.errors import ConfigError
from gateway.settings import SmscProfile, load_settings
from gateway.tls import (
    ClosedAfterHandshake,
    TlsFilesError,
    client_context,
    explain,
    server_context,
)
from tests.tls_certs import Certs


def test_smpps_url() -> None:
    p = SmscProfile.from_url(
        "smpps://esme:s3cret@smsc.example?ca=/etc/ca.pem&cert=/c.pem&key=/k.pem&window=20"
    )
    assert (p.tls, p.port, p.ca, p.cert, p.key, p.window) == (
        True,
        3550,
        "/etc/ca.pem",
        "/c.pem",
        "/k.pem",
        20,
    )
    assert "s3cret" not in repr(p) and repr(p).startswith("SmscProfile(smpps://esme:***@")
    plain = SmscProfile.from_url("smpp://esme:pw@smsc.example")
    assert (plain.tls, plain.port, plain.scheme) == (False, 2775, "smpp")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("smpp://a:b@h?ca=/ca.pem", "use smpps://"),
        ("smpps://a:b@h?key=/k.pem", "set together with cert"),
        ("smpps://a:b@h?tls=0", "unknown option 'tls'"),
        ("smpp+tls://a:b@h", "smpps://"),
    ],
)
def test_bad_smpps_urls(url: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        SmscProfile.from_url(url)


def test_https_settings_from_environment() -> None:
    s = load_settings(environ={"IDEA24_TLS_CERT": "/c.pem", "IDEA24_TLS_KEY": "/k.pem"})
    assert s.https and (s.tls_cert, s.tls_key) == ("/c.pem", "/k.pem")
    assert not load_settings(environ={}).https
    with pytest.raises(ConfigError, match="set both"):
        load_settings(environ={"IDEA24_TLS_CERT": "/c.pem"})
    with pytest.raises(ConfigError, match="--simulator-tls-key"):
        load_settings({"simulator_tls_cert": "/c.pem"}, environ={})


def test_client_context_verifies_and_needs_tls_1_2(certs: Certs) -> None:
    ctx = client_context(str(certs.ca), str(certs.client_cert), str(certs.client_key))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    system = client_context()  # the system store
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname


def test_server_context_requires_client_certificates_only_with_a_client_ca(
    certs: Certs,
) -> None:
    assert server_context(str(certs.server_cert), str(certs.server_key)).verify_mode == (
        ssl.CERT_NONE
    )
    mutual = server_context(str(certs.server_cert), str(certs.server_key), str(certs.client_ca))
    assert mutual.verify_mode == ssl.CERT_REQUIRED


def test_bad_files_name_the_file(certs: Certs, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TlsFilesError, match=f"ca file {tmp_path / 'none.pem'} does not exist"):
        client_context(str(tmp_path / "none.pem"))
    with pytest.raises(TlsFilesError, match=f"ca file {junk} is not a readable PEM"):
        client_context(str(junk))
    with pytest.raises(TlsFilesError, match="not a PEM certificate and its private key"):
        server_context(str(certs.server_cert), str(certs.client_key))  # the wrong key
    with pytest.raises(TlsFilesError, match="key is set without cert"):
        client_context(str(certs.ca), key=str(certs.client_key))


def test_explain_gives_a_reason_per_failure() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "unable to get local issuer certificate"
    assert explain(verify) == (
        "certificate",
        "the SMSC's certificate did not verify: unable to get local issuer certificate",
    )
    alert = ssl.SSLError(1, "alert")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert explain(alert)[0] == "refused"
    assert explain(ClosedAfterHandshake())[0] == "closed"
    failure = ssl.SSLError(1, "handshake failure")
    failure.reason = "SSLV3_ALERT_HANDSHAKE_FAILURE"
    reason, sentence = explain(failure)
    assert reason == "refused" and "wants a client certificate" in sentence
    wrong = ssl.SSLError(1, "wrong version")
    wrong.reason = "WRONG_VERSION_NUMBER"
    reason, sentence = explain(wrong)
    assert reason == "handshake" and "clear-text SMPP port" in sentence
    assert explain(TlsFilesError("cert file /x does not exist")) == (
        "files",
        "cert file /x does not exist",
    )
