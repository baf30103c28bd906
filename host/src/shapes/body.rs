//! Request bodies as shapes receive them: streamed from hyper, bounded by a byte limit.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the gateway accepts.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The connection failed while the body was read.
    #[error("could not read the request body: {0}")]
    Read(String),
}

/// A streamed request body.
pub type RequestBody = UnsyncBoxBody<Bytes, BodyError>;

/// Streams `body`, failing with [`BodyError::TooLarge`] once it passes `limit` bytes.
pub fn limit_body<B>(body: B, limit: usize) -> RequestBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Limited::new(body, limit)
        .map_err(move |e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                BodyError::TooLarge { limit }
            } else {
                BodyError::Read(e.to_string())
            }
        })
        .boxed_unsync()
}

/// Collects a whole body (the `endpoint` shape takes bodies whole).
pub(super) async fn collect(body: RequestBody) -> Result<Bytes, BodyError> {
    Ok(body.collect().await?.to_bytes())
}

impl From<BodyError> for wasmtime_wasi_http::Error {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => Self::HttpRequestBodySize(Some(limit as u64)),
            BodyError::Read(msg) => Self::InternalError(Some(msg)),
        }
    }
}

impl From<BodyError> for std::io::Error {
    fn from(e: BodyError) -> Self {
        std::io::Error::other(e)
    }
}
