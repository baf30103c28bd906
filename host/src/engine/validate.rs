//! Tells what a file is before we try to compile it, so users get a reason, not a parse error.

use super::LoadError;
use wasmparser::Parser;

/// How many leading bytes [`check_header`] needs to decide.
pub const HEADER_LEN: usize = 8;

/// Checks the header (the first [`HEADER_LEN`] bytes are enough): a component passes;
/// text, core modules and junk are refused.
pub fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if Parser::is_component(bytes) {
        return Ok(());
    }
    if Parser::is_core_wasm(bytes) {
        return Err(LoadError::CoreModule);
    }
    if bytes.starts_with(b"\0asm") {
        return Err(LoadError::UnknownLayer);
    }
    let start: String = String::from_utf8_lossy(&bytes[..bytes.len().min(16)]).into_owned();
    Err(LoadError::NotWasm { start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_text_core_and_junk() {
        assert!(matches!(
            check_header(b"hello world\n"),
            Err(LoadError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(matches!(
            check_header(b"\0asm\x07\0\0\0"),
            Err(LoadError::UnknownLayer)
        ));
        assert!(matches!(check_header(b""), Err(LoadError::NotWasm { .. })));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
