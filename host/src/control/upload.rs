//! Streams an uploaded component to a temporary file, bounded in size, never whole in memory.

use std::path::Path;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;

/// Why an upload was refused before validation.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// More bytes than allowed.
    #[error("the upload exceeds the size limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Nothing was sent.
    #[error("the upload is empty: send the component's bytes as the request body")]
    Empty,
    /// The client went away or the disk failed.
    #[error("could not receive the upload: {0}")]
    Io(String),
}

/// Writes the body into a new temp file in `dir`; refuses early on a declared size over `limit`.
pub async fn receive(
    mut body: Incoming,
    declared: Option<u64>,
    dir: &Path,
    limit: u64,
) -> Result<tempfile::TempPath, UploadError> {
    if declared.is_some_and(|n| n > limit) {
        return Err(UploadError::TooLarge { limit });
    }
    let io = |e: std::io::Error| UploadError::Io(e.to_string());
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let temp = tempfile::NamedTempFile::new_in(dir)
        .map_err(io)?
        .into_temp_path();
    let mut file = tokio::fs::File::create(&temp).await.map_err(io)?;
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| UploadError::Io(e.to_string()))?;
        if let Some(chunk) = frame.data_ref() {
            received += chunk.len() as u64;
            if received > limit {
                return Err(UploadError::TooLarge { limit });
            }
            file.write_all(chunk).await.map_err(io)?;
        }
    }
    file.flush().await.map_err(io)?;
    if received == 0 {
        return Err(UploadError::Empty);
    }
    Ok(temp)
}
