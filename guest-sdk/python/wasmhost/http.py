"""Outgoing HTTP for Python guests, through ``wasi:http/outgoing-handler``.

The host lets a request through only to the hosts its function or endpoint declares
(``allowed_outbound_hosts=["https://api.example.com", "http://127.0.0.1:*"]`` on
``@app.function()`` or ``@modal.fastapi_endpoint()``); any other is refused with
:class:`OutboundDenied` before a connection is made. Redirects are not followed: the
3xx comes back, and a request to its ``Location`` is checked again.

``fetch`` blocks the instance while it waits. Importing this module also routes
``urllib.request.urlopen`` through it for ``http://`` and ``https://`` URLs.
"""

import email.message
import io
import urllib.error
import urllib.parse
import urllib.request
import urllib.response

from componentize_py_types import Err
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as wasi

__all__ = ["OutboundDenied", "OutboundError", "Response", "fetch"]

# The most one blocking write may carry (wasi:io's `blocking-write-and-flush`).
_WRITE_CHUNK = 4096
_READ_CHUNK = 64 * 1024

# Headers wasi:http lets only the host set (it refuses a request that carries them).
_HOST_SET = frozenset(
    ("host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "http2-settings")
)

_METHODS = {
    "GET": wasi.Method_Get,
    "HEAD": wasi.Method_Head,
    "POST": wasi.Method_Post,
    "PUT": wasi.Method_Put,
    "DELETE": wasi.Method_Delete,
    "CONNECT": wasi.Method_Connect,
    "OPTIONS": wasi.Method_Options,
    "TRACE": wasi.Method_Trace,
    "PATCH": wasi.Method_Patch,
}


class OutboundError(OSError):
    """The request failed: the host or the network answered with a ``wasi:http`` error code."""

    def __init__(self, url, code):
        self.url = url
        self.code = type(code).__name__.removeprefix("ErrorCode_")
        detail = getattr(code, "value", None)
        message = f"request to {url} failed: {self.code}"
        if detail is not None:
            message += f" ({detail})"
        super().__init__(message)


class OutboundDenied(OutboundError, PermissionError):
    """The host refused the request: its scheme, host and port are not in the
    function's ``allowed_outbound_hosts``."""

    def __init__(self, url, code):
        super().__init__(url, code)
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        self.args = (
            f"the host refused the request to {url}: {origin} is not in this function's "
            "allowed_outbound_hosts",
        )

    def __str__(self):
        return self.args[0]


class Response:
    """What came back: ``status``, ``headers`` (a list of ``(name, value)`` pairs, names
    lower-case) and the whole ``body`` as bytes."""

    def __init__(self, url, status, headers, body):
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        """The first value of header ``name`` (any case), or ``default``."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), default)

    def text(self, encoding="utf-8"):
        """The body decoded as text."""
        return self.body.decode(encoding, errors="replace")

    def json(self):
        """The body parsed as JSON."""
        import json

        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} from {self.url}>"


def _raise(url, code):
    if isinstance(code, wasi.ErrorCode_HttpRequestDenied):
        raise OutboundDenied(url, code)
    raise OutboundError(url, code)


def _request(url, method, headers):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an absolute http:// or https:// URL")
    pairs = headers.items() if hasattr(headers, "items") else headers
    fields = wasi.Fields.from_list(
        [
            (name.lower(), value.encode("latin-1") if isinstance(value, str) else bytes(value))
            for name, value in pairs
            if name.lower() not in _HOST_SET
        ]
    )
    request = wasi.OutgoingRequest(fields)
    upper = method.upper()
    request.set_method(_METHODS[upper]() if upper in _METHODS else wasi.Method_Other(upper))
    request.set_scheme(wasi.Scheme_Https() if parts.scheme == "https" else wasi.Scheme_Http())
    request.set_authority(parts.netloc)
    path = parts.path or "/"
    request.set_path_with_query(f"{path}?{parts.query}" if parts.query else path)
    return request


def _write_body(request, body):
    outgoing = request.body()
    with outgoing.write() as stream:
        for start in range(0, len(body), _WRITE_CHUNK):
            stream.blocking_write_and_flush(body[start : start + _WRITE_CHUNK])
    wasi.OutgoingBody.finish(outgoing, None)


def _read_body(url, response):
    incoming = response.consume()
    chunks = []
    with incoming.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(_READ_CHUNK))
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise OutboundError(url, e.value) from None
    wasi.IncomingBody.finish(incoming)
    return b"".join(chunks)


def fetch(url, method="GET", headers=(), body=None):
    """Sends one request and returns its :class:`Response`.

    ``headers`` is a dict or a list of pairs; ``body`` bytes or text (UTF-8). Raises
    :class:`OutboundDenied` when the host refuses the destination and
    :class:`OutboundError` when the request fails on the way.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    request = _request(url, method, headers)
    if body:
        _write_body(request, body)
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        _raise(url, e.value)
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    # `get` is some(ok(ok(response))) once ready; an error code is inside the result.
    if outcome is None or isinstance(outcome, Err):
        raise OutboundError(url, wasi.ErrorCode_InternalError("no response"))
    result = outcome.value
    if isinstance(result, Err):
        _raise(url, result.value)
    with result.value as response:
        status = response.status()
        with response.headers() as fields:
            pairs = [(k.lower(), v.decode("latin-1")) for k, v in fields.entries()]
        data = _read_body(url, response)
    return Response(url, status, pairs, data)


class _Handler(urllib.request.BaseHandler):
    """Serves ``urlopen`` for http and https URLs through :func:`fetch`."""

    def _open(self, req):
        headers = dict(req.header_items())
        fetched = fetch(req.full_url, req.get_method(), headers, req.data)
        message = email.message.Message()
        for name, value in fetched.headers:
            message[name] = value
        answer = urllib.response.addinfourl(io.BytesIO(fetched.body), message, req.full_url, fetched.status)
        if fetched.status >= 400:
            raise urllib.error.HTTPError(req.full_url, fetched.status, str(fetched.status), message, io.BytesIO(fetched.body))
        return answer

    http_open = _open
    https_open = _open


def _install():
    # Only this handler: urllib's own would open sockets, which guests do not have.
    opener = urllib.request.OpenerDirector()
    opener.add_handler(_Handler())
    urllib.request.install_opener(opener)


_install()
