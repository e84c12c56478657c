"""Request bodies read safely: a broken or abandoned upload is a clean 400, and a JSON body's shape
(nesting depth, number of values) is bounded on the raw bytes before anything is parsed.

Parsing is where a small body costs the most memory: 28 MiB of one million tiny messages become
about 500 MB of Python objects before any schema sees them. The scan below walks the bytes once
(strings are skipped with `find`, never character by character) and gives up at the first limit,
so a hostile body costs milliseconds and no allocation.
"""
from __future__ import annotations

import re

from flask import Flask, request

from app.body_deadline import BodyDeadline
from app.core.errors import InvalidRequest
from app.jsonio import loads

MAX_JSON_DEPTH = 64          # chat bodies nest 6 deep; JSON-schema tool parameters a dozen or so
MAX_JSON_VALUES = 100_000    # objects, arrays and members; a long conversation with tools is a few thousand

_STRUCTURE = re.compile(rb'[\[\]{},"]')
_STRING_TAIL = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # the rest of a string holding escapes
_OPEN, _CLOSE, _QUOTE = frozenset(b"[{"), frozenset(b"]}"), ord('"')


class BodyUnreadable(InvalidRequest):
    """The body could not be read as sent: malformed chunked encoding and the like."""

    code = "body_unreadable"


class ClientDisconnected(InvalidRequest):
    """The client hung up while sending its body; nobody reads this answer, but the log does."""

    code = "client_disconnected"


def read_json_body() -> object:
    """The body as JSON whatever the Content-Type (curl -d sends form encoding by default)."""
    raw = request.get_data(cache=False)
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object")
    check_json_shape(raw)
    try:
        return loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The request body is not valid JSON") from None


def check_json_shape(raw: bytes | bytearray, max_depth: int = MAX_JSON_DEPTH,
                     max_values: int = MAX_JSON_VALUES) -> None:
    """400 when the JSON in `raw` nests deeper than `max_depth` or holds more than `max_values` values.

    Values are counted as containers plus commas outside strings (an upper bound of the members).
    Malformed JSON is left for the parser to report.
    """
    depth = values = 0
    position = 0
    search = _STRUCTURE.search
    while True:
        match = search(raw, position)
        if match is None:
            return
        byte = raw[match.start()]
        position = match.end()
        if byte == _QUOTE:
            end = raw.find(b'"', position)
            if end >= 0 and raw.find(b"\\", position, end) >= 0:
                tail = _STRING_TAIL.match(raw, position)
                end = tail.end() - 1 if tail else -1
            if end < 0:
                return  # an unterminated string: not JSON
            position = end + 1
            continue
        if byte in _OPEN:
            depth += 1
            if depth > max_depth:
                raise InvalidRequest(f"The JSON body nests deeper than {max_depth} levels", code="json_too_deep")
        elif byte in _CLOSE:
            depth -= 1
            continue
        values += 1
        if values > max_values:
            raise InvalidRequest(f"The JSON body holds more than {max_values} values (objects, arrays and their "
                                 "members)", code="json_too_complex")


def init_app(app: Flask, body_timeout: float) -> None:
    """Read every request body through `_GuardedInput`, so no read failure surfaces as a 500 and no body
    takes longer than `body_timeout` seconds to arrive (GATEWAY_BODY_TIMEOUT, app/body_deadline.py)."""
    inner = app.wsgi_app

    def guarded(environ, start_response):
        stream = environ.get("wsgi.input")
        if stream is not None:
            length = environ.get("CONTENT_LENGTH", "")
            expected = int(length) if length.isascii() and length.isdigit() and len(length) < 19 else None
            environ["wsgi.input"] = _GuardedInput(stream, expected, BodyDeadline.for_request(environ, body_timeout))
        return inner(environ, start_response)

    app.wsgi_app = guarded


class _GuardedInput:
    """The server's input stream, with its failures translated.

    An OSError while reading (gunicorn's NoMoreData, a reset), or the end of the stream before the
    Content-Length was reached (gunicorn then simply returns less), means the client went away: its
    request's log line says so, no traceback. Anything else the server's reader raises (gunicorn's
    InvalidChunkSize for a chunk size of `zz`, a missing chunk terminator) means the body is
    malformed: a 400.
    """

    def __init__(self, stream, expected: int | None = None, deadline: BodyDeadline | None = None):
        self._stream = stream
        self._expected = expected
        self._received = 0
        self._deadline = deadline

    def read(self, *args):
        return self._counted(self._guard(self._stream.read, *args), args)

    def readline(self, *args):
        return self._counted(self._guard(self._stream.readline, *args), args)

    def readlines(self, *args):
        lines = self._guard(self._stream.readlines, *args)
        self._received += sum(len(line) for line in lines)
        return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self):
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def _counted(self, data: bytes, args: tuple) -> bytes:
        self._received += len(data)
        asked_for_more = not args or args[0] is None or args[0] != 0
        if not data and asked_for_more and self._expected is not None and self._received < self._expected:
            raise ClientDisconnected("The connection closed before the whole request body arrived")
        return data

    def _guard(self, read, *args):
        try:
            return self._deadline.bounded(read, *args) if self._deadline is not None else read(*args)
        except OSError:  # the request's log line says client_disconnected: that is all there is to say
            raise ClientDisconnected("The connection closed before the whole request body arrived") from None
        except InvalidRequest:
            raise
        except Exception as exc:
            raise BodyUnreadable(f"The request body could not be read ({type(exc).__name__}); check its "
                                 "Content-Length or chunked encoding") from None
