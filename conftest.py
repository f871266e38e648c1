"""Shared pytest set-up: the loopback SMTP peers and the test CA."""

pytest_plugins = ["tests.support.fixtures"]
