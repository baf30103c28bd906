# The examples of Modal's web-endpoints guide (../shared/seeds/), changed only in the import
# line: FastAPI endpoints with their options, a FastAPI app, and web methods of a class.
# Modal's default image has FastAPI; here requirements.txt names it.
from fastapi import FastAPI
import wasmhost as modal

app = modal.App()

@app.function()
@modal.fastapi_endpoint(method="GET")
def hello():
    return {"message": "Hello, world!"}

@app.function()
@modal.fastapi_endpoint(
    method="POST",  # HTTP method (GET, POST, PUT, DELETE, etc.)
    label="my-endpoint",  # Custom subdomain label
    docs=True,  # Enable /docs endpoint
    requires_proxy_auth=False,  # Require Modal-Key and Modal-Secret headers
    custom_domains=["api.example.com"],  # Use custom domain(s)
)
def handler(data: dict):
    return {"processed": data}

@app.function()
@modal.asgi_app()
def create_app():
    web_app = FastAPI()
    
    @web_app.get("/")
    def index():
        return {"message": "Welcome"}
    
    @web_app.post("/items")
    def create_item(item: dict):
        return {"created": item}
    
    return web_app

@app.cls()
class MyAPI:
    @modal.fastapi_endpoint(method="GET")
    def health(self):
        return {"status": "healthy"}
    
    @modal.fastapi_endpoint(method="POST")
    def process(self, data: dict):
        # Access instance state
        return {"processed": data}
