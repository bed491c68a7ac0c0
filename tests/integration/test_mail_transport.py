"""The SMTP sender against real aiosmtpd servers: a message arrives whole, a server that
wants a login gets it (in clear on a trusted relay, after STARTTLS, or over TLS, with the
server's certificate checked), and a refusal becomes SendFailed without the password."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from pipelines.embedded import free_port
from pipelines.mail.devserver import KeepToFolder
from pipelines.mail.transport import SendFailed, SmtpConfig, SmtpTransport
from tests.support.mail import Mailbox, body

SECRET = "s3cret-smtp-passphrase"
# The test relay takes a login over plain SMTP on loopback, which aiosmtpd rightly warns of.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def only(username: bytes, password: bytes):
    def authenticator(server, session, envelope, mechanism, data) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            username, password)
        return AuthResult(success=ok, handled=False)
    return authenticator


@pytest.fixture
def relay(tmp_path):
    """An SMTP server that wants a login (over plain SMTP: a relay on a trusted network)."""
    port = free_port()
    controller = Controller(KeepToFolder(tmp_path), hostname="127.0.0.1", port=port,
                            authenticator=only(b"farm", SECRET.encode()),
                            auth_required=True, auth_require_tls=False)
    controller.start()
    yield port, Mailbox(tmp_path)
    controller.stop()


def config(port: int, password: str) -> SmtpConfig:
    return SmtpConfig("127.0.0.1", port, "none", "farm", password, "Farm <farm@studio.example>")


async def test_a_message_reaches_a_server_that_wants_a_login(relay):
    port, mailbox = relay
    await SmtpTransport(config(port, SECRET)).send("li@studio.example", "Hello ✓",
                                                   "Bonjour Léa,\n\n    123456\n")
    message = await mailbox.wait("li@studio.example", "Hello ✓", timeout_s=10)
    assert message["From"] == "Farm <farm@studio.example>"
    assert body(message) == "Bonjour Léa,\n\n    123456\n"


async def test_kept_messages_read_as_written_and_only_by_the_machine_s_owner(relay, tmp_path):
    port, mailbox = relay
    link = "http://localhost:3000/accept-invite?token=" + "Ab9_-" * 12
    await SmtpTransport(config(port, SECRET)).send("li@studio.example", "Invitation",
                                                   f"Bonjour Léa,\n\n  {link}\n")
    await mailbox.wait("li@studio.example", "Invitation", timeout_s=10)
    [kept] = tmp_path.glob("*.eml")
    assert (kept.stat().st_mode & 0o777, tmp_path.stat().st_mode & 0o777) == (0o600, 0o700)
    text = kept.read_text(encoding="utf-8")  # a link to copy whole, not quoted-printable
    assert f"\n  {link}\n" in text and "Bonjour Léa," in text


async def test_a_wrong_password_is_a_send_failure_that_does_not_repeat_it(relay):
    port, mailbox = relay
    with pytest.raises(SendFailed) as failed:
        await SmtpTransport(config(port, "wrong-passphrase")).send("li@studio.example", "x", "y")
    assert "SMTPAuthenticationError" in str(failed.value)
    assert "wrong-passphrase" not in str(failed.value)
    assert mailbox.messages("li@studio.example") == []


async def test_no_server_is_a_send_failure():
    with pytest.raises(SendFailed) as failed:
        await SmtpTransport(config(free_port(), SECRET)).send("li@studio.example", "x", "y")
    assert "ConnectionRefusedError" in str(failed.value)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_encrypted_servers_are_reached_and_their_certificate_checked(
        security, tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    port = free_port()
    inbox = tmp_path / "inbox"
    # (aiosmtpd offers AUTH on an implicit-TLS connection only when told it need not wait
    # for STARTTLS: the connection is encrypted from its first byte.)
    tls = ({"tls_context": server_side, "require_starttls": True} if security == "starttls"
           else {"ssl_context": server_side, "auth_require_tls": False})
    controller = Controller(KeepToFolder(inbox), hostname="127.0.0.1", port=port,
                            authenticator=only(b"farm", SECRET.encode()), auth_required=True,
                            **tls)
    controller.start()
    try:
        sender = SmtpTransport(SmtpConfig("127.0.0.1", port, security, "farm", SECRET,
                                          "farm@studio.example"))
        # A certificate nobody vouches for is refused: the password never leaves.
        with pytest.raises(SendFailed) as untrusted:
            await sender.send("li@studio.example", "x", "y")
        assert "CERTIFICATE_VERIFY_FAILED" in str(untrusted.value)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # this machine now trusts it
        await sender.send("li@studio.example", f"over {security}", "z\n")
        await Mailbox(inbox).wait("li@studio.example", f"over {security}", timeout_s=10)
    finally:
        controller.stop()
