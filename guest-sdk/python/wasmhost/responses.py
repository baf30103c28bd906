"""Responses an endpoint may return, with Starlette's names and signatures."""

import json

from . import _types as t


class Response:
    """A response with a status, headers and a body."""

    media_type = None
    charset = "utf-8"

    def __init__(self, content=None, status_code=200, headers=None, media_type=None, background=None):
        self.status_code = int(status_code)
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)
        self.headers = dict(headers or {})

    def render(self, content):
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        return str(content).encode(self.charset)

    def header_list(self):
        """Its headers for the wire, with a content type when it has a media type."""
        out = [(str(k).lower(), str(v)) for k, v in self.headers.items()]
        if self.media_type and not any(k == "content-type" for k, _ in out):
            kind = self.media_type
            if kind.startswith("text/") and "charset" not in kind:
                kind += f"; charset={self.charset}"
            out.append(("content-type", kind))
        return out


class JSONResponse(Response):
    """A JSON body."""

    media_type = "application/json"

    def render(self, content):
        return json.dumps(t.to_json(content), separators=(",", ":"), ensure_ascii=False).encode()


class HTMLResponse(Response):
    """An HTML body."""

    media_type = "text/html"


class PlainTextResponse(Response):
    """A text body."""

    media_type = "text/plain"


class RedirectResponse(Response):
    """A redirect to ``url``."""

    def __init__(self, url, status_code=307, headers=None, background=None):
        super().__init__(b"", status_code, headers)
        self.headers["location"] = str(url)
