"""The SMTP sender against real aiosmtpd servers: a message arrives whole, a server that
wants a login gets it, and a refusal becomes SendFailed without the password in it."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

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
