"""FastAPI inside a component, where the app bundles it (pydantic v2 is built for WASI by
``wasmhost build``).

``@fastapi_endpoint`` then does what Modal's does: it wraps the function in a FastAPI app
with one route at ``/`` (``/docs`` and ``/openapi.json`` when ``docs=True``, CORS open),
served like an ``@asgi_app``. Without FastAPI the SDK's own typed endpoints answer instead.

A component cannot import at request time, and FastAPI, Starlette, anyio and pydantic
import much lazily (anyio's asyncio backend, form parsing, the 422 handler, JSON schema
generation): :func:`preload` imports it all at build, and :func:`warm_up` builds each
app's OpenAPI document and serves its docs pages once, so they are in the snapshot.
"""

import importlib
import importlib.util
import pkgutil
import sys
import warnings

# Submodules never needed inside a component: test clients, other async backends, CLIs,
# pydantic v1 (which does not support Python 3.14), plugins of type checkers.
_SKIP = (
    ".testclient",
    ".testing",
    "._backends._trio",
    ".pytest_plugin",
    ".cli",
    "__main__",
    "pydantic.v1",
    "pydantic.mypy",
    "pydantic.deprecated",
    "pydantic._hypothesis_plugin",
)
_PACKAGES = ("fastapi", "starlette", "anyio", "python_multipart", "multipart", "email_validator")


def available():
    """Whether the app bundles FastAPI."""
    try:
        return importlib.util.find_spec("fastapi") is not None
    except (ImportError, ValueError):
        return False


def endpoint_factory(fn, method, docs, cls=None):
    """An ``@asgi_app``-style factory of Modal's FastAPI wrapper around ``fn``; for a class
    method, a function the instance is bound to first."""
    if cls is None:

        def factory():
            return webhook_app(fn, method, docs)

    else:

        def factory(self):
            return webhook_app(fn.__get__(self), method, docs)

    factory.__name__ = getattr(fn, "__name__", "endpoint")
    factory.__qualname__ = getattr(fn, "__qualname__", factory.__name__)
    factory.__doc__ = fn.__doc__
    return factory


def webhook_app(fn, method, docs):
    """One function as a FastAPI app, the way Modal's ``fastapi_endpoint`` builds it."""
    from fastapi import FastAPI
    from fastapi.middleware.cors import CORSMiddleware

    app = FastAPI(
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.add_api_route("/", fn, methods=[method.upper()])
    return app


def preload():
    """Imports every module of FastAPI and what it loads lazily, when the app bundles it."""
    if not available():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for package in _PACKAGES:
            _import_tree(package)
        _touch_pydantic()


def _import_tree(package):
    try:
        module = importlib.import_module(package)
    except Exception:  # noqa: BLE001 - optional packages
        return
    path = getattr(module, "__path__", None)
    if path is None:
        return
    for info in pkgutil.walk_packages(path, package + ".", onerror=lambda name: None):
        if any(skip in info.name for skip in _SKIP):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - modules needing an optional dependency
            pass


def _touch_pydantic():
    """pydantic resolves most of its names on first access (a module ``__getattr__``)."""
    try:
        import pydantic
    except Exception:  # noqa: BLE001
        return
    for name in getattr(pydantic, "__all__", ()):
        try:
            getattr(pydantic, name)
        except Exception:  # noqa: BLE001 - deprecated or optional names
            pass
    for name in ("pydantic.json_schema", "pydantic.networks", "pydantic.color", "pydantic._internal._validators"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001
            pass


def warm_up(app, request):
    """Builds a FastAPI app's OpenAPI document and serves its docs pages once through
    ``request(path)``, so what they load is in the snapshot. Other apps are left alone."""
    if "fastapi" not in sys.modules:
        return
    from fastapi import FastAPI

    if not isinstance(app, FastAPI):
        return
    if app.openapi_url:
        app.openapi()
        request(app.openapi_url)
    for path in (app.docs_url, app.redoc_url):
        if path:
            request(path)
