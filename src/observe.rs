//! Observability: tracing setup. Logs go to stderr so stdout stays the data stream.

/// `BINLAKE_LOG` (or `RUST_LOG`) sets the filter, default `info`; `BINLAKE_LOG_FORMAT=json` for JSON logs.
pub fn init_tracing() {
    let filter = std::env::var("BINLAKE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    if std::env::var("BINLAKE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
