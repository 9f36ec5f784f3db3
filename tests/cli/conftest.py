"""The real-server fixture of tests/server, shared with the CLI tests that talk to it."""

from tests.server.conftest import server  # noqa: F401 - a fixture, used by name
