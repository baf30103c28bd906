//! Replies: whole responses, streamed bodies and server-sent events.

use std::fmt::Display;

use super::{Channel, Disconnected, Event};
use crate::{Headers, IntoResponse, Response};

/// What a handler answers: a whole response or a stream.
pub enum Reply {
    /// A whole response.
    Full(Response),
    /// A status, headers and a body produced piece by piece.
    Stream(Streaming),
}

/// A streamed response (see [`Reply::stream`]).
pub struct Streaming {
    /// The status code.
    pub status: u16,
    /// Header fields.
    pub headers: Headers,
    producer: Producer,
}

/// What writes a streamed body.
type Producer = Box<dyn FnOnce(&mut BodyWriter<'_>) -> Result<(), Disconnected>>;

impl Reply {
    /// A response whose body `producer` writes chunk by chunk; each chunk reaches the
    /// client when written.
    pub fn stream(
        status: u16,
        headers: Headers,
        producer: impl FnOnce(&mut BodyWriter<'_>) -> Result<(), Disconnected> + 'static,
    ) -> Self {
        Reply::Stream(Streaming {
            status,
            headers,
            producer: Box::new(producer),
        })
    }

    /// A `text/event-stream` of server-sent events written by `producer`.
    pub fn sse(
        producer: impl FnOnce(&mut SseWriter<'_, '_>) -> Result<(), Disconnected> + 'static,
    ) -> Self {
        let headers = vec![
            ("content-type".into(), "text/event-stream".into()),
            ("cache-control".into(), "no-cache".into()),
        ];
        Reply::stream(200, headers, move |body| producer(&mut SseWriter { body }))
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            Reply::Full(r) => r.status,
            Reply::Stream(s) => s.status,
        }
    }

    /// Adds a header field (for middleware).
    #[must_use]
    pub fn header(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into().to_ascii_lowercase(), value.into());
        match self {
            Reply::Full(r) => Reply::Full(r.header(name, value)),
            Reply::Stream(mut s) => {
                s.headers.push((name, value));
                Reply::Stream(s)
            }
        }
    }
}

/// A value a handler may return.
pub trait IntoReply {
    /// Turns the value into a reply.
    fn into_reply(self) -> Reply;
}

impl IntoReply for Reply {
    fn into_reply(self) -> Reply {
        self
    }
}

impl<T: IntoResponse> IntoReply for T {
    fn into_reply(self) -> Reply {
        Reply::Full(self.into_response())
    }
}

/// Writes the chunks of a streamed body.
pub struct BodyWriter<'a> {
    channel: &'a mut dyn Channel,
}

impl BodyWriter<'_> {
    /// Sends one chunk now.
    pub fn send(&mut self, chunk: impl Into<Vec<u8>>) -> Result<(), Disconnected> {
        self.channel.send(Event::HttpResponseBody {
            body: chunk.into(),
            more_body: true,
        })
    }
}

/// Writes server-sent events.
pub struct SseWriter<'a, 'b> {
    body: &'a mut BodyWriter<'b>,
}

impl SseWriter<'_, '_> {
    /// Sends `data: <value>` (one `data:` line per line of it) as one event.
    pub fn data(&mut self, value: impl Display) -> Result<(), Disconnected> {
        self.event(None, &value.to_string())
    }

    /// Sends an event with an `event:` name and its data.
    pub fn event(&mut self, name: Option<&str>, data: &str) -> Result<(), Disconnected> {
        let mut text = String::new();
        if let Some(name) = name {
            text.push_str(&format!("event: {name}\n"));
        }
        for line in data.split('\n') {
            text.push_str(&format!("data: {line}\n"));
        }
        text.push('\n');
        self.body.send(text)
    }

    /// Sends an SSE comment (`: text`), e.g. as a keep-alive.
    pub fn comment(&mut self, text: &str) -> Result<(), Disconnected> {
        self.body.send(format!(": {text}\n\n"))
    }
}

impl Streaming {
    /// Runs the producer, writing its chunks to `channel`.
    pub(super) fn produce(self, channel: &mut dyn Channel) -> Result<(), Disconnected> {
        (self.producer)(&mut BodyWriter { channel })
    }
}
