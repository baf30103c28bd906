# A class whose state lives in a warm instance: @enter runs once per instance,
# @enter(snap=True) once at build (baked into the component), @method()s are functions.
import wasmhost as modal

app = modal.App("counter-py")


@app.cls(scaledown_window=60)
class Counter:
    @modal.enter(snap=True)
    def load(self):
        # Expensive set-up done once, at build: every instance starts with it.
        self.table = {i: i * i for i in range(1000)}

    @modal.enter()
    def start(self):
        self.count = 0

    @modal.method()
    def square(self, x: int) -> int:
        return self.table[x]

    @modal.fastapi_endpoint()
    def hit(self) -> dict:
        self.count += 1
        return {"count": self.count, "table": len(self.table)}
