//! Observability: tracing setup. Logs go to stderr so stdout stays the data stream.

/// `BINLAKE_LOG` (or `RUST_LOG`) sets the filter, default `DEFAULT_FILTER`; `BINLAKE_LOG_FORMAT=json` for JSON logs.
pub fn init_tracing() {
    let filter = std::env::var("BINLAKE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_FILTER.to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    if std::env::var("BINLAKE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// delta-kernel logs expected conditions (a table that does not exist yet) as errors; binlake reports
/// the errors it gets back itself.
const DEFAULT_FILTER: &str =
    "warn,binlake=info,buoyant_kernel=off,delta_kernel=off,deltalake_core=error";
