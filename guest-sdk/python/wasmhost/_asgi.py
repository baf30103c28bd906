"""Serving an unmodified ASGI app (Starlette, ...) through the host's ``asgi-channel``.

Each connection runs to completion on the instance's event loop (``_loop``). The host's
``receive`` blocks, so it is called only when the app asks for an event; once an HTTP
request's body has been read, a further ``receive`` waits for the response to finish and
then reports ``http.disconnect`` (what uvicorn does), without calling the host. The
scope says ASGI spec 2.4, so Starlette learns of a gone client from ``send`` raising
``OSError`` instead of listening for a disconnect in a second task.
"""

import asyncio
import sys
import traceback

from . import _loop
from . import _registry as registry

_apps = {}
_lifespans = {}
ASGI = {"version": "3.0", "spec_version": "2.4"}


def app_for(name):
    """The ASGI app the endpoint's factory returns, built once per component (at build)."""
    app = _apps.get(name)
    if app is None:
        endpoint = registry.endpoints.get(name)
        if endpoint is None or endpoint.kind != "asgi":
            return None
        factory = endpoint.target
        if endpoint.cls is not None:
            factory = factory.__get__(registry.instance_of(endpoint.cls))
        app = factory()
        if not callable(app):
            raise TypeError(f"@asgi_app() {name} returned {type(app).__name__}, not an ASGI app")
        _apps[name] = app
    return app


_asgi_types = None


def _types():
    global _asgi_types
    if _asgi_types is None:
        from wit_world.imports import asgi_types

        _asgi_types = asgi_types
    return _asgi_types


class _Connection:
    """``receive`` and ``send`` of one connection over the host's channel."""

    def __init__(self, channel, websocket):
        self.channel = channel
        self.websocket = websocket
        self.body_done = False
        self.started = False
        self.finished = None  # a future: the response is complete
        self.accepted = False
        self.closed = False
        # Set when the connection's call returns: the host drops the channel then, and a
        # task the app left behind (Starlette's middleware keeps one waiting on
        # ``receive``) must not touch it when the loop runs it during a later connection.
        self.retired = False

    async def receive(self):
        t = _types()
        if self.retired:
            return {"type": "websocket.disconnect" if self.websocket else "http.disconnect", "code": 1006}
        if not self.websocket and self.body_done:
            if self.finished is None:
                self.finished = asyncio.get_running_loop().create_future()
            await self.finished
            return {"type": "http.disconnect"}
        event = self.channel.receive()
        if isinstance(event, t.Event_HttpRequest):
            self.body_done = not event.value.more_body
            return {"type": "http.request", "body": bytes(event.value.body), "more_body": event.value.more_body}
        if isinstance(event, t.Event_WebsocketConnect):
            return {"type": "websocket.connect"}
        if isinstance(event, t.Event_WebsocketMessage):
            message = event.value
            if isinstance(message, t.Message_Text):
                return {"type": "websocket.receive", "text": message.value}
            return {"type": "websocket.receive", "bytes": bytes(message.value)}
        if isinstance(event, (t.Event_WebsocketDisconnect, t.Event_WebsocketClose)):
            self.closed = True
            return {"type": "websocket.disconnect", "code": event.value.code, "reason": event.value.reason}
        if self.websocket:
            self.closed = True
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        self.body_done = True
        return {"type": "http.disconnect"}

    async def send(self, message):
        t = _types()
        kind = message.get("type")
        if kind == "http.response.start":
            self.started = True
            event = t.Event_HttpResponseStart(
                t.ResponseStart(status=int(message["status"]), headers=_headers_out(message.get("headers", ())))
            )
        elif kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body sent before http.response.start")
            more = bool(message.get("more_body", False))
            event = t.Event_HttpResponseBody(t.BodyChunk(body=bytes(message.get("body", b"")), more_body=more))
            if not more:
                self._finish()
        elif kind == "websocket.accept":
            self.accepted = True
            event = t.Event_WebsocketAccept(
                t.WsAccept(subprotocol=message.get("subprotocol"), headers=_headers_out(message.get("headers", ())))
            )
        elif kind == "websocket.send":
            if message.get("text") is not None:
                event = t.Event_WebsocketMessage(t.Message_Text(message["text"]))
            else:
                event = t.Event_WebsocketMessage(t.Message_Binary(bytes(message.get("bytes") or b"")))
        elif kind == "websocket.close":
            self.closed = True
            event = t.Event_WebsocketClose(
                t.WsClose(code=int(message.get("code", 1000)), reason=message.get("reason") or "")
            )
        elif kind == "websocket.http.response.start":
            self.closed = True
            event = t.Event_WebsocketClose(t.WsClose(code=1008, reason=""))
        else:
            return  # trailers, push, extensions the host does not offer
        self._send(event)

    def _send(self, event):
        from componentize_py_types import Err

        if self.retired:
            raise OSError("the connection is over")
        try:
            self.channel.send(event)
        except Err as err:
            self._finish()
            raise OSError(f"the client is gone: {err.value}") from None

    def _finish(self):
        if self.finished is None:
            self.finished = asyncio.get_running_loop().create_future()
        if not self.finished.done():
            self.finished.set_result(None)

    def _finish_quietly(self):
        """Releases tasks still waiting for the response to finish."""
        if self.finished is not None and not self.finished.done():
            self.finished.set_result(None)

    def fail(self):
        """Ends the connection after the app raised."""
        t = _types()
        try:
            if self.websocket:
                if not self.closed:
                    self._send(t.Event_WebsocketClose(t.WsClose(code=1011, reason="")))
            elif not self.started:
                self._send(
                    t.Event_HttpResponseStart(
                        t.ResponseStart(status=500, headers=[("content-type", "text/plain; charset=utf-8")])
                    )
                )
                self._send(t.Event_HttpResponseBody(t.BodyChunk(body=b"Internal Server Error", more_body=False)))
            elif self.finished is None or not self.finished.done():
                self._send(t.Event_HttpResponseBody(t.BodyChunk(body=b"", more_body=False)))
        except OSError:
            pass

    def complete(self):
        """Ends what the app left open when it returned."""
        t = _types()
        try:
            if self.websocket:
                if not self.accepted and not self.closed:
                    self._send(t.Event_WebsocketClose(t.WsClose(code=1000, reason="")))
            elif not self.started:
                self.fail()
            elif self.finished is None or not self.finished.done():
                self._send(t.Event_HttpResponseBody(t.BodyChunk(body=b"", more_body=False)))
        except OSError:
            pass


def _headers_out(headers):
    out = []
    for name, value in headers:
        name = name.decode("latin-1") if isinstance(name, (bytes, bytearray)) else str(name)
        value = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
        out.append((name.lower(), value))
    return out


def scope_dict(name, scope):
    """The ASGI scope of a connection from the host's ``scope`` record."""
    t = _types()
    websocket = scope.kind == t.ScopeKind.WEBSOCKET
    out = {
        "type": "websocket" if websocket else "http",
        "asgi": dict(ASGI),
        "http_version": scope.http_version,
        "scheme": scope.scheme,
        "path": scope.path,
        "raw_path": scope.path.encode("utf-8"),
        "query_string": scope.raw_query.encode("latin-1"),
        "root_path": scope.root_path,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in scope.headers],
        "client": tuple(scope.client) if scope.client else None,
        "server": tuple(scope.server) if scope.server else None,
    }
    if websocket:
        out["subprotocols"] = list(scope.subprotocols)
    else:
        out["method"] = scope.method
    state = _lifespans.get(name)
    if state is not None:
        out["state"] = dict(state.state)
    return out


async def _serve(app, scope, connection):
    try:
        await app(scope, connection.receive, connection.send)
    except OSError:
        pass  # the client went away
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()
        connection.fail()
        return
    connection.complete()


def handle(name, scope, channel):
    """Serves one connection of the ASGI app ``name``."""
    t = _types()
    websocket = scope.kind == t.ScopeKind.WEBSOCKET
    connection = _Connection(channel, websocket)
    app = app_for(name)
    try:
        if app is None:
            connection.fail()
            return
        _loop.run(_serve(app, scope_dict(name, scope), connection))
    finally:
        connection.retired = True
        connection._finish_quietly()


class _Lifespan:
    """The lifespan task of an app: started once per instance, told to stop at the end."""

    def __init__(self):
        self.state = {}
        self.events = None
        self.replies = None
        self.task = None
        self.supported = True

    async def start(self, app):
        loop = asyncio.get_running_loop()
        self.events = asyncio.Queue()
        self.replies = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": dict(ASGI), "state": self.state}
        await self.events.put({"type": "lifespan.startup"})
        self.task = loop.create_task(self._run(app, scope))
        reply = await self.replies.get()
        if reply.get("type") == "lifespan.startup.failed":
            raise RuntimeError(reply.get("message") or "lifespan startup failed")

    async def _run(self, app, scope):
        try:
            await app(scope, self.events.get, self.replies.put)
        except Exception:
            if self.supported:
                # An app without lifespan support raises on the scope: that is not an error.
                self.supported = False
            await self.replies.put({"type": "lifespan.unsupported"})
            return
        await self.replies.put({"type": "lifespan.done"})

    async def stop(self):
        if self.task is None or self.task.done():
            return
        await self.events.put({"type": "lifespan.shutdown"})
        reply = await self.replies.get()
        if reply.get("type") == "lifespan.shutdown.failed":
            print(f"wasmhost: lifespan shutdown failed: {reply.get('message', '')}", file=sys.stderr)


def startup(name):
    """Runs the app's lifespan startup (once per instance)."""
    app = app_for(name)
    if app is None or name in _lifespans:
        return
    lifespan = _Lifespan()
    _lifespans[name] = lifespan
    _loop.run(lifespan.start(app))


def shutdown(name):
    """Runs the app's lifespan shutdown."""
    lifespan = _lifespans.pop(name, None)
    if lifespan is not None:
        _loop.run(lifespan.stop())


class _WarmChannel:
    """A channel with one empty GET and nowhere to send, for the warm-up request."""

    def __init__(self):
        self.sent_body = False

    def receive(self):
        t = _types()
        if not self.sent_body:
            self.sent_body = True
            return t.Event_HttpRequest(t.BodyChunk(body=b"", more_body=False))
        return t.Event_HttpDisconnect()

    def send(self, event):
        pass


def warm_up(name):
    """Builds the app and sends it one request no route matches, so what it imports lazily
    is bundled (no handler runs); a FastAPI app also builds its OpenAPI document and serves
    its docs pages once."""
    from . import _fastapi

    app = app_for(name)
    _warm_request(name, "/__wasmhost_warm_up__", "warm=1")
    _fastapi.warm_up(app, lambda path: _warm_request(name, path, ""))


def _warm_request(name, path, query):
    """One GET of ``path`` through the app, its response discarded."""
    import types

    t = _types()
    scope = types.SimpleNamespace(
        kind=t.ScopeKind.HTTP,
        http_version="1.1",
        method="GET",
        scheme="http",
        path=path,
        raw_query=query,
        root_path="",
        headers=[("host", "localhost"), ("user-agent", "wasmhost-warm-up"), ("accept", "*/*")],
        client=("127.0.0.1", 1),
        server=("localhost", 80),
        subprotocols=[],
    )
    handle(name, scope, _WarmChannel())


def patch_threads():
    """Makes anyio's worker threads (Starlette's sync endpoints) run inline: a guest has
    no threads."""
    try:
        import anyio.to_thread
    except ImportError:
        return

    async def run_sync(func, *args, abandon_on_cancel=False, cancellable=None, limiter=None):
        return func(*args)

    anyio.to_thread.run_sync = run_sync
