"""Loopback SMTP peers that receive mail from the Postfix / msmtp under test."""

from __future__ import annotations

import dataclasses
import email.parser
import logging
import pathlib
import ssl
import threading
from collections.abc import Callable, Iterable

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

TLS_MODES = ("none", "starttls", "implicit")
PEER_HOSTNAME = "smtp-peer.test"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _not_login_data_deprecation(record: logging.LogRecord) -> bool:
    """aiosmtpd warns about its own legacy field on every successful AUTH."""
    return "login_data is deprecated" not in str(record.msg)


logging.getLogger("mail.log").addFilter(_not_login_data_deprecation)


class TestCA:
    """A throw-away certificate authority whose PEM lives in ``directory``."""

    __test__ = False

    def __init__(self, directory: pathlib.Path):
        self._ca = trustme.CA()
        self.ca_file = pathlib.Path(directory) / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        self.ca_file.chmod(0o644)

    def server_context(self, *names: str) -> ssl.SSLContext:
        """Server-side context presenting a certificate for ``names``."""
        cert = self._ca.issue_cert(*(names or LOOPBACK_NAMES))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context


@dataclasses.dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message_id: str | None
    login: str | None


def _message_id(data: bytes) -> str | None:
    value = email.parser.BytesHeaderParser().parsebytes(data)["Message-ID"]
    return str(value).strip().strip("<>") if value else None


class Mailbox:
    """Thread-safe store of received messages."""

    def __init__(self):
        self._messages: list[Received] = []
        self._changed = threading.Condition()

    def add(self, message: Received) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def messages(self) -> list[Received]:
        with self._changed:
            return list(self._messages)

    def count(self, message_id: str) -> int:
        return sum(m.message_id == message_id for m in self.messages())

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0) -> bool:
        """Block until ``predicate(messages)`` holds; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(list(self._messages)), timeout)

    def wait_for_ids(self, ids: Iterable[str], timeout: float = 30.0) -> bool:
        wanted = set(ids)
        return self.wait_for(lambda messages: wanted <= {m.message_id for m in messages}, timeout)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()


class _Handler:
    def __init__(self, mailbox: Mailbox, auth_required: bool, sender_must_match_login: bool):
        self.mailbox = mailbox
        self.auth_required = auth_required
        self.sender_must_match_login = sender_must_match_login

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        login = session.auth_data
        if self.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if self.sender_must_match_login and address.lower() != (login or "").lower():
            return f"553 5.7.1 Sender <{address}> is not owned by user {login}"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content
        self.mailbox.add(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=data,
                message_id=_message_id(data),
                login=session.auth_data,
            )
        )
        return "250 OK"


class _Controller(Controller):
    """Controller that learns its real port when bound to port 0."""

    async def _bind(self):
        server = await super()._create_server()
        self.port = server.sockets[0].getsockname()[1]
        return server

    def _create_server(self):
        return self._bind()


class SmtpPeer:
    """An aiosmtpd server on loopback storing everything it accepts."""

    def __init__(
        self,
        *,
        tls: str = "none",
        ca: TestCA | None = None,
        users: dict[str, str] | None = None,
        sender_must_match_login: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_names: tuple[str, ...] = LOOPBACK_NAMES,
    ):
        if tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {TLS_MODES}, not {tls!r}")
        if tls != "none" and ca is None:
            raise ValueError(f"tls={tls!r} needs a ca")
        if sender_must_match_login and not users:
            raise ValueError("sender_must_match_login needs users")
        self.tls = tls
        self.ca = ca
        self.users = dict(users or {})
        self.sender_must_match_login = sender_must_match_login
        self.host = host
        self.port = port
        self.cert_names = tuple(cert_names)
        self.mailbox = Mailbox()
        self._controller: _Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            if self.users.get(login) == auth_data.password.decode():
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    def _controller_options(self) -> dict:
        context = None if self.tls == "none" else self.ca.server_context(*self.cert_names)
        options = {"auth_require_tls": self.tls == "starttls"}
        if self.users:
            options["authenticator"] = self._authenticate
        if self.tls == "starttls":
            options.update(tls_context=context, require_starttls=True)
        elif self.tls == "implicit":
            options["ssl_context"] = context
        return options

    def start(self) -> SmtpPeer:
        if self._controller is None:
            controller = _Controller(
                _Handler(self.mailbox, bool(self.users), self.sender_must_match_login),
                hostname=self.host,
                port=self.port,
                server_hostname=PEER_HOSTNAME,
                **self._controller_options(),
            )
            controller.start()
            self._controller = controller
            self.port = controller.port
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpPeer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
