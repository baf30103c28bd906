# An unmodified Flask app served with @wsgi_app(): routes, JSON, error handlers,
# streaming, uploads. Dependencies come from the pip_install call.
import wasmhost as modal

app = modal.App("flask-py")
image = modal.Image.debian_slim().pip_install("flask==3.1.3")


@app.function(image=image)
@modal.wsgi_app()
def flask_app():
    from flask import Flask, Response, abort, jsonify, request, stream_with_context

    web_app = Flask(__name__)
    notes = []

    @web_app.route("/")
    def index():
        return jsonify({"status": "ok"})

    @web_app.route("/hello/<name>")
    def hello(name):
        return f"Hello, {name}!"

    @web_app.post("/notes")
    def add_note():
        note = request.get_json(force=True)
        if not isinstance(note, dict) or "text" not in note:
            abort(400, description="a note needs a text")
        notes.append(note["text"])
        return jsonify({"id": len(notes), "text": note["text"]}), 201

    @web_app.get("/notes")
    def list_notes():
        return jsonify(notes)

    @web_app.post("/upload")
    def upload():
        f = request.files["file"]
        data = f.read()
        return jsonify({"filename": f.filename, "size": len(data), "field": request.form.get("note")})

    @web_app.get("/stream")
    def stream():
        def generate():
            for i in range(3):
                yield f"line {i}\n"

        return Response(stream_with_context(generate()), mimetype="text/plain")

    @web_app.get("/fail")
    def fail():
        raise RuntimeError("the handler failed")

    @web_app.errorhandler(404)
    def not_found(e):
        return jsonify({"error": "not found", "path": request.path}), 404

    @web_app.errorhandler(400)
    def bad_request(e):
        return jsonify({"error": e.description}), 400

    return web_app
