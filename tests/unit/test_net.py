"""Ports for the processes runway starts: any free one, or one in a configured range."""

from __future__ import annotations

import socket

import pytest

from runway.net import free_port


def test_a_port_in_the_range_is_never_a_taken_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        low = taken.getsockname()[1]
        for _ in range(5):
            assert free_port(port_range=f"{low}-{low + 3}") in {low + 1, low + 2, low + 3}


@pytest.mark.parametrize("bad", ["20010-20000", "a-b", "0-10", "65535-70000", "-5"])
def test_a_bad_range_is_refused_with_what_is_expected(bad):
    with pytest.raises(ValueError, match="port range"):
        free_port(port_range=bad)


def test_a_range_with_no_free_port_says_so():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match="no free port"):
            free_port(port_range=str(port))  # a single port is a range of one
