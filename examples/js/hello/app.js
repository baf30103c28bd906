// A JavaScript guest: a fetch handler, built into a wasi:http component by componentize-js.
// `wasmhost run examples/js/hello/app.js`, then:
//   curl localhost:8000/                 -> {"message":"Hello from JavaScript!"}
//   curl -d 'abc' localhost:8000/echo    -> {"method":"POST","path":"/echo","query":"","length":3,"served":1}
//   curl localhost:8000/nope             -> 404

// Requests this instance has served: 1 on a fresh instance, which is what a componentize-js
// guest gets for every request (it cannot take a second one).
let served = 0;

function json(value, status = 200) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

async function handle(request) {
  served += 1;
  const url = new URL(request.url);
  if (url.pathname === '/' && request.method === 'GET') {
    return json({ message: 'Hello from JavaScript!' });
  }
  if (url.pathname === '/echo') {
    const body = await request.arrayBuffer();
    return json({
      method: request.method,
      path: url.pathname,
      query: url.search,
      length: body.byteLength,
      served,
    });
  }
  return json({ detail: `no route for ${request.method} ${url.pathname}` }, 404);
}

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));
