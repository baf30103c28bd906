"""The component's exports (world ``wasmhost:guest/python``), wired to the registry.

componentize-py finds them by class name in the entry module, which imports them from
here. Nothing may escape an export: an exception would trap the instance, so every
export catches, prints the traceback to stderr (the call's log) and answers.
"""

import json
import sys
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import wasmhost_guest_types as types

# Every binding the SDK uses lazily is imported now, at build: nothing can be imported at
# request time.
from wit_world.imports import asgi_types, host, monotonic_clock, poll  # noqa: F401

from . import _endpoint, _functions
from . import _registry as registry
from .exception import FunctionError, InvalidInput

SDK_VERSION = "0.1.0"
_KINDS = {
    "function": types.EndpointKind.FUNCTION,
    "method": types.EndpointKind.METHOD,
    "asgi": types.EndpointKind.ASGI,
    "wsgi": types.EndpointKind.WSGI,
}
_EMPTY_ARGS = json.dumps({"type": "object", "properties": {}})


def _report(what):
    print(f"wasmhost: {what} failed:", file=sys.stderr)
    traceback.print_exc()
    sys.stderr.flush()


def _batching(batching):
    """The WIT record of a ``(max_batch_size, wait_ms)`` pair, or ``None``."""
    if batching is None:
        return None
    return types.Batching(max_batch_size=batching[0], wait_ms=batching[1])


def manifest():
    """The app manifest ``describe`` returns."""
    endpoints = []
    for e in sorted(registry.endpoints.values(), key=lambda e: e.name):
        if e.kind in ("function", "method"):
            args, result = _endpoint.schemas(e)
        else:
            args, result = _EMPTY_ARGS, None
        s = e.scaling
        endpoints.append(
            types.EndpointInfo(
                name=e.name,
                kind=_KINDS[e.kind],
                method=e.method,
                label=e.label,
                docs=e.docs,
                requires_proxy_auth=e.requires_proxy_auth,
                custom_domains=list(e.custom_domains),
                summary=e.summary,
                args_schema=args,
                result_schema=result,
                timeout_ms=e.timeout_ms,
                memory_mib=e.memory_mib,
                gpu=e.gpu,
                allowed_outbound_hosts=list(e.allowed_outbound_hosts),
                scaling=types.Scaling(
                    max_inputs=s.max_inputs,
                    min_containers=s.min_containers,
                    max_containers=s.max_containers,
                    buffer_containers=s.buffer_containers,
                    scaledown_window_ms=s.scaledown_window_ms,
                    per_request=False,
                ),
                batching=_batching(e.batching),
            )
        )
    functions = []
    for f in sorted(registry.functions.values(), key=lambda f: f.name):
        params = _functions.parameters(f.target, skip_self=f.cls is not None)
        result = _functions.result_schema(f.target)
        batching = None
        if f.batching is not None:
            # The host checks and documents one call's input: an item of each list.
            params = _functions.item_params(params)
            result = _functions.item_schema(result)
            batching = _batching(f.batching)
        retries = None
        if f.retries is not None:
            retries = types.RetryPolicy(*f.retries)
        functions.append(
            types.FunctionInfo(
                name=f.name,
                summary=f.summary,
                args_schema=json.dumps(_functions.args_schema(params)),
                params=[p[0] for p in params],
                result_schema=None if result is None else json.dumps(result),
                retries=retries,
                timeout_ms=f.timeout_ms,
                memory_mib=f.memory_mib,
                schedule=f.schedule,
                secrets=list(f.secrets),
                volumes=[types.VolumeMount(volume=v, path=p) for v, p in f.volumes],
                gpu=None,
                allowed_outbound_hosts=list(f.allowed_outbound_hosts),
                batching=batching,
            )
        )
    # componentize-py already snapshots the interpreter with the app imported and the
    # `@enter(snap=True)` hooks run, so the host has no init work to snapshot.
    return types.Manifest(
        app=registry.app_name(),
        sdk_version=SDK_VERSION,
        endpoints=endpoints,
        functions=functions,
        pre_init=False,
    )


_MANIFEST = None


class Describe(exports.Describe):
    def describe(self):
        # The host calls this in a throwaway instance when it deploys a component whose
        # manifest it has cached: the warm-up request runs the request path once, so the
        # native code a first request runs is already mapped.
        if _MANIFEST is not None:
            try:
                from . import _boot

                _boot.warm_up_apps()
            except Exception:  # noqa: BLE001 - priming must never fail describe
                pass
        return _MANIFEST if _MANIFEST is not None else manifest()


class EndpointHandler(exports.EndpointHandler):
    def handle(self, endpoint, req):
        try:
            status, headers, body = _endpoint.handle(endpoint, req.method, req.path, req.query, req.headers, req.body)
            return types.Response(status=status, headers=headers, body=body)
        except BaseException:  # noqa: BLE001 - must not trap the instance
            _report(f"endpoint {endpoint}")
            return types.Response(
                status=500, headers=[("content-type", "text/plain; charset=utf-8")], body=b"Internal Server Error"
            )


class FunctionHandler(exports.FunctionHandler):
    def call(self, name, input):
        try:
            return _functions.call(name, input)
        except InvalidInput as err:
            raise Err(types.CallError_InvalidInput(str(err))) from None
        except FunctionError as err:
            raise Err(types.CallError_Failed(str(err))) from None
        except BaseException as err:  # noqa: BLE001 - must not trap the instance
            _report(f"function {name}")
            raise Err(types.CallError_Failed(f"{type(err).__name__}: {err}")) from None


class Init(exports.Init):
    def initialize(self):
        # Build-time work already ran when componentize-py imported the app.
        pass


class Lifecycle(exports.Lifecycle):
    def enter(self):
        try:
            registry.enter_all()
        except BaseException as err:  # noqa: BLE001 - reported to the host
            _report("@enter")
            raise Err(f"{type(err).__name__}: {err}") from None

    def exit(self):
        try:
            registry.exit_all()
        except BaseException:  # noqa: BLE001 - must not trap the instance
            _report("@exit")


class AsgiApp(exports.AsgiApp):
    def startup(self, app):
        from . import _asgi

        try:
            _asgi.startup(app)
        except BaseException as err:  # noqa: BLE001 - reported to the host
            _report(f"lifespan startup of {app}")
            raise Err(f"{type(err).__name__}: {err}") from None

    def shutdown(self, app):
        from . import _asgi

        try:
            _asgi.shutdown(app)
        except BaseException:  # noqa: BLE001 - must not trap the instance
            _report(f"lifespan shutdown of {app}")

    def handle(self, app, scope, channel):
        from . import _asgi

        try:
            _asgi.handle(app, scope, channel)
        except BaseException:  # noqa: BLE001 - must not trap the instance
            _report(f"ASGI app {app}")
        finally:
            _release(channel)


class WsgiApp(exports.WsgiApp):
    def handle(self, app, environ, input, output):
        from . import _wsgi

        try:
            _wsgi.handle(app, environ, input, output)
        except BaseException:  # noqa: BLE001 - must not trap the instance
            _report(f"WSGI app {app}")
        finally:
            _release(input, output)


def _release(*resources):
    """Drops the resources a call was handed before it returns. An exception's traceback
    keeps them in a reference cycle, and the garbage collector would otherwise drop them
    during some later call, when the host no longer has them: a trap ("resource not
    present") in an unrelated request."""
    for resource in resources:
        try:
            resource.__exit__(None, None, None)
        except BaseException:  # noqa: BLE001 - already dropped
            pass


def freeze():
    """Computes the manifest at build time so ``describe`` costs nothing in an instance."""
    global _MANIFEST
    _MANIFEST = manifest()
