# Typed web endpoints, as in Modal's docs: only the import line differs.
import dataclasses
import urllib.request
from typing import Optional, TypedDict

import wasmhost as modal
from wasmhost import http

app = modal.App("hello-py")


@app.function()
@modal.fastapi_endpoint(docs=True)
def hello(name: str = "World", excited: bool = False) -> dict:
    """Greets someone."""
    return {"message": f"Hello, {name}{'!' if excited else '.'}"}


@dataclasses.dataclass
class Item:
    name: str
    price: float
    tags: list[str] = dataclasses.field(default_factory=list)


class Total(TypedDict):
    name: str
    total: float


@app.function()
@modal.fastapi_endpoint(method="POST", docs=True)
def order(item: Item, quantity: int = 1, coupon: Optional[str] = None) -> Total:
    """Prices an order of `quantity` items."""
    total = item.price * quantity * (0.9 if coupon == "TENOFF" else 1.0)
    return {"name": item.name, "total": round(total, 2)}


@app.function()
@modal.fastapi_endpoint(method="POST")
def echo(body: dict):
    """Returns the JSON body it got, with a header and a 201."""
    return modal.JSONResponse({"received": body}, status_code=201, headers={"x-echo": "yes"})


@app.function()
@modal.fastapi_endpoint()
def teapot():
    return 418, {"detail": "I'm a teapot"}


@app.function()
@modal.fastapi_endpoint()
def boom(x: int = 0):
    """Fails: a 500 whose traceback goes to the log, not the body."""
    return {"ratio": 1 / x}


@app.function()
@modal.fastapi_endpoint()
def late_import():
    """Imports a module nobody imported at build time."""
    import this_module_is_not_bundled  # noqa: F401

    return "unreachable"


@app.function(allowed_outbound_hosts=["http://localhost:*"])
@modal.fastapi_endpoint()
def fetch(url: str, via: str = "fetch") -> dict:
    """Fetches `url` (allowed: http://localhost:*) with `wasmhost.http` or urllib."""
    try:
        if via == "urllib":
            with urllib.request.urlopen(url) as answer:
                return {"status": answer.status, "body": answer.read().decode()}
        # A Host header is the host's to set: dropped, the URL decides where it goes.
        answer = http.fetch(url, headers={"x-from": "python", "Host": "elsewhere.example"})
        return {"status": answer.status, "body": answer.text()}
    except http.OutboundDenied as e:
        return {"denied": True, "error": str(e)}
    except http.OutboundError as e:
        return {"denied": False, "error": str(e), "code": e.code}
