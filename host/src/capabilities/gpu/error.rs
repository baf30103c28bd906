//! Typed errors of the GPU capability: why the host has no GPU, and why a guest's call failed.

use super::bindings::compute as wit;

/// Why this host cannot lend a GPU (or not the one an endpoint asks for).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// One compiler message about a WGSL source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileMessage {
    /// What the compiler says.
    pub message: String,
    /// 1-based line (0 when the message has no position).
    pub line: u32,
    /// 1-based column in bytes (0 when the message has no position).
    pub column: u32,
    /// Byte offset of the span.
    pub offset: u32,
    /// Byte length of the span.
    pub length: u32,
}

/// Why one GPU call of a guest failed; handed to the guest as a `gpu-error` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// No usable GPU, or the function did not declare one.
    #[error("GPU unavailable: {0}")]
    Unavailable(String),
    /// The WGSL source does not compile.
    #[error("WGSL does not compile: {}", first_message(.0))]
    Compilation(Vec<CompileMessage>),
    /// The call broke a WebGPU rule.
    #[error("{0}")]
    Validation(String),
    /// The call would pass one of the call's limits.
    #[error("{0}")]
    LimitExceeded(String),
    /// The work did not finish within the call's GPU time.
    #[error("{0}")]
    Timeout(String),
    /// The GPU ran out of memory.
    #[error("GPU out of memory: {0}")]
    OutOfMemory(String),
    /// The device was lost or the host failed.
    #[error("GPU internal error: {0}")]
    Internal(String),
}

fn first_message(messages: &[CompileMessage]) -> String {
    match messages.first() {
        Some(m) if m.line > 0 => format!("{}:{}: {}", m.line, m.column, first_line(&m.message)),
        Some(m) => first_line(&m.message).to_string(),
        None => "no message".into(),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

impl GpuError {
    /// A validation error from any message.
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::Validation(message.into())
    }

    /// The error as the WIT value the guest receives.
    pub(crate) fn into_wit(self) -> wit::GpuError {
        match self {
            Self::Unavailable(m) => wit::GpuError::Unavailable(m),
            Self::Compilation(messages) => wit::GpuError::Compilation(
                messages
                    .into_iter()
                    .map(|m| wit::CompilationMessage {
                        message: m.message,
                        line: m.line,
                        column: m.column,
                        offset: m.offset,
                        length: m.length,
                    })
                    .collect(),
            ),
            Self::Validation(m) => wit::GpuError::Validation(m),
            Self::LimitExceeded(m) => wit::GpuError::LimitExceeded(m),
            Self::Timeout(m) => wit::GpuError::Timeout(m),
            Self::OutOfMemory(m) => wit::GpuError::OutOfMemory(m),
            Self::Internal(m) => wit::GpuError::Internal(m),
        }
    }
}

impl From<Unavailable> for GpuError {
    fn from(u: Unavailable) -> Self {
        Self::Unavailable(u.0)
    }
}

impl From<wgpu::Error> for GpuError {
    fn from(e: wgpu::Error) -> Self {
        match e {
            wgpu::Error::OutOfMemory { .. } => Self::OutOfMemory("allocation failed".into()),
            wgpu::Error::Validation { description, .. } => Self::Validation(tidy(&description)),
            wgpu::Error::Internal { description, .. } => Self::Internal(tidy(&description)),
        }
    }
}

/// A WGSL compiler report made readable: the summary first (without naga's
/// `Shader '<label>'` prefix), then the annotated source lines.
pub(crate) fn compile_report(raw: &str) -> String {
    let text = raw
        .trim_matches(|c: char| c == '\n' || c == '\r')
        .trim_end();
    let (head, rest) = text.split_once('\n').unwrap_or((text, ""));
    let head = head.trim();
    let head = match head.strip_prefix("Shader '") {
        Some(after) => after.split_once("' ").map_or(head, |(_, tail)| tail),
        None => head,
    };
    if rest.trim().is_empty() {
        head.to_string()
    } else {
        format!("{head}\n{rest}")
    }
}

/// wgpu's validation messages are multi-line reports; keep them compact and bounded.
fn tidy(description: &str) -> String {
    let joined: Vec<&str> = description
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let text = joined.join(" ");
    match text.char_indices().nth(1000) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_errors_show_their_position() {
        let e = GpuError::Compilation(vec![CompileMessage {
            message: "expected `;`\n  ┌─ wgsl:3:9".into(),
            line: 3,
            column: 9,
            offset: 40,
            length: 1,
        }]);
        assert_eq!(e.to_string(), "WGSL does not compile: 3:9: expected `;`");
    }

    #[test]
    fn compile_reports_lead_with_the_summary() {
        let raw =
            "\nShader '' parsing error: expected expression, found \";\"\n  ┌─ wgsl:3:16\n  │\n";
        let report = compile_report(raw);
        assert!(
            report.starts_with("parsing error: expected expression"),
            "{report}"
        );
        assert!(report.contains("wgsl:3:16"), "{report}");
        assert_eq!(compile_report("plain"), "plain");
    }

    #[test]
    fn tidies_multiline_reports() {
        assert_eq!(
            tidy("In a call\n\n   caused by: x\n"),
            "In a call caused by: x"
        );
        assert!(tidy(&"a".repeat(5000)).ends_with('…'));
    }
}
