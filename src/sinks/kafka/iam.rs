//! MSK IAM authentication: a SASL/OAUTHBEARER token that is a SigV4-presigned `kafka-cluster:Connect`
//! URL, signed by the `aws-msk-iam-sasl-signer` crate with credentials from the AWS default chain (env,
//! profile, ECS task role, IMDS). librdkafka asks for a new one before the current one expires.

use aws_config::Region;

pub struct IamToken {
    pub token: String,
    /// Expiry in ms since the epoch (15 minutes after signing).
    pub expires_at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error(
        "no AWS region for MSK IAM authentication: set kafka.region or AWS_REGION (the cluster's region)"
    )]
    NoRegion,
    #[error("cannot sign an MSK IAM token: {0}")]
    Sign(String),
}

/// A token for `region` (empty: the default chain's region) from the default credential chain.
pub async fn token(region: String) -> Result<IamToken, IamError> {
    let region = if region.is_empty() {
        aws_config::from_env()
            .load()
            .await
            .region()
            .cloned()
            .ok_or(IamError::NoRegion)?
    } else {
        Region::new(region)
    };
    let (token, expires_at_ms) = aws_msk_iam_sasl_signer::generate_auth_token(region)
        .await
        .map_err(|e| IamError::Sign(e.to_string()))?;
    Ok(IamToken {
        token,
        expires_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use aws_config::Region;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;
    use base64::Engine;

    /// The token is the presigned URL, base64url without padding; MSK checks its action, host, credential
    /// scope, expiry and signature. MSK itself cannot be reached from here, so the token is decoded and
    /// checked part by part.
    #[tokio::test]
    async fn token_is_a_presigned_kafka_cluster_connect_url() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret-example-key", None, None, "test");
        let (token, expires_at_ms) =
            aws_msk_iam_sasl_signer::generate_auth_token_from_credentials_provider(
                Region::new("eu-west-1"),
                SharedCredentialsProvider::new(creds),
            )
            .await
            .unwrap();
        assert!(!token.contains('=') && !token.contains('+') && !token.contains('/'));
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&token)
                .unwrap(),
        )
        .unwrap();
        let url = url::Url::parse(&url).unwrap();
        assert_eq!(url.scheme(), "https");
        assert_eq!(url.host_str(), Some("kafka.eu-west-1.amazonaws.com"));
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["Action"], "kafka-cluster:Connect");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        let scope: Vec<&str> = q["X-Amz-Credential"].split('/').collect();
        assert_eq!(scope[0], "AKIDEXAMPLE");
        assert_eq!(&scope[2..], ["eu-west-1", "kafka-cluster", "aws4_request"]);
        assert_eq!(q["X-Amz-Expires"], "900");
        assert_eq!(q["X-Amz-SignedHeaders"], "host");
        assert_eq!(q["X-Amz-Signature"].len(), 64);
        assert!(q["X-Amz-Signature"].bytes().all(|b| b.is_ascii_hexdigit()));
        // the secret never appears in the token
        assert!(!url.as_str().contains("secret-example-key"));
        let now_ms = crate::event::calendar::now_ms();
        assert!(
            (expires_at_ms - now_ms - 900_000).abs() < 60_000,
            "expiry {expires_at_ms} is not 15 minutes from now ({now_ms})"
        );
    }
}
