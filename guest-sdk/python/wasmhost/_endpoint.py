"""Typed endpoints, FastAPI style: parameters from the query string or JSON body, checked
against their type hints (422 with a ``detail`` list), results turned into responses."""

import inspect
import json
import sys
import traceback
import urllib.parse

from . import _registry as registry
from . import _types as t
from ._functions import args_schema, item_params, item_schema, parameters, result_schema
from .responses import JSONResponse, Response

QUERY_METHODS = ("GET", "DELETE", "HEAD")
BODY_KEY = "x-wasmhost-body"


class Request:
    """The request an endpoint parameter annotated ``wasmhost.Request`` receives."""

    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query_string = query
        self.query_params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        self.headers = {}
        for k, v in headers:
            self.headers.setdefault(k.lower(), v)
        self._body = body

    def body(self):
        return self._body

    def json(self):
        return json.loads(self._body or b"null")

    def text(self):
        return self._body.decode("utf-8", "replace")


class HTTPException(Exception):
    """Answered with ``status_code`` and ``{"detail": detail}``, as FastAPI's."""

    def __init__(self, status_code, detail=None, headers=None):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers


def _is_request(tp):
    return tp is Request or getattr(tp, "__name__", None) == "Request" and tp.__module__.startswith(
        ("starlette", "fastapi")
    )


def plan(endpoint):
    """The parameters of an endpoint and which of them takes the whole JSON body."""
    target = endpoint.target
    params = parameters(target, skip_self=endpoint.cls is not None)
    if endpoint.batching is not None:
        # Each request of a batch is read as a lone one: an item of each list.
        params = item_params(params)
    body = None
    if endpoint.method not in QUERY_METHODS:
        complex_params = [p for p in params if not t.is_scalar(p[1]) and not _is_request(p[1])]
        if len(complex_params) == 1:
            body = complex_params[0][0]
    return params, body


def schemas(endpoint):
    """The endpoint's ``args-schema`` and ``result-schema`` as JSON texts."""
    params, body = plan(endpoint)
    schema = args_schema([p for p in params if not _is_request(p[1])])
    if body is not None:
        schema[BODY_KEY] = body
    result = result_schema(endpoint.target)
    if endpoint.batching is not None:
        result = item_schema(result)
    return json.dumps(schema), None if result is None else json.dumps(result)


def handle(name, method, path, query, headers, body):
    """Serves one request of the endpoint ``name``: ``(status, headers, body)``."""
    from . import _loop

    endpoint = registry.endpoints.get(name)
    if endpoint is None or endpoint.kind not in ("function", "method"):
        return _json(404, {"detail": f"no endpoint named {name!r}"})
    if endpoint.batching is not None:
        return _handle_batch(endpoint, body)
    request = Request(method, path, query, headers, body)
    target = endpoint.target
    if endpoint.cls is not None:
        target = target.__get__(registry.instance_of(endpoint.cls))
    params, body_param = plan(endpoint)
    errors = []
    kwargs = _arguments(request, params, body_param, errors)
    if errors:
        return _json(422, {"detail": errors})
    try:
        result = target(**kwargs)
        if inspect.isawaitable(result):
            result = _loop.run(result)
        return to_response(result)
    except HTTPException as err:
        return _json(err.status_code, {"detail": err.detail}, err.headers)
    except Exception as err:
        if _looks_like_http_exception(err):
            return _json(err.status_code, {"detail": err.detail}, getattr(err, "headers", None))
        traceback.print_exc()
        sys.stderr.flush()
        return 500, [("content-type", "text/plain; charset=utf-8")], b"Internal Server Error"


def _handle_batch(endpoint, body):
    """Serves a batched endpoint's call: the host's body is ``{"batch": [request, ...]}``
    (each ``{"method", "path", "query", "headers", "body"}``, headers as pairs and the
    body as a list of bytes); each request is read as a lone one (a bad one gets its own
    422), the function gets a list per parameter and returns one result per request, and
    the answer is ``{"batch": [{"status", "headers", "body"}, ...]}``."""
    from . import _loop

    try:
        items = json.loads(body)["batch"]
        requests = [
            Request(i["method"], i["path"], i["query"], [tuple(h) for h in i["headers"]], bytes(i["body"]))
            for i in items
        ]
    except (ValueError, KeyError, TypeError) as err:
        return _json(500, {"detail": f"a batched endpoint is called by the host with {{\"batch\": [...]}}: {err}"})
    params, body_param = plan(endpoint)
    responses = [None] * len(requests)
    accepted = []
    lists = {name: [] for name, _, _ in params}
    for index, request in enumerate(requests):
        errors = []
        kwargs = _arguments(request, params, body_param, errors)
        if errors:
            responses[index] = _json(422, {"detail": errors})
            continue
        accepted.append(index)
        for name, _, default in params:
            lists[name].append(kwargs.get(name, None if default is inspect.Parameter.empty else default))
    if accepted:
        try:
            results = endpoint.target(**lists)
            if inspect.isawaitable(results):
                results = _loop.run(results)
            results = list(results)
        except Exception:
            traceback.print_exc()
            sys.stderr.flush()
            results = None
        if results is None:
            failed = 500, [("content-type", "text/plain; charset=utf-8")], b"Internal Server Error"
            responses = [r or failed for r in responses]
        elif len(results) != len(accepted):
            wrong = _json(500, {"detail": f"the batched endpoint returned {len(results)} results for "
                                f"{len(accepted)} requests; it must return one result per request, in order"})
            responses = [wrong] * len(requests)
        else:
            for index, result in zip(accepted, results):
                responses[index] = _one_response(result)
    items = [{"status": s, "headers": [list(h) for h in hs], "body": list(b)} for s, hs, b in responses]
    return _json(200, {"batch": items})


def _one_response(result):
    """One request's response from its item of a batch's results (an exception in the
    list answers like a raised one)."""
    if isinstance(result, HTTPException) or _looks_like_http_exception(result):
        return _json(result.status_code, {"detail": result.detail}, getattr(result, "headers", None))
    if isinstance(result, BaseException):
        return 500, [("content-type", "text/plain; charset=utf-8")], f"{type(result).__name__}: {result}".encode()
    return to_response(result)


def _looks_like_http_exception(err):
    return isinstance(getattr(err, "status_code", None), int) and hasattr(err, "detail")


def _arguments(request, params, body_param, errors):
    query = {}
    for key, value in urllib.parse.parse_qsl(request.query_string, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    from_query = request.method in QUERY_METHODS
    parsed = _Body(request.body(), errors)
    kwargs = {}
    for name, tp, default in params:
        if _is_request(tp):
            kwargs[name] = request
            continue
        if name == body_param:
            value = parsed.whole()
            if value is _Body.ABSENT:
                value = _absent(tp, default, ["body"], errors)
            elif value is not t.INVALID:
                value = t.validate(tp, value, ["body"], errors)
        else:
            value = _named(name, tp, default, from_query, body_param, query, parsed, errors)
        if value is not t.INVALID and value is not _Body.ABSENT:
            kwargs[name] = value
    return kwargs


def _named(name, tp, default, from_query, body_param, query, parsed, errors):
    if not from_query and body_param is None:
        value = parsed.field(name)
        if value is not _Body.ABSENT:
            return t.validate(tp, value, ["body", name], errors)
    if name in query:
        values = query[name]
        many = _wants_list(tp)
        raw = values if many and (len(values) > 1 or not values[0].startswith("[")) else values[-1]
        return t.validate(tp, raw, ["query", name], errors, from_text=True)
    place = "query" if from_query or body_param is not None else "body"
    return _absent(tp, default, [place, name], errors)


def _wants_list(tp):
    import typing

    tp = t.strip(tp)
    if t.optional(tp) and typing.get_args(tp):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = members[0] if len(members) == 1 else tp
    return typing.get_origin(tp) in (list, tuple, set) or tp in (list, tuple, set)


def _absent(tp, default, loc, errors):
    if default is not inspect.Parameter.empty:
        return _Body.ABSENT
    if t.optional(tp):
        return None
    return t.error(errors, "missing", loc, "Field required", None)


class _Body:
    """The request body parsed once as JSON, reporting once why it cannot be used."""

    ABSENT = object()

    def __init__(self, raw, errors):
        self.raw = raw
        self.errors = errors
        self.value = None
        self.parsed = False
        self.reported = False
        self.invalid = None

    def _parse(self):
        if self.parsed:
            return
        self.parsed = True
        if not self.raw.strip():
            self.value = self.ABSENT
            return
        try:
            self.value = json.loads(self.raw)
        except ValueError as err:
            self.invalid = str(err)
            self.value = self.ABSENT

    def _report(self):
        if self.reported:
            return
        self.reported = True
        if self.invalid is not None:
            t.error(self.errors, "json_invalid", ["body"], "JSON decode error", None, {"error": self.invalid})
        else:
            t.error(
                self.errors,
                "model_attributes_type",
                ["body"],
                "Input should be a valid dictionary or object to extract fields from",
                self.value,
            )

    def whole(self):
        self._parse()
        if self.invalid is not None:
            self._report()
            return t.INVALID
        return self.value

    def field(self, name):
        self._parse()
        if self.invalid is not None:
            self._report()
            return self.ABSENT
        if self.value is self.ABSENT or self.value is None:
            return self.ABSENT
        if not isinstance(self.value, dict):
            self._report()
            return self.ABSENT
        return self.value.get(name, self.ABSENT)


def _json(status, value, headers=None):
    out = [("content-type", "application/json")]
    out.extend((str(k).lower(), str(v)) for k, v in (headers or {}).items())
    return status, out, t.dumps(value).encode()


def to_response(result):
    """An endpoint's result as ``(status, headers, body)``: JSON unless it is a response."""
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int) and not isinstance(result[0], bool):
        status, inner = result
        _, headers, body = to_response(inner)
        return status, headers, body
    if isinstance(result, Response):
        return result.status_code, result.header_list(), result.body
    if hasattr(result, "body_iterator") and hasattr(result, "status_code"):
        return _collect_stream(result)
    if _is_starlette_response(result):
        return result.status_code, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in result.raw_headers], bytes(result.body)
    if isinstance(result, (bytes, bytearray)):
        return 200, [("content-type", "application/octet-stream")], bytes(result)
    response = JSONResponse(result)
    return 200, response.header_list(), response.body


def _collect_stream(response):
    """A Starlette ``StreamingResponse`` read to its end: a typed endpoint answers in one
    piece (stream from an ``@asgi_app()`` to send events as they happen)."""
    from . import _loop

    async def read():
        chunks = []
        iterator = response.body_iterator
        if hasattr(iterator, "__aiter__"):
            async for chunk in iterator:
                chunks.append(chunk)
        else:
            chunks.extend(iterator)
        return b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in chunks)

    body = _loop.run(read())
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
    return response.status_code, headers, body


def _is_starlette_response(value):
    return hasattr(value, "raw_headers") and hasattr(value, "status_code") and isinstance(getattr(value, "body", None), (bytes, bytearray))
