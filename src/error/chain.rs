//! Printing an error with its causes. A leaf, so modules whose own error types the crate error
//! wraps can use it without a cycle.

/// The error and its sources on one line each, as the CLI prints them.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(&format!("\n  caused by: {next}"));
        }
        source = s.source();
    }
    text
}
