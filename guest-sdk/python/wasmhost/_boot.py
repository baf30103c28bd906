"""Build-time start-up of a component, run by the entry module the build generates.

componentize-py imports the entry module when it builds the component and snapshots the
interpreter afterwards; at request time there is no filesystem to import from. So
everything a request may need is imported here: the stdlib modules frameworks load
lazily, the user's app, its ASGI/WSGI apps (built once), and one warm-up request through
each of them on a path no app routes, so no user handler runs at build.
"""

import gc
import importlib
import sys
import types

from . import _loop
from . import _registry as registry

# Modules frameworks and user code commonly import lazily (werkzeug needs encodings.idna
# for Host headers; csv, uuid, ... are imported inside functions).
PRELOAD = (
    "encodings.idna encodings.utf_8 encodings.utf_16 encodings.latin_1 encodings.ascii "
    "encodings.unicode_escape encodings.raw_unicode_escape encodings.punycode stringprep "
    "unicodedata codecs json json.decoder json.encoder re string struct binascii base64 "
    "hashlib hmac secrets random uuid datetime time calendar zoneinfo decimal fractions "
    "numbers math statistics bisect heapq collections collections.abc itertools functools "
    "operator copy pickle dataclasses enum typing types inspect contextlib contextvars "
    "traceback linecache warnings weakref abc io textwrap pprint difflib fnmatch glob "
    "pathlib os.path tempfile shutil csv zlib gzip urllib.parse urllib.request "
    "http http.client http.cookies http.cookiejar email email.utils email.parser "
    "email.message email.policy email.headerregistry email.feedparser email.mime.text "
    "mimetypes html html.parser html.entities xml.etree.ElementTree xml.dom.minidom "
    "ipaddress socket selectors logging logging.handlers locale gettext argparse "
    "asyncio asyncio.base_events asyncio.tasks asyncio.queues asyncio.locks "
    "concurrent.futures queue threading sqlite3 platform sysconfig importlib.metadata "
    "importlib.resources zipfile tarfile shlex getpass"
).split()


class _SslStub(types.ModuleType):
    """``ssl`` for a guest without TLS: importable (anyio imports it), unusable."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        stub = _StubType(name, (Exception,), {"__init__": _no_tls})
        setattr(self, name, stub)
        return stub


class _StubType(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubType(name, (Exception,), {"__init__": _no_tls})


def _no_tls(self, *args, **kwargs):
    raise OSError("TLS is not available inside a wasmhost guest")


def _ensure_ssl():
    try:
        import ssl  # noqa: F401
    except ImportError:
        sys.modules["ssl"] = _SslStub("ssl", "No TLS inside a wasm guest: a stub so frameworks import.")


def before_import(default_app_name):
    """Prepares the interpreter for the user's app."""
    registry.default_app_name = default_app_name
    _ensure_ssl()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional: not every module exists everywhere
            pass
    _loop.install()


def warm_up_apps():
    """Sends each ASGI/WSGI app one request no route matches (no handler runs)."""
    from . import _asgi, _wsgi

    for name, endpoint in registry.endpoints.items():
        if endpoint.kind == "wsgi":
            _wsgi.warm_up(name)
        elif endpoint.kind == "asgi":
            _asgi.warm_up(name)


def after_import(extra_modules=()):
    """Builds the apps, runs ``@enter(snap=True)`` hooks and warm-up requests, freezes the
    manifest, and makes later imports fail with a message that says what to do."""
    from . import _asgi, _exports, _fastapi, _wsgi

    for name in extra_modules:
        importlib.import_module(name)
    _fastapi.preload()
    _asgi.patch_threads()
    registry.run_snap_hooks()
    warm_up_apps()
    _exports.freeze()
    sys.meta_path.append(_LateImport())
    # Everything alive now is in the snapshot every instance starts from. Moving it to the
    # permanent generation keeps the cyclic collector from walking (and so writing to) those
    # pages, which would copy the whole snapshot heap into each instance's own memory.
    gc.collect()
    gc.freeze()


class _LateImport:
    """The last import finder: a module nobody found at request time was not bundled."""

    def find_spec(self, name, path=None, target=None):
        raise ModuleNotFoundError(
            f"No module named {name!r}: it was not imported when the component was built, and "
            f"a wasmhost guest cannot import at request time. Import it at the top of your app "
            f"file (and list its package in Image.pip_install(...) or requirements.txt).",
            name=name,
        )
