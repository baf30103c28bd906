//! The host's end of the ASGI channel and the WSGI streams. The engine only stores them in
//! the resource table and forwards the guest's calls; the shapes implement the traits
//! below on top of hyper, so the engine stays free of HTTP plumbing.

use std::future::Future;
use std::pin::Pin;

use wasmtime::component::Resource;

use super::bindings::asgi_types::Event;
use super::bindings::wasmhost::guest::{asgi_channel, wsgi_io};
use super::state::InstanceState;

/// Why the host refused an app's channel or stream call; the guest reads its message.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The app called out of order (e.g. `write` before `start_response`).
    #[error("{0}")]
    OutOfOrder(&'static str),
    /// The app sent an event this connection does not take.
    #[error("{event} is not an event an app sends on {on}")]
    UnexpectedEvent {
        /// The ASGI event type.
        event: &'static str,
        /// The connection (`an HTTP connection`, `a WebSocket`).
        on: &'static str,
    },
    /// The status is not an HTTP status code.
    #[error("invalid status {0}")]
    InvalidStatus(u16),
    /// The client went away.
    #[error("the client disconnected")]
    Disconnected,
    /// The connection to the client failed.
    #[error("the client is gone: {0}")]
    ClientGone(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The request body could not be read.
    #[error("{0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A boxed, sendable future, as the connection traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One ASGI connection: where `receive` reads and `send` writes.
pub trait AsgiConnection: Send {
    /// The next event from the client (waits for it).
    fn receive(&mut self) -> BoxFuture<'_, Event>;
    /// Delivers an event from the app; `Err` tells the app to stop.
    fn send(&mut self, event: Event) -> BoxFuture<'_, Result<(), ChannelError>>;
    /// Whether sending `event` hands over the response's last byte: once it is sent the
    /// client can have the whole response (and send its next request) before `send`
    /// returns.
    fn completes(&self, event: &Event) -> bool {
        matches!(event, Event::HttpResponseBody(chunk) if !chunk.more_body)
    }
}

/// `wsgi.input`: the request body of one WSGI call.
pub trait WsgiInput: Send {
    /// Up to `max` bytes of the body; empty at its end.
    fn read(&mut self, max: u64) -> BoxFuture<'_, Result<Vec<u8>, ChannelError>>;
}

/// `start_response` and the body writer of one WSGI call.
pub trait WsgiOutput: Send {
    /// Sets the status and headers.
    fn start_response(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> BoxFuture<'_, Result<(), ChannelError>>;
    /// Sends one chunk of the body.
    fn write(&mut self, chunk: Vec<u8>) -> BoxFuture<'_, Result<(), ChannelError>>;
    /// Whether writing `chunk` hands over the response's last byte (a body of declared
    /// length): the client can then have all of it before the call returns. Otherwise the
    /// body ends when the call does.
    fn completes(&self, _chunk: &[u8]) -> bool {
        false
    }
}

/// What an `asgi-channel.channel` resource holds.
pub struct ChannelEntry(pub(crate) Box<dyn AsgiConnection>);
/// What a `wsgi-io.input` resource holds.
pub struct InputEntry(pub(crate) Box<dyn WsgiInput>);
/// What a `wsgi-io.output` resource holds.
pub struct OutputEntry(pub(crate) Box<dyn WsgiOutput>);

impl asgi_channel::Host for InstanceState {}

impl asgi_channel::HostChannel for InstanceState {
    async fn receive(&mut self, channel: Resource<ChannelEntry>) -> wasmtime::Result<Event> {
        let entry = self.table.get_mut(&channel)?;
        Ok(entry.0.receive().await)
    }

    async fn send(
        &mut self,
        channel: Resource<ChannelEntry>,
        event: Event,
    ) -> wasmtime::Result<Result<(), String>> {
        // Marked before the last byte is handed over, not after: once hyper has it the
        // client can read the whole response and send its next request while this thread
        // has not run on yet, and that request would not know this instance is returning.
        if self.table.get(&channel)?.0.completes(&event) {
            self.delivered();
        }
        let entry = self.table.get_mut(&channel)?;
        let sent = entry.0.send(event).await;
        Ok(sent.map_err(|e| e.to_string()))
    }

    async fn drop(&mut self, channel: Resource<ChannelEntry>) -> wasmtime::Result<()> {
        self.table.delete(channel)?;
        Ok(())
    }
}

impl wsgi_io::Host for InstanceState {}

impl wsgi_io::HostInput for InstanceState {
    async fn read(
        &mut self,
        input: Resource<InputEntry>,
        max: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let entry = self.table.get_mut(&input)?;
        Ok(entry.0.read(max).await.map_err(|e| e.to_string()))
    }

    async fn drop(&mut self, input: Resource<InputEntry>) -> wasmtime::Result<()> {
        self.table.delete(input)?;
        Ok(())
    }
}

impl wsgi_io::HostOutput for InstanceState {
    async fn start_response(
        &mut self,
        output: Resource<OutputEntry>,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<(), String>> {
        let entry = self.table.get_mut(&output)?;
        let started = entry.0.start_response(status, headers).await;
        Ok(started.map_err(|e| e.to_string()))
    }

    async fn write(
        &mut self,
        output: Resource<OutputEntry>,
        chunk: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        // Marked before the chunk is handed over, as for an ASGI channel's last chunk.
        if self.table.get(&output)?.0.completes(&chunk) {
            self.delivered();
        }
        let entry = self.table.get_mut(&output)?;
        Ok(entry.0.write(chunk).await.map_err(|e| e.to_string()))
    }

    async fn drop(&mut self, output: Resource<OutputEntry>) -> wasmtime::Result<()> {
        self.table.delete(output)?;
        Ok(())
    }
}

/// Removes a per-call resource the guest may still hold once its call is over, so the
/// connection behind it closes even if the guest leaked the handle.
pub(crate) fn release<T: 'static>(state: &mut InstanceState, rep: u32) {
    let handle = Resource::<T>::new_own(rep);
    if state.table.get(&handle).is_ok() {
        let _ = state.table.delete(handle);
    }
}
