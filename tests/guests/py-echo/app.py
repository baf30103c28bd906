"""A plain wasi:http handler built with componentize-py against its generated bindings.

Answers every request with JSON: the method, the path, the body's length and how many
requests this instance has served (1 on a fresh instance).
"""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import types

served = 0


def method_name(method: types.Method) -> str:
    if isinstance(method, types.Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()


def body_length(request: types.IncomingRequest) -> int:
    length = 0
    body = request.consume()
    with body.stream() as stream:
        while True:
            try:
                length += len(stream.blocking_read(65536))
            except Err:
                break
    types.IncomingBody.finish(body)
    return length


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: types.IncomingRequest, response_out: types.ResponseOutparam) -> None:
        global served
        served += 1
        reply = {
            "method": method_name(request.method()),
            "path": request.path_with_query() or "/",
            "length": body_length(request),
            "served": served,
        }
        payload = json.dumps(reply).encode()
        headers = types.Fields.from_list(
            [("content-type", b"application/json"), ("content-length", str(len(payload)).encode())]
        )
        response = types.OutgoingResponse(headers)
        body = response.body()
        types.ResponseOutparam.set(response_out, Ok(response))
        with body.write() as out:
            for start in range(0, len(payload), 4096):
                out.blocking_write_and_flush(payload[start : start + 4096])
        types.OutgoingBody.finish(body, None)
