"""``App`` and Modal's decorators: they record what each function is, for ``describe``."""

import inspect
import re

from . import _fastapi
from . import _registry as registry
from ._config import Cron, Period, Retries, Secret, Volume
from ._functions import Function, MethodFunction

_WEB = "__wasmhost_web__"
_CONCURRENT = "__wasmhost_max_inputs__"
_BATCHED = "__wasmhost_batched__"
_ENTER = "__wasmhost_enter__"
_EXIT = "__wasmhost_exit__"
_METHOD = "__wasmhost_method__"


def _tag(fn, attr, value):
    target = getattr(fn, "__func__", fn)
    setattr(target, attr, value)
    return fn


def _web(kind, method="*", label=None, docs=False, requires_proxy_auth=False, custom_domains=None):
    def decorate(fn):
        if kind in ("asgi", "wsgi") and inspect.iscoroutinefunction(fn):
            raise TypeError(f"@{kind}_app() functions must be synchronous: {fn.__qualname__} is async")
        info = {
            "kind": kind,
            "method": method.upper(),
            "label": label,
            "docs": bool(docs),
            "requires_proxy_auth": bool(requires_proxy_auth),
            "custom_domains": list(custom_domains or []),
        }
        return _tag(fn, _WEB, info)

    return decorate


def fastapi_endpoint(
    _warn_parentheses_missing=None,
    *,
    method="GET",
    label=None,
    docs=False,
    requires_proxy_auth=False,
    custom_domains=None,
):
    """A typed web endpoint: parameters from the query string or JSON body, JSON result."""
    if callable(_warn_parentheses_missing):
        raise TypeError("use @fastapi_endpoint() with parentheses")
    return _web("function", method, label, docs, requires_proxy_auth, custom_domains)


web_endpoint = fastapi_endpoint
"""The old name of :func:`fastapi_endpoint`."""


def asgi_app(_warn_parentheses_missing=None, *, label=None, custom_domains=None, requires_proxy_auth=False):
    """The decorated function returns an ASGI app (Starlette, ...), served on every path."""
    if callable(_warn_parentheses_missing):
        raise TypeError("use @asgi_app() with parentheses")
    return _web("asgi", "*", label, False, requires_proxy_auth, custom_domains)


def wsgi_app(_warn_parentheses_missing=None, *, label=None, custom_domains=None, requires_proxy_auth=False):
    """The decorated function returns a WSGI app (Flask, ...), served on every path."""
    if callable(_warn_parentheses_missing):
        raise TypeError("use @wsgi_app() with parentheses")
    return _web("wsgi", "*", label, False, requires_proxy_auth, custom_domains)


def web_server(port=None, *args, **kwargs):
    """Not available to Python guests: a component cannot start a server process."""
    raise NotImplementedError(
        "@web_server is not supported by wasmhost's Python guests (no subprocesses); "
        "serve the app with @asgi_app() or @wsgi_app() instead"
    )


def concurrent(_warn_parentheses_missing=None, *, max_inputs, target_inputs=None):
    """One instance takes up to ``max_inputs`` calls at once."""
    if callable(_warn_parentheses_missing):
        raise TypeError("use @concurrent(max_inputs=...) with parentheses")

    def decorate(fn):
        return _tag(fn, _CONCURRENT, int(max_inputs))

    return decorate


def batched(_warn_parentheses_missing=None, *, max_batch_size, wait_ms):
    """Dynamic batching (Modal's ``@batched``): the host collects up to ``max_batch_size``
    calls, waiting at most ``wait_ms`` after the first, and calls the function once with
    a list per parameter; it returns one result per call, in order (an exception in the
    list fails only that call). Put it under ``@app.function()``; over
    ``@fastapi_endpoint()`` each request is one call and each result one response."""
    if callable(_warn_parentheses_missing):
        raise TypeError("use @batched(max_batch_size=..., wait_ms=...) with parentheses")
    size, wait = int(max_batch_size), int(wait_ms)
    if not 1 <= size <= 1000:
        raise ValueError(f"max_batch_size must be 1 to 1000, not {size}")
    if wait < 0:
        raise ValueError(f"wait_ms must not be negative, not {wait}")

    def decorate(fn):
        return _tag(fn, _BATCHED, (size, wait))

    return decorate


def enter(_warn_parentheses_missing=None, *, snap=False):
    """Runs once per instance before its first call; ``snap=True`` runs it at build time."""
    if callable(_warn_parentheses_missing):
        raise TypeError("use @enter() with parentheses")

    def decorate(fn):
        return _tag(fn, _ENTER, bool(snap))

    return decorate


def exit(_warn_parentheses_missing=None):
    """Runs when the host retires the instance."""
    if callable(_warn_parentheses_missing):
        raise TypeError("use @exit() with parentheses")

    def decorate(fn):
        return _tag(fn, _EXIT, True)

    return decorate


def method(_warn_parentheses_missing=None, **kwargs):
    """A method of an ``@app.cls`` class callable with ``.remote``/``.spawn``/``.map``."""
    if callable(_warn_parentheses_missing):
        raise TypeError("use @method() with parentheses")

    def decorate(fn):
        return _tag(fn, _METHOD, True)

    return decorate


def _seconds_ms(value, what):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, not {value!r}")
    return int(value * 1000)


def _retries(value):
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("retries must be an int or modal.Retries(...)")
    if isinstance(value, int):
        value = Retries(max_retries=value)
    if not isinstance(value, Retries):
        raise ValueError("retries must be an int or modal.Retries(...)")
    return (
        value.max_retries,
        value.backoff_coefficient,
        int(value.initial_delay * 1000),
        int(value.max_delay * 1000),
    )


def _schedule(value):
    if value is None:
        return None
    if isinstance(value, (Cron, Period)):
        return value.manifest()
    raise ValueError("schedule must be modal.Cron(...) or modal.Period(...)")


def _secrets(values):
    names = []
    for s in values or []:
        if not isinstance(s, Secret):
            raise ValueError(f"secrets must be modal.Secret.from_name(...) values, not {s!r}")
        names.append(s.name)
    return names


def _volumes(values):
    mounts = []
    for path, volume in (values or {}).items():
        if not isinstance(volume, Volume):
            raise ValueError(f"volumes must map paths to modal.Volume.from_name(...), not {volume!r}")
        if not str(path).startswith("/"):
            raise ValueError(f"volume mount path {path!r} must be absolute")
        mounts.append((volume.name, str(path)))
    return mounts


def _outbound_hosts(values):
    """``allowed_outbound_hosts=["https://api.example.com", "http://127.0.0.1:*"]``: where
    outgoing HTTP requests may go (Spin's form); the host checks each entry at deploy."""
    if values is None:
        return []
    if isinstance(values, str):
        raise ValueError("allowed_outbound_hosts must be a list of strings, not one string")
    hosts = []
    for host in values:
        if not isinstance(host, str) or "://" not in host:
            raise ValueError(
                f"allowed_outbound_hosts entry {host!r} is not \"<scheme>://<host>[:<port>]\""
            )
        if host not in hosts:
            hosts.append(host)
    return hosts


def _summary(fn):
    doc = inspect.getdoc(fn)
    return doc.strip().splitlines()[0] if doc and doc.strip() else None


class _Options:
    """The keyword arguments of ``@app.function`` / ``@app.cls``, checked once."""

    def __init__(self, kwargs):
        self.timeout_ms = _seconds_ms(kwargs.pop("timeout", None), "timeout")
        memory = kwargs.pop("memory", None)
        if isinstance(memory, tuple):
            memory = memory[1]
        self.memory_mib = int(memory) if memory is not None else None
        if kwargs.pop("gpu", None) is not None:
            # The host would hold the endpoint to an adapter it cannot use from Python.
            _warn("gpu= is ignored: Python guests have no GPU API yet")
        self.gpu = None
        self.retries = _retries(kwargs.pop("retries", None))
        self.schedule = _schedule(kwargs.pop("schedule", None))
        self.secrets = _secrets(kwargs.pop("secrets", None))
        self.volumes = _volumes(kwargs.pop("volumes", None))
        self.allowed_outbound_hosts = _outbound_hosts(kwargs.pop("allowed_outbound_hosts", None))
        window = kwargs.pop("scaledown_window", None) or kwargs.pop("container_idle_timeout", None)
        self.scaling = registry.Scaling(
            # Modal's `max_inputs` here means inputs per container's life, not concurrency.
            max_inputs=_opt_int(kwargs.pop("allow_concurrent_inputs", None)),
            min_containers=_opt_int(kwargs.pop("min_containers", None) or kwargs.pop("keep_warm", None)),
            max_containers=_opt_int(kwargs.pop("max_containers", None) or kwargs.pop("concurrency_limit", None)),
            buffer_containers=_opt_int(kwargs.pop("buffer_containers", None)),
            scaledown_window_ms=_seconds_ms(window, "scaledown_window"),
        )
        # image, cpu, region, cloud, ... describe Modal's containers: nothing to do here.
        kwargs.pop("image", None)

    def endpoint(self, name, fn, web, cls=None):
        scaling = registry.Scaling(**vars(self.scaling))
        max_inputs = getattr(fn, _CONCURRENT, None)
        if max_inputs is not None:
            scaling.max_inputs = max_inputs
        kind = "method" if cls is not None and web["kind"] == "function" else web["kind"]
        batching = getattr(fn, _BATCHED, None)
        if batching is not None and kind != "function":
            raise ValueError(f"{name}: @batched works on functions and free @fastapi_endpoint endpoints")
        target = fn
        # A batched endpoint reads each request of its batch with the SDK's own typed
        # extraction (FastAPI serves one request per call).
        if web["kind"] == "function" and batching is None and _fastapi.available():
            # As on Modal: the function becomes a FastAPI app (FastAPI's validation, 422s,
            # dependencies, responses and docs), served like an @asgi_app.
            kind = "asgi"
            target = _fastapi.endpoint_factory(fn, web["method"], web["docs"], cls)
        return registry.Endpoint(
            name=name,
            kind=kind,
            target=target,
            method=web["method"] if kind in ("function", "method") else "*",
            label=web["label"],
            docs=web["docs"],
            requires_proxy_auth=web["requires_proxy_auth"],
            custom_domains=web["custom_domains"],
            summary=_summary(fn),
            timeout_ms=self.timeout_ms,
            memory_mib=self.memory_mib,
            gpu=self.gpu,
            allowed_outbound_hosts=list(self.allowed_outbound_hosts),
            scaling=scaling,
            cls=cls,
            batching=batching,
        )

    def function(self, name, fn, cls=None):
        return registry.FunctionSpec(
            name=name,
            target=fn,
            summary=_summary(fn),
            retries=self.retries,
            timeout_ms=self.timeout_ms,
            memory_mib=self.memory_mib,
            schedule=self.schedule,
            secrets=self.secrets,
            volumes=self.volumes,
            allowed_outbound_hosts=list(self.allowed_outbound_hosts),
            cls=cls,
            batching=getattr(fn, _BATCHED, None),
        )


def _opt_int(value):
    return None if value is None else int(value)


def _dns_app_name(name):
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return cleaned or "app"


class App:
    """A Modal app: a name and the functions registered on it."""

    def __init__(
        self, name=None, *, image=None, secrets=None, volumes=None, allowed_outbound_hosts=None, **kwargs
    ):
        self.name = name
        if name:
            registry.app_names.append(_dns_app_name(name))
        # App-wide defaults that each function's own keyword replaces.
        self._defaults = {
            "secrets": secrets,
            "volumes": volumes,
            "allowed_outbound_hosts": allowed_outbound_hosts,
        }

    def _options(self, kwargs):
        for key, value in self._defaults.items():
            if value is not None and kwargs.get(key) is None:
                kwargs[key] = value
        options = _Options(kwargs)
        return options

    def function(self, _warn_parentheses_missing=None, *, serialized=False, name=None, **kwargs):
        """Registers a function (or, under a web decorator, an endpoint) of the app."""
        if callable(_warn_parentheses_missing):
            raise TypeError("use @app.function() with parentheses")
        options = self._options(kwargs)

        def decorate(fn):
            fn_name = name or fn.__name__
            web = getattr(fn, _WEB, None)
            if web is not None:
                if web["kind"] == "function" and options.schedule:
                    raise ValueError(f"{fn_name}: a web endpoint cannot have a schedule")
                if options.secrets or options.volumes:
                    _warn(f"{fn_name}: secrets and volumes reach functions only, not web endpoints")
                if getattr(fn, _BATCHED, None) is not None and web["kind"] != "function":
                    raise ValueError(
                        f"{fn_name}: @batched works on functions and @fastapi_endpoint endpoints, "
                        "not on ASGI or WSGI apps"
                    )
                registry.add_endpoint(options.endpoint(fn_name, fn, web))
            else:
                registry.add_function(options.function(fn_name, fn))
            return Function(fn_name, fn, web=web is not None)

        return decorate

    def cls(self, _warn_parentheses_missing=None, **kwargs):
        """Registers a class: ``@enter``/``@exit`` hooks, ``@method``s and web methods."""
        if callable(_warn_parentheses_missing):
            raise TypeError("use @app.cls() with parentheses")
        options = self._options(kwargs)

        def decorate(cls):
            spec = registry.ClassSpec(cls=cls)
            for attr, value in list(vars(cls).items()):
                fn = getattr(value, "__func__", value)
                if not callable(fn):
                    continue
                if hasattr(fn, _ENTER):
                    spec.enter.append((attr, getattr(fn, _ENTER)))
                if hasattr(fn, _EXIT):
                    spec.exit.append(attr)
                full = f"{cls.__name__}_{attr}"
                web = getattr(fn, _WEB, None)
                if web is not None:
                    registry.add_endpoint(options.endpoint(full, fn, web, cls=cls))
                elif hasattr(fn, _METHOD):
                    registry.add_function(options.function(full, fn, cls=cls))
                    setattr(cls, attr, MethodFunction(full, fn))
            registry.classes.append(spec)
            return cls

        return decorate

    def local_entrypoint(self, *args, **kwargs):
        """Modal runs it on the user's machine; a component has no such side, so it is kept
        as a plain function that is never called."""

        def decorate(fn):
            return fn

        return decorate

    def include(self, other):
        """Functions of every app in the file are already part of this component."""
        return self

    def run(self, *args, **kwargs):
        raise RuntimeError("app.run() is Modal's client; use `wasmhost run app.py`")


Stub = App


def _warn(message):
    import sys

    print(f"wasmhost: warning: {message}", file=sys.stderr)
