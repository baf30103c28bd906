//! `multipart/form-data` bodies (file uploads), parsed with `multer`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::{Request, Response};

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The form field's name.
    pub name: Option<String>,
    /// The uploaded file's name, for file fields.
    pub filename: Option<String>,
    /// The part's content type, if sent.
    pub content_type: Option<String>,
    /// The part's bytes.
    pub data: Vec<u8>,
}

/// Parses the body of `request`; a 400 response when it is not valid multipart.
pub fn parse(request: &Request) -> Result<Vec<Part>, Response> {
    let content_type = request.header("content-type").unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| Response::error(400, format!("expected a multipart/form-data body: {e}")))?;
    let body = bytes::Bytes::from(request.body.clone());
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    block_on(async move {
        let mut parts = Vec::new();
        while let Some(field) = multipart.next_field().await.map_err(bad)? {
            let name = field.name().map(str::to_owned);
            let filename = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(ToString::to_string);
            let data = field.bytes().await.map_err(bad)?.to_vec();
            parts.push(Part {
                name,
                filename,
                content_type,
                data,
            });
        }
        Ok(parts)
    })
}

fn bad(e: multer::Error) -> Response {
    Response::error(400, format!("malformed multipart body: {e}"))
}

/// Runs a future whose input is all in memory, so it never waits on anything.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_file_field() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\
                    Content-Type: application/octet-stream\r\n\r\nhello\r\n--XyZ--\r\n";
        let request = Request {
            method: "POST".into(),
            headers: vec![(
                "content-type".into(),
                "multipart/form-data; boundary=XyZ".into(),
            )],
            body: body.as_bytes().to_vec(),
            ..Request::default()
        };
        let parts = parse(&request).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].filename.as_deref(), Some("a.bin"));
        assert_eq!(parts[0].data, b"hello");
        let plain = Request::default();
        assert_eq!(parse(&plain).unwrap_err().status, 400);
    }
}
