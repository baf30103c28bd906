# {{name}}: an unmodified Starlette app served with @asgi_app(): async handlers, JSON,
# server-sent events. Its dependencies come from the pip_install call.
#
# Try it: `wasmhost run app.py` then `curl http://127.0.0.1:8000/items/7`.
import asyncio

import wasmhost as modal

app = modal.App("{{name}}")
image = modal.Image.debian_slim().pip_install("starlette==1.10.0")


@app.function(image=image)
@modal.concurrent(max_inputs=10)
@modal.asgi_app()
def web():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def index(request):
        return JSONResponse({"app": "{{name}}", "status": "ok"})

    async def item(request):
        return JSONResponse({"item_id": request.path_params["item_id"]})

    async def events(request):
        async def generate():
            for i in range(3):
                yield f"data: {i}\n\n"
                await asyncio.sleep(0.1)

        return StreamingResponse(generate(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/items/{item_id:int}", item),
            Route("/events", events),
        ]
    )
