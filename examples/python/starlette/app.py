# An unmodified Starlette app served with @asgi_app(): path parameters, JSON, middleware,
# lifespan, server-sent events, a WebSocket and asyncio timers.
import asyncio
import contextlib
import time

import wasmhost as modal

app = modal.App("starlette-py")
image = modal.Image.debian_slim().pip_install("starlette==1.10.0")


@app.function(image=image)
@modal.concurrent(max_inputs=10)
@modal.asgi_app()
def web():
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route, WebSocketRoute

    class Timing(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            response = await call_next(request)
            response.headers["x-served-by"] = "starlette-in-wasm"
            return response

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield {"started": True}

    async def index(request):
        return JSONResponse({"status": "ok", "lifespan": request.state.started})

    async def item(request):
        item_id = request.path_params["item_id"]
        return JSONResponse({"item_id": item_id, "q": request.query_params.get("q")})

    async def create(request):
        body = await request.json()
        return JSONResponse({"created": body}, status_code=201)

    def sync_page(request):
        # A plain `def` endpoint: Starlette runs it "in a thread", here inline.
        return PlainTextResponse("sync ok")

    async def gather(request):
        start = time.monotonic()
        await asyncio.gather(*(asyncio.sleep(0.2) for _ in range(3)))
        return JSONResponse({"elapsed": round(time.monotonic() - start, 3)})

    async def events(request):
        async def generate():
            for i in range(3):
                yield f"data: tick {i}\n\n"
                await asyncio.sleep(0.05)

        return StreamingResponse(generate(), media_type="text/event-stream")

    async def fail(request):
        raise RuntimeError("the handler failed")

    async def echo(websocket):
        await websocket.accept()
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close()
                return
            await websocket.send_text(f"echo: {text}")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/items/{item_id:int}", item),
            Route("/items", create, methods=["POST"]),
            Route("/sync", sync_page),
            Route("/gather", gather),
            Route("/events", events),
            Route("/fail", fail),
            WebSocketRoute("/ws", echo),
        ],
        middleware=[Middleware(Timing)],
        lifespan=lifespan,
    )
