# {{name}}: typed web endpoints, as in Modal's docs (only the import line differs).
# Query parameters and JSON bodies are checked against the type hints (422 otherwise).
#
# Try it: `wasmhost run app.py` then `curl 'http://127.0.0.1:8000/?name=Ann'`.
import wasmhost as modal

app = modal.App("{{name}}")


@app.function()
@modal.fastapi_endpoint(docs=True)
def greet(name: str = "World") -> dict:
    """Greets someone."""
    print(f"greeting {name}")
    return {"message": f"Hello, {name}!"}
