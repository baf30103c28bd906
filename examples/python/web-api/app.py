# The FastAPI examples of Modal's web-endpoints reference (../shared/seeds/), changed only
# in the import line: function endpoints, a POST with docs, a FastAPI app, server-sent
# events, a pydantic request body, a file upload and a custom response.
import asyncio

import wasmhost as modal

app = modal.App("web-api")
image = modal.Image.debian_slim().pip_install("fastapi[standard]")


@app.function(image=image)
@modal.fastapi_endpoint()
def hello(name: str = "World") -> dict:
    return {"message": f"Hello, {name}!"}


@app.function(image=image)
@modal.fastapi_endpoint(method="POST", docs=True)
def process(body: dict) -> dict:
    return {"received": body}


@app.function(image=image)
@modal.asgi_app()
def fastapi_app():
    from fastapi import FastAPI, HTTPException

    web_app = FastAPI()

    @web_app.get("/")
    def root():
        return {"status": "ok"}

    @web_app.get("/items/{item_id}")
    def get_item(item_id: int):
        return {"item_id": item_id}

    @web_app.post("/items")
    def create_item(item: dict):
        return {"created": item}

    return web_app


from fastapi.responses import StreamingResponse


@app.function(image=image)
@modal.fastapi_endpoint()
async def stream():
    async def generate():
        for i in range(10):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.1)

    return StreamingResponse(generate(), media_type="text/event-stream")


from pydantic import BaseModel


class Item(BaseModel):
    name: str
    price: float


@app.function(image=image)
@modal.fastapi_endpoint(method="POST")
def create_item(item: Item) -> dict:
    return {"created": item.dict()}


from fastapi import UploadFile, File


@app.function(image=image)
@modal.fastapi_endpoint(method="POST")
async def upload(file: UploadFile = File(...)):
    contents = await file.read()
    return {"filename": file.filename, "size": len(contents)}


from fastapi.responses import JSONResponse, HTMLResponse


@app.function(image=image)
@modal.fastapi_endpoint()
def custom_response():
    return JSONResponse(
        content={"message": "hello"},
        headers={"X-Custom-Header": "value"}
    )
