use tracing_subscriber::EnvFilter;

/// JSON logs inside Lambda (one object a line, ready for CloudWatch Logs Insights),
/// readable text elsewhere. `RUST_LOG` sets the level; the default is `info`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .init();
    } else {
        builder.init();
    }
}

/// The first `max_chars` characters of untrusted text, for a log line: a sender controls its size.
pub fn truncated(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(super::truncated("héllo", 2), "hé");
        assert_eq!(super::truncated("hi", 200), "hi");
    }
}
