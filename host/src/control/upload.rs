//! Streams an uploaded component to a temporary file, bounded in size, never whole in
//! memory; its first bytes are checked for a component's header before the rest is read.

use std::path::Path;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;

use crate::engine::{HEADER_LEN, LoadError, check_header};

/// Why an upload was refused before validation.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// More bytes than allowed.
    #[error("the upload exceeds the size limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Nothing was sent.
    #[error("the upload is empty: send the component's bytes as the request body")]
    Empty,
    /// The first bytes are not a component's header (text, a core module, junk).
    #[error("upload refused: {0}")]
    NotAComponent(#[source] LoadError),
    /// The client went away or the disk failed.
    #[error("could not receive the upload: {0}")]
    Io(String),
}

/// Writes the body into a new temp file in `dir`; refuses early on a declared size over
/// `limit`, and on a header that is not a component's as soon as its bytes arrive.
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
    let mut header = HeaderCheck::default();
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| UploadError::Io(e.to_string()))?;
        if let Some(chunk) = frame.data_ref() {
            received += chunk.len() as u64;
            if received > limit {
                return Err(UploadError::TooLarge { limit });
            }
            header.feed(chunk)?;
            file.write_all(chunk).await.map_err(io)?;
        }
    }
    file.flush().await.map_err(io)?;
    if received == 0 {
        return Err(UploadError::Empty);
    }
    header.finish()?;
    Ok(temp)
}

/// The first [`HEADER_LEN`] bytes of an upload, checked once they are all in.
#[derive(Default)]
struct HeaderCheck {
    seen: Vec<u8>,
    done: bool,
}

impl HeaderCheck {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        if self.done {
            return Ok(());
        }
        let take = (HEADER_LEN - self.seen.len()).min(chunk.len());
        self.seen.extend_from_slice(&chunk[..take]);
        if self.seen.len() == HEADER_LEN {
            self.finish()?;
        }
        Ok(())
    }

    /// Decides on what arrived (a body shorter than a header is decided at its end).
    fn finish(&mut self) -> Result<(), UploadError> {
        if !self.done {
            self.done = true;
            check_header(&self.seen).map_err(UploadError::NotAComponent)?;
        }
        Ok(())
    }
}

/// Fuzzing entry: the header check fed `bytes` in pieces ending at `cuts` decides as the
/// check of the whole header does.
#[cfg(fuzzing)]
pub fn fuzz_upload_header(bytes: &[u8], cuts: &[usize]) {
    let whole = check_header(&bytes[..bytes.len().min(HEADER_LEN)]).is_ok();
    let mut check = HeaderCheck::default();
    let mut start = 0;
    let mut ok = true;
    for end in cuts
        .iter()
        .map(|&c| c.min(bytes.len()))
        .chain([bytes.len()])
    {
        if end < start {
            continue;
        }
        if check.feed(&bytes[start..end]).is_err() {
            ok = false;
            break;
        }
        start = end;
    }
    let ok = ok && check.finish().is_ok();
    assert_eq!(ok, whole, "{bytes:?} cut at {cuts:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_decided_across_chunks_and_refused_early() {
        let mut h = HeaderCheck::default();
        h.feed(b"\0as").unwrap();
        h.feed(b"m\x0d\0\x01\0 and the rest").unwrap();
        assert!(h.done);
        let mut h = HeaderCheck::default();
        assert!(matches!(
            h.feed(b"<html>..."),
            Err(UploadError::NotAComponent(LoadError::NotWasm { .. }))
        ));
        let mut h = HeaderCheck::default();
        assert!(matches!(
            h.feed(b"\0asm\x01\0\0\0"),
            Err(UploadError::NotAComponent(LoadError::CoreModule))
        ));
        let mut h = HeaderCheck::default();
        h.feed(b"\0as").unwrap();
        assert!(h.finish().is_err(), "a body shorter than a header");
    }
}
