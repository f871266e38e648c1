"""A package index on the host for machines that reach no registry.

``WheelIndex`` serves one directory of wheels over HTTP on one address (the
test bridge's): a page listing the files, which is what pip's
``--find-links`` reads. Inside a machine ``PIP_CONF`` makes it pip's only
source, the way Raspberry Pi OS's own ``/etc/pip.conf`` adds piwheels.
"""

from __future__ import annotations

import functools
import http.server
import pathlib
import threading

PIP_CONF = """\
[global]
no-index = true
find-links = http://{host}:{port}/
trusted-host = {host}
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class WheelIndex:
    def __init__(self, directory: pathlib.Path, host: str, port: int):
        self.directory = directory
        self.host = host
        self.port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def pip_conf(self) -> str:
        return PIP_CONF.format(host=self.host, port=self.port)

    def __enter__(self) -> WheelIndex:
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        self._server = http.server.ThreadingHTTPServer((self.host, self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
