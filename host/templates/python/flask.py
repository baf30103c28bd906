# {{name}}: an unmodified Flask app served with @wsgi_app(). Its dependencies come from
# the pip_install call; everything is imported when the component is built.
#
# Try it: `wasmhost run app.py` then `curl http://127.0.0.1:8000/hello/Ann`.
import wasmhost as modal

app = modal.App("{{name}}")
image = modal.Image.debian_slim().pip_install("flask==3.1.3")


@app.function(image=image)
@modal.wsgi_app()
def web():
    from flask import Flask, jsonify, request

    web_app = Flask(__name__)

    @web_app.route("/")
    def index():
        return jsonify({"app": "{{name}}", "status": "ok"})

    @web_app.route("/hello/<name>")
    def hello(name):
        return f"Hello, {name}!"

    @web_app.post("/echo")
    def echo():
        return jsonify(request.get_json(force=True))

    return web_app
