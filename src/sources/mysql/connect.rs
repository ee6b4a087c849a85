//! Connections to the server: TLS as `source.tls` asks, TCP keepalive, and a time limit on connecting and
//! on every query, so a half-open connection or a frozen server is noticed instead of waited on forever.

use super::SourceError;
use crate::config::{SourceConfig, TlsMode};
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};
use std::future::Future;
use std::time::Duration;

/// Idle connections probe the peer this often, so a silently dropped one fails at the socket.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

/// Connection options for `cfg` (TLS unless `source.tls.mode = "disabled"`).
pub fn connection_opts(cfg: &SourceConfig) -> Opts {
    let password = crate::config::secrets::current("source.password", &cfg.password);
    opts_with_tls(cfg, cfg.tls.mode != TlsMode::Disabled, password)
}

fn opts_with_tls(cfg: &SourceConfig, tls: bool, password: String) -> Opts {
    let builder = OptsBuilder::default()
        .ip_or_hostname(cfg.host.clone())
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(Some(password))
        // an IAM token goes as it is (over TLS, which the config requires for `auth = "iam"`)
        .enable_cleartext_plugin(cfg.auth == crate::config::SourceAuth::Iam)
        .prefer_socket(false)
        .conn_ttl(None)
        .tcp_keepalive(Some(TCP_KEEPALIVE))
        .init(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"]);
    let builder = if tls {
        builder.ssl_opts(Some(ssl_opts(cfg)))
    } else {
        builder
    };
    builder.into()
}

fn ssl_opts(cfg: &SourceConfig) -> SslOpts {
    install_crypto_provider();
    let tls = &cfg.tls;
    let verify = matches!(tls.mode, TlsMode::VerifyCa | TlsMode::VerifyIdentity);
    let mut opts = SslOpts::default()
        .with_danger_accept_invalid_certs(!verify)
        .with_danger_skip_domain_validation(tls.mode != TlsMode::VerifyIdentity);
    if let Some(ca) = &tls.ca_file {
        // a configured CA is the only one trusted
        opts = opts
            .with_root_certs(vec![ca.clone().into()])
            .with_disable_built_in_roots(true);
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        opts = opts.with_client_identity(Some(ClientIdentity::new(
            cert.clone().into(),
            key.clone().into(),
        )));
    }
    opts
}

/// rustls carries two crypto providers in this build (the AWS SDK enables both); pick one once.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // fails only when a provider is installed already, which is as good
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// MySQL's "Access denied for user" (a wrong or rotated password).
const ER_ACCESS_DENIED: u16 = 1045;

/// Connects within `source.connect_timeout_secs`. With `tls.mode = preferred` a server without TLS gets
/// a plain connection, as Debezium's `preferred` does. A refused password that came from a secret
/// reference is fetched again once: the secret may have been rotated since the start.
pub async fn connect(cfg: &SourceConfig) -> Result<Conn, SourceError> {
    let result = connect_once(cfg).await;
    let (Err(SourceError::Mysql(mysql_async::Error::Server(s))), Some(secret)) =
        (&result, &cfg.password_ref)
    else {
        return result;
    };
    if s.code != ER_ACCESS_DENIED {
        return result;
    }
    match crate::config::secrets::refresh("source.password", secret, &cfg.password).await {
        Ok(true) => connect_once(cfg).await,
        Ok(false) => result,
        Err(e) => {
            tracing::warn!(error = %e, "the server refused the password; fetching it again failed");
            result
        }
    }
}

async fn connect_once(cfg: &SourceConfig) -> Result<Conn, SourceError> {
    let server = format!("{}:{}", cfg.host, cfg.port);
    let limit = Duration::from_secs(cfg.connect_timeout_secs);
    let password = match cfg.auth {
        crate::config::SourceAuth::Password => {
            crate::config::secrets::current("source.password", &cfg.password)
        }
        crate::config::SourceAuth::Iam => {
            super::iam_auth::auth_token(&cfg.host, cfg.port, &cfg.user, cfg.aws_region.as_deref())
                .await?
        }
    };
    let attempt = |tls: bool| {
        let opts = opts_with_tls(cfg, tls, password.clone());
        let what = format!("connect to {server}");
        async move { timed(limit, &what, Conn::new(opts)).await }
    };
    let result = match cfg.tls.mode {
        TlsMode::Disabled => attempt(false).await,
        TlsMode::Preferred => match attempt(true).await {
            Err(SourceError::Mysql(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            ))) => attempt(false).await,
            other => other,
        },
        _ => attempt(true).await,
    };
    result.map_err(|e| match e {
        SourceError::Mysql(ref m) => match tls_failure(m) {
            Some(detail) => SourceError::Tls { server, detail },
            None => e,
        },
        e => e,
    })
}

/// What went wrong with TLS, if `e` is a TLS failure (definite: retrying cannot fix a certificate).
pub fn tls_failure(e: &mysql_async::Error) -> Option<String> {
    use mysql_async::{DriverError, Error, IoError};
    match e {
        Error::Io(IoError::Tls(t)) => Some(format!("{t}")),
        // rustls reports handshake and certificate failures as InvalidData I/O errors
        Error::Io(IoError::Io(io)) if io.kind() == std::io::ErrorKind::InvalidData => {
            Some(format!(
                "{io}; check source.tls.ca_file (the CA that signed the server certificate) and, for \
                 verify_identity, that the certificate names source.host"
            ))
        }
        Error::Driver(DriverError::NoClientSslFlagFromServer) => Some(
            "the server does not offer TLS; enable it on the server or set source.tls.mode = \"preferred\" \
             or \"disabled\""
                .into(),
        ),
        _ => None,
    }
}

/// Runs one network operation with a time limit; running out of time is a transient `Timeout`.
pub async fn timed<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SourceError::Timeout {
            what: what.to_string(),
            secs: limit.as_secs(),
        }),
    }
}
