//! The app's side of an accepted WebSocket.

use super::{Channel, Disconnected, Event, Message};

/// An accepted WebSocket.
pub struct WebSocket<'a> {
    channel: &'a mut dyn Channel,
    closed: bool,
}

impl<'a> WebSocket<'a> {
    /// Wraps an accepted connection.
    pub(super) fn new(channel: &'a mut dyn Channel) -> Self {
        Self {
            channel,
            closed: false,
        }
    }

    /// The next message; `None` once the client disconnected.
    pub fn recv(&mut self) -> Option<Message> {
        if self.closed {
            return None;
        }
        match self.channel.receive() {
            Event::WebsocketMessage(m) => Some(m),
            _ => {
                self.closed = true;
                None
            }
        }
    }

    /// Sends a message.
    pub fn send(&mut self, message: Message) -> Result<(), Disconnected> {
        self.channel.send(Event::WebsocketMessage(message))
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: impl Into<String>) -> Result<(), Disconnected> {
        self.send(Message::Text(text.into()))
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, bytes: impl Into<Vec<u8>>) -> Result<(), Disconnected> {
        self.send(Message::Binary(bytes.into()))
    }

    /// Closes the socket with a close code and reason.
    pub fn close(&mut self, code: u16, reason: &str) {
        if !std::mem::replace(&mut self.closed, true) {
            let _ = self.channel.send(Event::WebsocketClose {
                code,
                reason: reason.to_owned(),
            });
        }
    }
}
