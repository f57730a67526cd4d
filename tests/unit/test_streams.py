"""The C-io streams a plain connection of the WSGI server reads and writes
through (serving/streams.py): `has_data` answers at once and tells what is
waiting, buffered or not; the writer sends each write whole."""

from __future__ import annotations

import socket
import threading

import pytest

from serving.streams import Reader, Writer, make_file


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    server.settimeout(5)  # as cheroot sets a connection's (its read timeout)
    yield server, client
    server.close()
    client.close()


def test_has_data_is_false_at_once_when_nothing_was_sent_and_keeps_the_timeout(pair):
    server, _ = pair
    reader = Reader(server)
    assert reader.has_data() is False  # a blocking read would wait 5 s
    assert server.gettimeout() == 5


def test_has_data_sees_bytes_on_the_socket_and_in_the_buffer(pair):
    server, client = pair
    reader = Reader(server)
    client.sendall(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")  # two, pipelined
    assert reader.has_data() is True
    assert reader.readline() == b"GET /a HTTP/1.1\r\n"
    assert reader.readline() == b"\r\n"
    assert reader.has_data() is True  # the second request, read into the buffer already
    assert reader.read(19) == b"GET /b HTTP/1.1\r\n\r\n"
    assert reader.has_data() is False


def test_has_data_is_false_for_a_closed_or_reset_peer(pair):
    server, client = pair
    reader = Reader(server)
    client.close()
    assert reader.has_data() is False
    assert reader.read(10) == b""


def test_has_data_is_false_not_an_error_once_the_connection_is_closed(pair):
    server, client = pair
    reader = Reader(server)
    client.sendall(b"GET / HTTP/1.1\r\n")
    reader.close()  # as a connection's close() does
    server.close()
    assert reader.has_data() is False


def test_the_writer_sends_each_write_whole_and_refuses_text(pair):
    server, client = pair
    writer = make_file(server, "wb")
    assert isinstance(writer, Writer)
    body = b"x" * 3_000_000  # more than a socket buffer holds: sent in parts
    received = bytearray()
    client.settimeout(5)

    def drain():
        while len(received) < len(body):
            received.extend(client.recv(1 << 16))

    reading = threading.Thread(target=drain)
    reading.start()
    assert writer.write(body) == len(body)
    reading.join(10)
    assert bytes(received) == body
    with pytest.raises(TypeError):
        writer.write("text")


def test_make_file_gives_a_reader_for_read_modes(pair):
    server, _ = pair
    assert isinstance(make_file(server, "rb"), Reader)
