"""A piece's buffers are written, then hashed, in the order they arrived, on threads of their own;
a failure on either side reaches the receiver and nothing after it is written."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from pipeline.ingest.receiving import Receiving


def test_every_buffer_is_written_then_hashed_in_order() -> None:
    written: list[bytes] = []
    digest = hashlib.sha256()
    receiving = Receiving(lambda b: written.extend(b), lambda b: [digest.update(x) for x in b], depth=2)
    data = [os.urandom(1000 + n) for n in range(50)]
    for n in range(0, 50, 2):
        if not receiving.offer(data[n : n + 2]):
            receiving.put(data[n : n + 2])  # the queue was full: wait for room
    receiving.finish()
    assert written == data and digest.digest() == hashlib.sha256(b"".join(data)).digest()


def test_a_write_that_fails_stops_the_rest_and_is_raised() -> None:
    written: list[bytes] = []
    checked: list[bytes] = []

    def write(buffers):
        if buffers[0] == b"bad":
            raise OSError(28, "No space left on device")
        written.extend(buffers)

    receiving = Receiving(write, checked.extend)
    receiving.put([b"one"])
    receiving.put([b"bad"])
    receiving.put([b"three"])
    with pytest.raises(OSError, match="No space left"):
        receiving.finish()
    assert written == [b"one"] and b"three" not in checked
    with pytest.raises(OSError):  # and to every later call
        receiving.offer([b"four"])


def test_a_full_queue_makes_the_receiver_wait_until_the_writer_catches_up() -> None:
    """Back-pressure: with the writer held, offer says no once ``depth`` buffers wait."""
    gate = threading.Event()
    receiving = Receiving(lambda b: gate.wait(10), lambda b: None, depth=2)
    accepted = [receiving.offer([b"x"]) for _ in range(5)]
    assert accepted.count(True) <= 3 and accepted[-1] is False  # one being written, two waiting
    gate.set()
    receiving.finish()


def test_stop_ends_the_threads_without_writing_what_waits() -> None:
    gate = threading.Event()
    written: list[bytes] = []

    def write(buffers):
        gate.wait(10)
        written.extend(buffers)

    receiving = Receiving(write, lambda b: None)
    for n in range(4):
        receiving.offer([bytes([n])])
    gate.set()
    receiving.stop()
    assert not any(thread.is_alive() for thread in receiving.threads)
    assert len(written) <= 1  # at most the buffer already being written
