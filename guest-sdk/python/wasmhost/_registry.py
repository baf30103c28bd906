"""What the decorators register: endpoints, functions, classes and hooks of one component."""

import dataclasses
import typing


@dataclasses.dataclass
class Scaling:
    """How an endpoint's instances scale (Modal's names)."""

    max_inputs: typing.Optional[int] = None
    min_containers: typing.Optional[int] = None
    max_containers: typing.Optional[int] = None
    buffer_containers: typing.Optional[int] = None
    scaledown_window_ms: typing.Optional[int] = None


@dataclasses.dataclass
class Endpoint:
    """One web endpoint: a typed function, a class method, or an ASGI/WSGI app factory."""

    name: str
    kind: str  # "function" | "method" | "asgi" | "wsgi"
    target: typing.Callable
    method: str = "GET"
    label: typing.Optional[str] = None
    docs: bool = False
    requires_proxy_auth: bool = False
    custom_domains: list = dataclasses.field(default_factory=list)
    summary: typing.Optional[str] = None
    timeout_ms: typing.Optional[int] = None
    memory_mib: typing.Optional[int] = None
    gpu: typing.Optional[str] = None
    allowed_outbound_hosts: list = dataclasses.field(default_factory=list)
    scaling: Scaling = dataclasses.field(default_factory=Scaling)
    cls: typing.Optional[type] = None
    batching: typing.Optional[tuple] = None  # (max_batch_size, wait_ms)


@dataclasses.dataclass
class FunctionSpec:
    """One callable function (Modal's ``@app.function``, or a class's ``@method``)."""

    name: str
    target: typing.Callable
    summary: typing.Optional[str] = None
    retries: typing.Optional[tuple] = None  # (max, backoff, initial_ms, max_ms)
    timeout_ms: typing.Optional[int] = None
    memory_mib: typing.Optional[int] = None
    schedule: typing.Optional[str] = None
    secrets: list = dataclasses.field(default_factory=list)
    volumes: list = dataclasses.field(default_factory=list)  # [(volume, path)]
    allowed_outbound_hosts: list = dataclasses.field(default_factory=list)
    cls: typing.Optional[type] = None
    batching: typing.Optional[tuple] = None  # (max_batch_size, wait_ms)


@dataclasses.dataclass
class ClassSpec:
    """A class of ``@app.cls``: its hooks and the one instance this component holds."""

    cls: type
    enter: list = dataclasses.field(default_factory=list)  # [(method name, snap)]
    exit: list = dataclasses.field(default_factory=list)
    instance: typing.Any = None
    entered: bool = False


app_names: list = []
endpoints: dict = {}
functions: dict = {}
classes: list = []
default_app_name = "app"
"""The app's name when ``App()`` has none: set by the build from the file's name."""


def add_endpoint(endpoint):
    _check_free(endpoint.name)
    endpoints[endpoint.name] = endpoint


def add_function(function):
    _check_free(function.name)
    functions[function.name] = function


def _check_free(name):
    if name in endpoints or name in functions:
        raise ValueError(f"two functions or endpoints are named {name!r}")


def app_name():
    """The manifest's app name: the first named ``App``, else the file's name."""
    return app_names[0] if app_names else default_app_name


def class_spec(cls):
    for spec in classes:
        if spec.cls is cls:
            return spec
    return None


def instance_of(cls):
    """The component's one instance of ``cls``, created and entered on first use."""
    spec = class_spec(cls)
    if spec is None:
        return cls()
    if spec.instance is None:
        spec.instance = spec.cls()
        spec.entered = False
    if not spec.entered:
        spec.entered = True
        for name, snap in spec.enter:
            if not snap:
                getattr(spec.instance, name)()
    return spec.instance


def run_snap_hooks():
    """Runs every ``@enter(snap=True)`` hook at build time, so the snapshot keeps its work."""
    for spec in classes:
        if any(snap for _, snap in spec.enter):
            if spec.instance is None:
                spec.instance = spec.cls()
            for name, snap in spec.enter:
                if snap:
                    getattr(spec.instance, name)()


def enter_all():
    """Creates and enters every class's instance (``lifecycle.enter``)."""
    for spec in classes:
        instance_of(spec.cls)


def exit_all():
    """Runs every entered class's ``@exit`` hooks (``lifecycle.exit``)."""
    for spec in classes:
        if spec.instance is not None and spec.entered:
            for name in spec.exit:
                getattr(spec.instance, name)()
            spec.entered = False
