# An unmodified FastAPI app served with @asgi_app(): pydantic models in and out, FastAPI's
# 422s, HTTPException, Depends, Query/Path, a response model, /docs and /openapi.json,
# middleware, sync and async routes, a streamed response, an upload, a background task and a
# WebSocket.
import asyncio
from typing import Annotated, Optional

from fastapi import BackgroundTasks, Depends, FastAPI, File, Header, HTTPException, Path, Query, Request, UploadFile, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

import wasmhost as modal

app = modal.App("fastapi-py")
image = modal.Image.debian_slim().pip_install("fastapi==0.165.0", "pydantic==2.14.4", "python-multipart==0.0.34")


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


class Receipt(BaseModel):
    id: int
    name: str
    total: float


web_app = FastAPI(title="Shop")
items: dict[int, Item] = {}


@web_app.middleware("http")
async def served_by(request: Request, call_next):
    response = await call_next(request)
    response.headers["x-served-by"] = "fastapi-in-wasm"
    return response


def pagination(offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(le=50)] = 10):
    return {"offset": offset, "limit": limit}


def api_key(x_api_key: Annotated[Optional[str], Header()] = None):
    if x_api_key != "secret":
        raise HTTPException(status_code=401, detail="bad key", headers={"www-authenticate": "key"})
    return x_api_key


@web_app.get("/")
def root():
    return {"status": "ok"}


@web_app.post("/items/{item_id}", response_model=Receipt, status_code=201)
async def create_item(item_id: Annotated[int, Path(ge=1)], item: Item, quantity: int = 1):
    items[item_id] = item
    return {"id": item_id, "name": item.name, "total": item.price * quantity, "ignored": True}


@web_app.get("/items/{item_id}")
def read_item(item_id: int):
    if item_id not in items:
        raise HTTPException(status_code=404, detail=f"no item {item_id}")
    return items[item_id]


@web_app.get("/items")
def list_items(page: Annotated[dict, Depends(pagination)]):
    ids = sorted(items)[page["offset"] : page["offset"] + page["limit"]]
    return {"page": page, "ids": ids}


@web_app.get("/private")
def private(key: Annotated[str, Depends(api_key)]):
    return {"key": key}


@web_app.post("/upload")
async def upload(file: UploadFile = File(...)):
    contents = await file.read()
    return {"filename": file.filename, "size": len(contents), "type": file.content_type}


@web_app.get("/stream")
async def stream(n: int = 3):
    async def events():
        for i in range(n):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.01)

    return StreamingResponse(events(), media_type="text/event-stream")


visits = 0


@web_app.get("/visits")
async def visit(background: BackgroundTasks):
    # This instance's count; the task runs after the response is sent, before the call ends.
    global visits
    visits += 1
    background.add_task(asyncio.sleep, 0.003)
    return {"visits": visits}


@web_app.get("/fail")
def fail():
    raise RuntimeError("the handler failed")


@web_app.websocket("/ws")
async def echo(websocket: WebSocket):
    await websocket.accept()
    while True:
        text = await websocket.receive_text()
        if text == "bye":
            await websocket.close()
            return
        await websocket.send_json({"echo": text, "length": len(text)})


@app.function(image=image)
@modal.asgi_app()
def api():
    return web_app
