//! The certificate credential: a client assertion (a JWT signed PS256 with the app's registered
//! certificate key, `x5t#S256` naming the certificate) sent instead of a client secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::RsaKeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A certificate's thumbprint and the key that signs assertions with it.
#[derive(Clone)]
pub struct CertificateCredential {
    key: Arc<RsaKeyPair>,
    /// base64url SHA-256 of the certificate DER.
    pub thumbprint_s256: String,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateCredential {{ x5t#S256: {}, key: [redacted] }}", self.thumbprint_s256)
    }
}

/// Why a certificate credential could not be loaded or used. Messages name the config key and
/// the file, never the key material.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The certificate file could not be read as PEM.
    #[error("certificate_file: {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key file could not be read as PEM PKCS#8.
    #[error("private_key_file: {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key is not an RSA PKCS#8 key.
    #[error("private_key_file: {path}: not an RSA PKCS#8 key")]
    NotRsa {
        /// The file.
        path: String,
    },
    /// Signing failed.
    #[error("cannot sign the client assertion")]
    Sign,
}

impl CertificateError {
    /// The `[[accounts]]` key the problem is about.
    pub fn key(&self) -> &'static str {
        match self {
            CertificateError::Certificate { .. } => "certificate_file",
            CertificateError::Key { .. } | CertificateError::NotRsa { .. } | CertificateError::Sign => "private_key_file",
        }
    }
}

impl CertificateCredential {
    /// Reads a PEM certificate and its PEM PKCS#8 RSA key.
    pub fn load(cert: &Path, key: &Path) -> Result<CertificateCredential, CertificateError> {
        let der = CertificateDer::from_pem_file(cert)
            .map_err(|e| CertificateError::Certificate { path: cert.display().to_string(), reason: e.to_string() })?;
        let pkcs8 = PrivatePkcs8KeyDer::from_pem_file(key)
            .map_err(|e| CertificateError::Key { path: key.display().to_string(), reason: e.to_string() })?;
        let key =
            RsaKeyPair::from_pkcs8(pkcs8.secret_pkcs8_der()).map_err(|_| CertificateError::NotRsa { path: key.display().to_string() })?;
        let thumbprint_s256 = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, der.as_ref()));
        Ok(CertificateCredential { key: Arc::new(key), thumbprint_s256 })
    }

    /// A fresh assertion for `client_id` at the token endpoint `audience`, valid 10 minutes.
    pub fn assertion(&self, client_id: &str, audience: &str, now_unix: u64) -> Result<String, CertificateError> {
        let header = serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_s256});
        let claims = serde_json::json!({
            "aud": audience, "iss": client_id, "sub": client_id, "jti": crate::new_guid(),
            "nbf": now_unix, "iat": now_unix, "exp": now_unix + 600,
        });
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&ring::signature::RSA_PSS_SHA256, &ring::rand::SystemRandom::new(), signing_input.as_bytes(), &mut signature)
            .map_err(|_| CertificateError::Sign)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}
