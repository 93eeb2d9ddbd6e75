//! The one token check, shared by the REST API's writes and the WebSocket `$connect`:
//! an HS256 JWT signed with the stack's `AuthTokenSecret`, issued by `live-catalogue`.

use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "live-catalogue";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a token is required: send `Authorization: Bearer <token>` (or `?token=` on a WebSocket connect)")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

/// Checks tokens against the shared secret.
#[derive(Clone)]
pub struct TokenVerifier {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

impl TokenVerifier {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            key: jsonwebtoken::DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Reads `AUTH_TOKEN_SECRET`; a short secret is refused so a typo can't become a guessable key.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Self::read(&crate::config::Env::Process)
    }

    pub fn read(env: &crate::config::Env) -> Result<Self, crate::config::ConfigError> {
        let secret = env.required("AUTH_TOKEN_SECRET")?;
        if secret.len() < 32 {
            return Err(crate::config::ConfigError::Invalid {
                name: "AUTH_TOKEN_SECRET",
                value: "(hidden)".to_owned(),
                reason: "must be at least 32 characters".to_owned(),
            });
        }
        Ok(Self::new(secret.as_bytes()))
    }

    pub fn verify(&self, token: Option<&str>) -> Result<Claims, AuthError> {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })
    }
}

/// The token in an `Authorization: Bearer …` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Signs a token for `subject`, valid for `ttl_secs` (scripts/dev, the tests, the token tool).
pub fn issue(secret: &[u8], subject: &str, ttl_secs: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: subject.to_owned(),
        iss: ISSUER.to_owned(),
        iat: now,
        exp: now + ttl_secs,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing with an in-memory key cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_it_issued_verifies_with_its_subject() {
        let token = issue(SECRET, "alice", 60);
        let claims = TokenVerifier::new(SECRET).verify(Some(&token)).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.iss.as_str()),
            ("alice", ISSUER)
        );
    }

    #[test]
    fn missing_expired_foreign_and_garbage_tokens_are_refused() {
        let verifier = TokenVerifier::new(SECRET);
        assert_eq!(verifier.verify(None), Err(AuthError::Missing));
        assert_eq!(verifier.verify(Some("  ")), Err(AuthError::Missing));
        assert_eq!(
            verifier.verify(Some(&issue(SECRET, "bob", -60))),
            Err(AuthError::Expired)
        );
        let foreign = issue(b"another-secret-another-secret-xx", "eve", 60);
        assert!(matches!(
            verifier.verify(Some(&foreign)),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            verifier.verify(Some("not.a.jwt")),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_token_from_another_issuer_is_refused() {
        let claims = Claims {
            sub: "mallory".into(),
            iss: "someone-else".into(),
            iat: 0,
            exp: chrono::Utc::now().timestamp() + 60,
        };
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(
            TokenVerifier::new(SECRET).verify(Some(&token)),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("abc")), None);
        assert_eq!(bearer(None), None);
    }
}
