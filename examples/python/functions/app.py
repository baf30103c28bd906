# Functions called from outside (API, CLI) and from inside the app: retries, timeouts,
# a schedule, .remote/.spawn/.map and the job-queue pattern of Modal's docs.
import os

import wasmhost as modal

app = modal.App("functions-py")


@app.function(timeout=30)
def square(x: int) -> int:
    """Squares x."""
    return x * x


@app.function(retries=modal.Retries(max_retries=2, initial_delay=0.1, backoff_coefficient=1.0))
def flaky(succeed_on: int) -> dict:
    """Fails until attempt number `succeed_on` (the host sets WASMHOST_ATTEMPT)."""
    attempt = int(os.environ.get("WASMHOST_ATTEMPT", "1"))
    if attempt < succeed_on:
        raise RuntimeError(f"attempt {attempt} failed")
    return {"attempt": attempt}


@app.function(schedule=modal.Period(hours=1), allowed_outbound_hosts=["https://api.example.com"])
def hourly() -> str:
    return "tick"


@app.function(schedule=modal.Cron("0 9 * * 1-5", timezone="Europe/Paris"))
def weekday_report() -> None:
    print("report")


@app.function()
def sum_of_squares(n: int) -> int:
    """Calls `square` through the host for 0..n-1 with .map."""
    return sum(square.map(range(n)))


@app.function()
@modal.fastapi_endpoint(method="POST")
def submit(x: int) -> dict:
    """Job queue: spawns `square` and returns the call id."""
    call = square.spawn(x)
    return {"call_id": call.object_id}


@app.function()
@modal.fastapi_endpoint()
def result(call_id: str):
    """Job queue: the result when ready, else 202."""
    try:
        return {"result": modal.FunctionCall.from_id(call_id).get(timeout=0)}
    except TimeoutError:
        return 202, {"status": "pending"}


@app.function()
@modal.fastapi_endpoint()
def remote_square(x: int) -> dict:
    """Calls `square` with .remote (spawn + wait)."""
    return {"square": square.remote(x)}


@app.function(secrets=[modal.Secret.from_name("demo-secret")])
def whoami() -> str:
    """Reads a secret's key from the environment."""
    return os.environ["GREETING"]


@app.function(volumes={"/data": modal.Volume.from_name("notes", create_if_missing=True)})
def write_note(name: str, text: str) -> int:
    """Writes a file into the `notes` volume."""
    with open(f"/data/{name}", "w") as f:
        return f.write(text)


@app.function(volumes={"/data": modal.Volume.from_name("notes")})
def read_note(name: str) -> str:
    with open(f"/data/{name}") as f:
        return f.read()


@app.function()
@modal.batched(max_batch_size=8, wait_ms=100)
def double(xs: list[int]) -> list[dict]:
    """Doubles each call's x in batches (Modal's @batched); a negative x fails its own call."""
    return [ValueError(f"{x} is negative") if x < 0 else {"value": 2 * x, "batch": len(xs)} for x in xs]


@app.function()
@modal.batched(max_batch_size=8, wait_ms=100)
@modal.fastapi_endpoint()
def triple(x: list[int]) -> list[dict]:
    """Triples each request's x in batches (a batched web endpoint); a negative x gets its own 400."""
    return [modal.HTTPException(400, f"{v} is negative") if v < 0 else {"value": 3 * v, "batch": len(x)} for v in x]
