//! RDS/Aurora IAM database authentication (`source.auth = "iam"`): instead of a password, a token signed
//! with the task's AWS credentials — a SigV4 presigned `connect` request for service `rds-db`, valid 15
//! minutes — sent in clear text over TLS (MySQL's `mysql_clear_password` plugin). A fresh one is made for
//! every connection, so expiry never matters to a running stream.

use super::SourceError;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use std::time::{Duration, SystemTime};

/// RDS accepts a token for this long after it was signed.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// A token for `user` at `host:port` in `region`, signed with the AWS default credential chain.
pub async fn auth_token(
    host: &str,
    port: u16,
    user: &str,
    region: Option<&str>,
) -> Result<String, SourceError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    let conf = loader.load().await;
    let failed = |detail: String| SourceError::IamAuth { detail };
    let region = conf
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| failed("no AWS region: set source.aws_region or AWS_REGION".into()))?;
    use aws_credential_types::provider::ProvideCredentials;
    let credentials = conf
        .credentials_provider()
        .ok_or_else(|| failed("no AWS credentials provider".into()))?
        .provide_credentials()
        .await
        .map_err(|e| failed(format!("AWS credentials: {e}")))?;
    sign_token(host, port, user, &region, credentials, SystemTime::now()).map_err(failed)
}

fn sign_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    credentials: Credentials,
    at: SystemTime,
) -> Result<String, String> {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let user_q: String = form_urlencoded::byte_serialize(user.as_bytes()).collect();
    let endpoint = format!("{host}:{port}/?Action=connect&DBUser={user_q}");
    let request = SignableRequest::new(
        "GET",
        format!("https://{endpoint}"),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut token = endpoint;
    for (name, value) in instructions.params() {
        let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
        token.push_str(&format!("&{name}={value}"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_a_presigned_rds_connect_request() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret-key-value", None, None, "test");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_921_600); // 2025-12-05T08:00:00Z
        let token = sign_token(
            "db.cluster-x.us-east-1.rds.amazonaws.com",
            3306,
            "binlake",
            "us-east-1",
            creds,
            at,
        )
        .unwrap();
        let (endpoint, query) = token.split_once("/?").unwrap();
        assert_eq!(endpoint, "db.cluster-x.us-east-1.rds.amazonaws.com:3306");
        let q: std::collections::HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(q["Action"], "connect");
        assert_eq!(q["DBUser"], "binlake");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            q["X-Amz-Credential"],
            "AKIDEXAMPLE/20251205/us-east-1/rds-db/aws4_request"
        );
        assert_eq!(q["X-Amz-Date"], "20251205T080000Z");
        assert_eq!(q["X-Amz-Expires"], "900");
        assert_eq!(q["X-Amz-SignedHeaders"], "host");
        let signature = &q["X-Amz-Signature"];
        assert_eq!(signature.len(), 64);
        assert!(signature.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(
            !token.contains("secret-key-value"),
            "the secret key is never in the token"
        );
        // the same request signed a second later differs: the signature covers the time
        let later = sign_token(
            "db.cluster-x.us-east-1.rds.amazonaws.com",
            3306,
            "binlake",
            "us-east-1",
            Credentials::new("AKIDEXAMPLE", "secret-key-value", None, None, "test"),
            at + Duration::from_secs(1),
        )
        .unwrap();
        assert_ne!(token, later);
    }
}
