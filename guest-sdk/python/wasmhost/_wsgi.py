"""Serving an unmodified WSGI app (Flask, ...) through the host's ``wsgi-io`` resources."""

import io
import sys
import traceback

from . import _registry as registry

CHUNK = 64 * 1024
_apps = {}


def app_for(name):
    """The WSGI app the endpoint's factory returns, built once per component (at build)."""
    app = _apps.get(name)
    if app is None:
        endpoint = registry.endpoints.get(name)
        if endpoint is None or endpoint.kind != "wsgi":
            return None
        factory = endpoint.target
        if endpoint.cls is not None:
            factory = factory.__get__(registry.instance_of(endpoint.cls))
        app = factory()
        if not callable(app):
            raise TypeError(f"@wsgi_app() {name} returned {type(app).__name__}, not a WSGI app")
        _apps[name] = app
    return app


class Input(io.RawIOBase):
    """``wsgi.input``: the request body, read from the host as the app asks for it."""

    def __init__(self, source):
        self._source = source
        self._buffer = b""
        self._done = source is None

    def readable(self):
        return True

    def _fill(self, want):
        from componentize_py_types import Err

        while not self._done and (want < 0 or len(self._buffer) < want):
            try:
                chunk = self._source.read(CHUNK)
            except Err as err:
                raise OSError(f"reading the request body failed: {err.value}") from None
            if not chunk:
                self._done = True
            else:
                self._buffer += chunk

    def read(self, size=-1):
        if size is None or size < 0:
            self._fill(-1)
            out, self._buffer = self._buffer, b""
            return out
        self._fill(size)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def readinto(self, b):
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, size=-1):
        while b"\n" not in self._buffer and not self._done and (size < 0 or len(self._buffer) < size):
            self._fill(len(self._buffer) + CHUNK)
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if size is not None and size >= 0:
            end = min(end, size)
        out, self._buffer = self._buffer[:end], self._buffer[end:]
        return out


def environ_dict(environ, body):
    """The WSGI environ of a request from the host's ``environ`` record."""
    env = {
        "REQUEST_METHOD": environ.request_method,
        "SCRIPT_NAME": environ.script_name,
        "PATH_INFO": environ.path_info,
        "QUERY_STRING": environ.query_string,
        "SERVER_NAME": environ.server_name,
        "SERVER_PORT": environ.server_port,
        "SERVER_PROTOCOL": environ.server_protocol,
        "REMOTE_ADDR": environ.remote_addr,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": environ.url_scheme,
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    for name, value in environ.headers:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            env[key] = value
            continue
        key = "HTTP_" + key
        env[key] = f"{env[key]},{value}" if key in env else value
    return env


class _Response:
    """``start_response`` and the writes that follow, sent to the host's ``output``."""

    def __init__(self, output, head):
        self.output = output
        self.head = head
        self.status = None
        self.headers = None
        self.sent = False
        self.gone = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called twice without exc_info")
        self.status = int(str(status).split(" ", 1)[0])
        self.headers = [(str(k).lower(), str(v)) for k, v in headers]
        return self.write

    def _send_head(self):
        from componentize_py_types import Err

        if self.sent:
            return
        if self.status is None:
            raise AssertionError("the app wrote a body before calling start_response()")
        self.sent = True
        try:
            self.output.start_response(self.status, self.headers)
        except Err:
            self.gone = True

    def write(self, chunk):
        from componentize_py_types import Err

        self._send_head()
        if self.gone or self.head or not chunk:
            return
        view = memoryview(bytes(chunk))
        for start in range(0, len(view), CHUNK):
            try:
                self.output.write(bytes(view[start : start + CHUNK]))
            except Err:
                self.gone = True
                return

    def finish(self):
        self._send_head()


def handle(name, environ, source, output):
    """Serves one request of the WSGI app ``name``."""
    app = app_for(name)
    response = _Response(output, environ.request_method == "HEAD")
    if app is None:
        response.start_response("404 Not Found", [("content-type", "text/plain")])
        response.write(f"no WSGI app named {name!r}".encode())
        return
    result = None
    try:
        result = app(environ_dict(environ, Input(source)), response.start_response)
        for chunk in result:
            response.write(chunk)
            if response.gone:
                break
        response.finish()
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()
        if not response.sent:
            response.status = None
            response.start_response(
                "500 Internal Server Error", [("content-type", "text/plain; charset=utf-8")]
            )
            response.write(b"Internal Server Error")
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                traceback.print_exc()


class _Sink:
    """An ``output`` that keeps nothing, for the warm-up request."""

    def start_response(self, status, headers):
        pass

    def write(self, chunk):
        pass


def warm_environ(method="GET"):
    """A request no app routes, for warm-ups: it runs the framework, not the handlers."""
    import types

    return types.SimpleNamespace(
        request_method=method,
        script_name="",
        path_info="/__wasmhost_warm_up__",
        query_string="warm=1",
        server_name="localhost",
        server_port="80",
        server_protocol="HTTP/1.1",
        url_scheme="http",
        remote_addr="127.0.0.1",
        headers=[
            ("host", "localhost"),
            ("user-agent", "wasmhost-warm-up"),
            ("accept", "*/*"),
            ("accept-encoding", "gzip"),
            ("cookie", "a=b"),
        ],
    )


def warm_up(name):
    """Builds the app and sends it one request, so what it imports lazily is bundled."""
    app_for(name)
    handle(name, warm_environ(), None, _Sink())
