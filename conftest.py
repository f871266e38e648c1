"""Shared pytest set-up: the loopback SMTP peers and the test CA."""

import salt._logging.impl

pytest_plugins = ["tests.support.fixtures"]


def pytest_sessionfinish(session, exitstatus):
    # Salt's temporary log handler would otherwise write to a closed stderr at exit.
    salt._logging.impl.shutdown_temp_handler()
