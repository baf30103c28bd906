# {{name}}: callable functions (Modal's .remote, .spawn, .map) with retries and a timeout.
#
# Try it: `wasmhost run app.py --function square --args '[7]'`, or deploy it to a server
# and `wasmhost call {{name}}.square --args '[7]'`.
import wasmhost as modal

app = modal.App("{{name}}")


@app.function(timeout=30, retries=2)
def square(x: int) -> int:
    """Squares x."""
    print(f"squaring {x}")
    return x * x


@app.function()
def sum_of_squares(n: int) -> int:
    """Calls `square` through the host for 0..n-1 with .map."""
    return sum(square.map(range(n)))
