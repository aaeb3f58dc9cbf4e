//! JSON Web Tokens carried in the CONNECT password: HS256 (shared secret)
//! and RS256 (public key), `exp` required and checked without leeway. The
//! token's `exp` also ends the session (DISCONNECT 0xA0 Maximum connect
//! time); `sub` names the user and must equal the CONNECT user name when
//! both are given; a tenant may come from a claim.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Option<String>,
    /// PEM file with the RSA public key for RS256 tokens.
    pub rs256_public_key_file: Option<PathBuf>,
    /// Claim that holds the user's tenant, if tenants come from tokens.
    pub tenant_claim: Option<String>,
}

impl JwtConfig {
    pub fn enabled(&self) -> bool {
        self.hs256_secret.is_some() || self.rs256_public_key_file.is_some()
    }
}

pub struct JwtVerifier {
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    tenant_claim: Option<String>,
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct Claims {
    pub subject: Option<String>,
    pub tenant: Option<String>,
    /// When the token (and so the session) ends.
    pub expires: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT")]
    NotJwt,
    #[error("token rejected: {0}")]
    Invalid(String),
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig) -> Result<JwtVerifier, String> {
        let hs256 = config
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        let rs256 = match &config.rs256_public_key_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Some(
                    DecodingKey::from_rsa_pem(&pem)
                        .map_err(|e| format!("{}: not an RSA public key: {e}", path.display()))?,
                )
            }
            None => None,
        };
        Ok(JwtVerifier {
            hs256,
            rs256,
            tenant_claim: config.tenant_claim.clone(),
        })
    }

    /// Whether a password looks like a token (three base64url parts, a
    /// JSON header), so other passwords go to the credentials file.
    pub fn looks_like_jwt(password: &[u8]) -> bool {
        password.starts_with(b"eyJ") && password.iter().filter(|&&b| b == b'.').count() == 2
    }

    pub fn verify(&self, token: &[u8]) -> Result<Claims, JwtError> {
        let token = std::str::from_utf8(token).map_err(|_| JwtError::NotJwt)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::NotJwt)?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        }
        .ok_or_else(|| JwtError::Invalid(format!("algorithm {:?} not accepted", header.alg)))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp"]);
        let data =
            jsonwebtoken::decode::<HashMap<String, serde_json::Value>>(token, key, &validation)
                .map_err(|e| JwtError::Invalid(e.to_string()))?;
        let claims = data.claims;
        let exp = claims
            .get("exp")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| JwtError::Invalid("exp is not a number".into()))?;
        let expires = UNIX_EPOCH + Duration::from_secs(exp);
        // `validate_exp` compares whole seconds; the session needs time left.
        if expires <= SystemTime::now() {
            return Err(JwtError::Invalid("token expired".into()));
        }
        let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(Claims {
            subject: text("sub"),
            tenant: self.tenant_claim.as_deref().and_then(text),
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&JwtConfig {
            hs256_secret: Some("k".into()),
            tenant_claim: Some("tenant".into()),
            ..Default::default()
        })
        .unwrap()
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn valid_token_gives_subject_tenant_and_expiry() {
        let t = token(
            serde_json::json!({"sub": "dev", "tenant": "acme", "exp": now() + 60}),
            "k",
        );
        assert!(JwtVerifier::looks_like_jwt(t.as_bytes()));
        let c = verifier().verify(t.as_bytes()).unwrap();
        assert_eq!(c.subject.as_deref(), Some("dev"));
        assert_eq!(c.tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn wrong_key_expired_or_no_exp_is_refused() {
        let v = verifier();
        let wrong = token(
            serde_json::json!({"sub": "dev", "exp": now() + 60}),
            "other",
        );
        assert!(v.verify(wrong.as_bytes()).is_err());
        let old = token(serde_json::json!({"sub": "dev", "exp": now() - 1}), "k");
        assert!(v.verify(old.as_bytes()).is_err());
        let forever = token(serde_json::json!({"sub": "dev"}), "k");
        assert!(v.verify(forever.as_bytes()).is_err());
        // RS256 not configured here: header {"alg":"RS256"}.
        assert!(v.verify(b"eyJhbGciOiJSUzI1NiJ9.e30.c2ln").is_err());
        assert!(!JwtVerifier::looks_like_jwt(b"hunter2"));
    }
}
