//! A tiny HTTP/1.1 server on std's `TcpListener`, listening on port 8000 inside its
//! sandbox (wasmhost maps that port to one of its own); `GET /` names the server.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let listener = match TcpListener::bind("0.0.0.0:8000") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("web-server: cannot listen on port 8000: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("web-server: listening on port 8000");
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => serve(stream),
            Err(e) => eprintln!("web-server: accept failed: {e}"),
        }
    }
}

/// Answers one request, then closes the connection.
fn serve(mut stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/" => (
            "200 OK",
            "hello from web-server, a std::net server in wasm\n".to_string(),
        ),
        _ => ("404 Not Found", format!("no page at {path}\n")),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}
