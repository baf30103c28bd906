"""Functions: calls from the host (``function-handler``) and from Python
(``.remote``, ``.spawn``, ``.map`` through the host's ``spawn``/``poll``)."""

import inspect
import json
import typing

from . import _registry as registry
from . import _types as t
from .exception import FunctionError, InvalidInput
from .exception import TimeoutError as CallTimeout

SHAPE = '{"args": [...], "kwargs": {...}}'
_POLL_MS = 60_000


def _host():
    # The generated bindings exist only inside the component.
    from wit_world.imports import host

    return host


def _input_json(args, kwargs):
    return t.dumps({"args": list(args), "kwargs": kwargs})


class FunctionCall:
    """A spawned call; ``get`` waits for its result."""

    def __init__(self, object_id):
        self.object_id = object_id

    @staticmethod
    def from_id(function_call_id):
        """The call with this id (from ``spawn().object_id``)."""
        return FunctionCall(function_call_id)

    def get(self, timeout=None):
        """Its result; raises ``TimeoutError`` if not finished within ``timeout`` seconds
        (``None`` waits for ever, ``0`` only looks), ``FunctionError`` if it failed."""
        from componentize_py_types import Err
        from wit_world.imports import wasmhost_guest_types as types

        host = _host()
        while True:
            wait_ms = _POLL_MS if timeout is None else max(0, int(timeout * 1000))
            try:
                state = host.poll(self.object_id, wait_ms)
            except Err as err:
                raise FunctionError(str(err.value)) from None
            if isinstance(state, types.CallState_Success):
                return json.loads(state.value)
            if isinstance(state, types.CallState_Failure):
                raise FunctionError(state.value)
            if timeout is not None:
                raise CallTimeout(f"function call {self.object_id} has not finished")

    def get_call_graph(self):
        return []

    def cancel(self, terminate_containers=False):
        raise NotImplementedError("wasmhost cannot cancel a call from inside a guest")

    def __repr__(self):
        return f"FunctionCall({self.object_id!r})"


class _Aio:
    """A method with an ``.aio`` twin, as Modal's (the host's calls block either way)."""

    def __init__(self, sync, is_gen=False):
        self._sync = sync
        self._is_gen = is_gen

    def __call__(self, *args, **kwargs):
        return self._sync(*args, **kwargs)

    def aio(self, *args, **kwargs):
        if self._is_gen:

            async def agen():
                for item in self._sync(*args, **kwargs):
                    yield item

            return agen()

        async def coro():
            return self._sync(*args, **kwargs)

        return coro()


class Function:
    """A function of the app: call it locally, or through the host with ``remote``,
    ``spawn``, ``map`` and ``starmap``."""

    def __init__(self, name, fn, web=False):
        self.name = name
        self._fn = fn
        self._web = web
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)
        self.remote = _Aio(self._remote)
        self.spawn = _Aio(self._spawn)
        self.map = _Aio(self._map, is_gen=True)
        self.starmap = _Aio(self._starmap, is_gen=True)
        self.for_each = _Aio(self._for_each)

    def __call__(self, *args, **kwargs):
        return self.local(*args, **kwargs)

    def local(self, *args, **kwargs):
        """Runs the function here, in this instance."""
        return self._fn(*args, **kwargs)

    def _spawn(self, *args, **kwargs):
        from componentize_py_types import Err

        try:
            return FunctionCall(_host().spawn(self.name, _input_json(args, kwargs)))
        except Err as err:
            raise FunctionError(str(err.value)) from None

    def _remote(self, *args, **kwargs):
        return self._spawn(*args, **kwargs).get()

    def _map(self, *iterables, order_outputs=True, return_exceptions=False, kwargs=None):
        calls = [self._spawn(*args, **(kwargs or {})) for args in zip(*iterables)]
        return _results(calls, return_exceptions)

    def _starmap(self, items, *, order_outputs=True, return_exceptions=False, kwargs=None):
        calls = [self._spawn(*args, **(kwargs or {})) for args in items]
        return _results(calls, return_exceptions)

    def _for_each(self, *iterables, ignore_exceptions=False):
        for _ in self._map(*iterables, return_exceptions=ignore_exceptions):
            pass

    def get_web_url(self):
        """Not known inside a wasmhost guest (the host names URLs when it serves)."""
        return None

    @staticmethod
    def from_name(app_name, name, **kwargs):
        """A function by name. The host calls functions of the caller's own app: a guest
        cannot reach another app, whatever ``app_name`` says."""
        return Function(name, _not_local(name))

    @staticmethod
    def lookup(app_name, name, **kwargs):
        return Function.from_name(app_name, name)


def _not_local(name):
    def missing(*args, **kwargs):
        raise RuntimeError(f"{name} was looked up by name: call it with .remote()")

    return missing


def _results(calls, return_exceptions):
    for call in calls:
        try:
            yield call.get()
        except FunctionError as err:
            if not return_exceptions:
                raise
            yield err


class MethodFunction:
    """A ``@method`` of an ``@app.cls`` class: bound to an instance it is a ``Function``."""

    def __init__(self, name, fn):
        self.name = name
        self._fn = fn

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return Function(self.name, self._fn.__get__(obj, objtype))


def parameters(fn, skip_self=False):
    """The parameters of ``fn``: ``[(name, type, default or inspect.Parameter.empty)]``."""
    hints = typing.get_type_hints(fn)
    out = []
    for i, p in enumerate(inspect.signature(fn).parameters.values()):
        if skip_self and i == 0:
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out.append((p.name, hints.get(p.name, typing.Any), p.default))
    return out


def args_schema(params):
    """The manifest's ``args-schema`` of a function's parameters."""
    defs = {}
    properties = {}
    required = []
    for name, tp, default in params:
        prop = {"title": name.replace("_", " ").title(), **t.schema(tp, defs)}
        if default is not inspect.Parameter.empty:
            prop["default"] = t.to_json(default) if _jsonable(default) else None
        elif not t.optional(tp):
            required.append(name)
        properties[name] = prop
    out = {"type": "object", "properties": properties, "required": required}
    if defs:
        out["$defs"] = defs
    return out


def _jsonable(value):
    try:
        t.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def item_params(params):
    """The parameters of one call of a batched function: each ``list[T]`` becomes ``T``."""
    out = []
    for name, tp, default in params:
        args = typing.get_args(tp)
        item = args[0] if typing.get_origin(tp) in (list, typing.List) and args else typing.Any
        out.append((name, item, default))
    return out


def item_schema(schema):
    """The schema of one call's result of a batched function (its list's items)."""
    if isinstance(schema, dict) and schema.get("type") == "array" and "items" in schema:
        out = dict(schema["items"])
        if "$defs" in schema:
            out["$defs"] = schema["$defs"]
        return out
    return None


def result_schema(fn):
    """The JSON Schema of ``fn``'s annotated result, if any."""
    hints = typing.get_type_hints(fn)
    if "return" not in hints:
        return None
    defs = {}
    out = t.schema(hints["return"], defs)
    if defs:
        out["$defs"] = defs
    return out


def bind_input(text, params):
    """Maps ``{"args": [...], "kwargs": {...}}`` onto ``params``; raises ``InvalidInput``
    with the FastAPI-style error list when it does not fit."""
    errors = []
    args, kwargs = [], {}
    broken = False
    if text.strip():
        try:
            envelope = json.loads(text)
        except ValueError as err:
            t.error(errors, "json_invalid", [], "JSON decode error", None, {"error": str(err)})
            raise InvalidInput(json.dumps(errors))
        if envelope is None:
            envelope = {}
        if not isinstance(envelope, dict):
            t.error(errors, "model_type", [], f"Input should be an object {SHAPE}", envelope)
            raise InvalidInput(json.dumps(errors))
        bare = "args" not in envelope and "kwargs" not in envelope
        args = envelope.pop("args", None) or []
        kwargs = envelope.pop("kwargs", None) or {}
        if not isinstance(args, list):
            broken = True
            t.error(errors, "list_type", ["args"], "Input should be a valid list", args)
            args = []
        if not isinstance(kwargs, dict):
            broken = True
            t.error(errors, "dict_type", ["kwargs"], "Input should be a valid dictionary", kwargs)
            kwargs = {}
        for key, value in envelope.items():
            broken |= bare
            t.error(
                errors,
                "extra_forbidden",
                [key],
                f"Unexpected input key `{key}`: the input is {SHAPE}; pass parameters by "
                'position in "args" or by name in "kwargs"',
                value,
            )
    if len(args) > len(params):
        t.error(
            errors,
            "unexpected_positional_argument",
            ["args", len(params)],
            f"Unexpected positional argument: takes {len(params)} positional arguments but {len(args)} were given",
            args[len(params)],
        )
    names = {p[0] for p in params}
    for key in kwargs:
        if key not in names:
            t.error(errors, "unexpected_keyword_argument", ["kwargs", key], "Unexpected keyword argument", kwargs[key])
    bound = {}
    for i, (name, tp, default) in enumerate(params):
        if i < len(args):
            if name in kwargs:
                t.error(errors, "multiple_argument_values", ["kwargs", name], "Got multiple values for argument", kwargs[name])
                continue
            value = t.validate(tp, args[i], ["args", i], errors)
        elif name in kwargs:
            value = t.validate(tp, kwargs[name], ["kwargs", name], errors)
        elif default is not inspect.Parameter.empty:
            continue
        elif t.optional(tp):
            value = None
        else:
            if not broken:
                t.error(errors, "missing_argument", ["kwargs", name], "Missing required argument", None)
            continue
        bound[name] = value
    if errors:
        raise InvalidInput(json.dumps(errors))
    return bound


def call(name, text):
    """Runs the function ``name`` with the JSON input ``text``; returns its JSON result.

    Raises ``InvalidInput`` for input that does not fit and ``FunctionError`` (with the
    traceback already printed to stderr) when the function raises.
    """
    from . import _loop

    spec = registry.functions.get(name)
    if spec is None:
        raise FunctionError(f"no function named {name!r}")
    if spec.cls is not None:
        target = spec.target.__get__(registry.instance_of(spec.cls))
    else:
        target = spec.target
    if spec.batching is not None:
        return _call_batch(target, text)
    kwargs = bind_input(text, parameters(target))
    try:
        result = target(**kwargs)
        if inspect.isawaitable(result):
            result = _loop.run(result)
        elif inspect.isgenerator(result):
            result = list(result)
        return t.dumps(result)
    except Exception as err:
        import traceback

        traceback.print_exc()
        raise FunctionError(f"{type(err).__name__}: {err}") from None


def _call_batch(target, text):
    """Runs a batched function on ``{"batch": [input, ...]}``: each input is read like a
    lone call's (bad ones fail only their caller), the function gets a list per
    parameter, and the answer is ``{"batch": [outcome, ...]}`` with ``{"ok": value}``,
    ``{"failed": message}`` or ``{"invalid_input": errors}`` per input."""
    from . import _loop

    try:
        items = json.loads(text)["batch"]
        if not isinstance(items, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise FunctionError("a batched function is called by the host with {\"batch\": [...]}") from None
    params = parameters(target)
    per_call = item_params(params)
    outcomes = [None] * len(items)
    accepted = []
    lists = {name: [] for name, _, _ in params}
    for index, item in enumerate(items):
        try:
            bound = bind_input(json.dumps(item), per_call)
        except InvalidInput as err:
            outcomes[index] = {"invalid_input": json.loads(str(err))}
            continue
        accepted.append(index)
        for name, _, default in per_call:
            lists[name].append(bound.get(name, None if default is inspect.Parameter.empty else default))
    if accepted:
        try:
            results = target(**lists)
            if inspect.isawaitable(results):
                results = _loop.run(results)
            results = list(results)
        except Exception as err:
            import traceback

            traceback.print_exc()
            raise FunctionError(f"{type(err).__name__}: {err}") from None
        if len(results) != len(accepted):
            raise FunctionError(
                f"the batched function returned {len(results)} results for {len(accepted)} inputs; "
                "it must return one result per input, in order"
            )
        for index, result in zip(accepted, results):
            if isinstance(result, BaseException):
                outcomes[index] = {"failed": f"{type(result).__name__}: {result}"}
            else:
                outcomes[index] = {"ok": json.loads(t.dumps(result))}
    return json.dumps({"batch": outcomes})

