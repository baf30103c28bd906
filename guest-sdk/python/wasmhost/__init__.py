"""wasmhost's Python SDK: Modal's decorators for WebAssembly components.

Write a Modal app and change one line, ``import modal`` to ``import wasmhost as modal``;
``wasmhost run app.py`` builds it with componentize-py and serves it.
"""

from . import exception
from ._app import (
    App,
    Stub,
    asgi_app,
    batched,
    concurrent,
    enter,
    exit,
    fastapi_endpoint,
    method,
    web_endpoint,
    web_server,
    wsgi_app,
)
from ._config import Cron, Image, Period, Retries, Secret, Volume
from ._endpoint import HTTPException, Request
from ._functions import Function, FunctionCall
from .responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

__version__ = "0.1.0"

__all__ = [
    "App",
    "Cron",
    "Function",
    "FunctionCall",
    "HTMLResponse",
    "HTTPException",
    "Image",
    "JSONResponse",
    "Period",
    "PlainTextResponse",
    "RedirectResponse",
    "Request",
    "Response",
    "Retries",
    "Secret",
    "Stub",
    "Volume",
    "asgi_app",
    "batched",
    "concurrent",
    "enter",
    "exception",
    "exit",
    "fastapi_endpoint",
    "method",
    "web_endpoint",
    "web_server",
    "wsgi_app",
]
