//! TLS interception: a local certificate authority (created on first start into the state
//! directory, key file 0600) that mints a leaf certificate per host, each with its own key,
//! a random serial, the host as DNS or IP SAN and a short validity, kept in a bounded cache; and
//! the verified client side towards origins (webpki roots plus configured extra roots).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber,
};
use ring::rand::SecureRandom;
/// ring's provider with AES-128-GCM preferred over AES-256-GCM: the same security margin for
/// this use, fewer rounds per byte on every upload relayed (browsers already prefer it).
fn default_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        _ => 2,
    });
    provider
}
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use thiserror::Error;

/// Why the CA or a leaf could not be made.
#[derive(Debug, Error)]
pub enum TlsError {
    /// Reading or writing the state directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Cert(String),
}

const CA_NAME: &str = "labelgate local interception CA";
const LEAF_CACHE: usize = 4096;

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "labelgate");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = days_from_now(-1);
    params.not_after = days_from_now(3650);
    params
}

/// Now plus `days`, in UTC (certificate validity bounds).
fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

/// The local CA and its leaf cache.
pub struct CertAuthority {
    cert_pem: String,
    spki: Vec<u8>,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    cache: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    minted: std::sync::atomic::AtomicU64,
    cache_hits: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("CertAuthority").field("name", &CA_NAME).finish()
    }
}

impl CertAuthority {
    /// Loads `ca.pem` + `ca.key` from `state_dir`, or creates them (the key file mode 0600).
    pub fn load_or_create(state_dir: &Path) -> Result<CertAuthority, TlsError> {
        fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
            move |source| TlsError::Io { path: path.display().to_string(), source }
        }
        let cert_path = state_dir.join("ca.pem");
        let key_path = state_dir.join("ca.key");
        if cert_path.is_file() && key_path.is_file() {
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Cert(format!("{}: {e}", key_path.display())))?;
            return CertAuthority::from_parts(cert_pem, key);
        }
        std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
        let key = KeyPair::generate().map_err(|e| TlsError::Cert(e.to_string()))?;
        let cert = ca_params().self_signed(&key).map_err(|e| TlsError::Cert(e.to_string()))?;
        write_private(&key_path, key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
        std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
        CertAuthority::from_parts(cert.pem(), key)
    }

    fn from_parts(cert_pem: String, key: KeyPair) -> Result<CertAuthority, TlsError> {
        let der = pem_to_der(&cert_pem).ok_or_else(|| TlsError::Cert("ca.pem holds no certificate".into()))?;
        // The stored certificate's subject is the fixed CA name, so an issuer rebuilt from the
        // same parameters and key signs leaves that chain to it.
        Ok(CertAuthority {
            cert_pem,
            spki: key.subject_public_key_info(),
            cert_der: CertificateDer::from(der),
            issuer: Issuer::new(ca_params(), key),
            cache: Mutex::new(HashMap::new()),
            minted: std::sync::atomic::AtomicU64::new(0),
            cache_hits: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The CA certificate, PEM, for browsers and trust stores.
    pub fn pem(&self) -> &str {
        &self.cert_pem
    }

    /// Base64 of the SHA-256 of the CA's SubjectPublicKeyInfo: what Chromium's
    /// `--ignore-certificate-errors-spki-list` and HPKP-style pins take.
    pub fn spki_sha256_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, &self.spki).as_ref())
    }

    /// Leaves minted so far (cache misses).
    pub fn minted(&self) -> u64 {
        self.minted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Handshakes served from the leaf cache.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The leaf for `host` (DNS name or IP literal), minted on first use.
    pub fn leaf(&self, host: &str) -> Result<Arc<CertifiedKey>, TlsError> {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if let Some(k) = self.cache.lock().unwrap_or_else(PoisonError::into_inner).get(&host) {
            self.cache_hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(Arc::clone(k));
        }
        let key = KeyPair::generate().map_err(|e| TlsError::Cert(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.as_str().try_into().map_err(|e| TlsError::Cert(format!("{host}: {e}")))?),
        }];
        let mut serial = [0u8; 16];
        ring::rand::SystemRandom::new().fill(&mut serial).map_err(|_| TlsError::Cert("no randomness".into()))?;
        serial[0] &= 0x7F;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = days_from_now(-1);
        params.not_after = days_from_now(7);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| TlsError::Cert(e.to_string()))?;
        let signing = default_provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
            .map_err(|e| TlsError::Cert(e.to_string()))?;
        let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone(), self.cert_der.clone()], signing));
        self.minted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= LEAF_CACHE {
            cache.clear();
        }
        cache.insert(host, Arc::clone(&certified));
        Ok(certified)
    }

    /// A rustls server config presenting leaves for the SNI, or `fallback_host` without one.
    pub(crate) fn server_config(self: &Arc<Self>, fallback_host: &str) -> Arc<rustls::ServerConfig> {
        let resolver = Arc::new(LeafResolver { ca: Arc::clone(self), fallback: fallback_host.to_string() });
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map(|b| b.with_no_client_auth().with_cert_resolver(resolver))
            .unwrap_or_else(|_| unreachable_config());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

fn unreachable_config() -> rustls::ServerConfig {
    // The ring provider supports the safe default versions; this only exists to avoid a panic path.
    rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(Arc::new(NoCert))
}

#[derive(Debug)]
struct NoCert;
impl ResolvesServerCert for NoCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

#[derive(Debug)]
struct LeafResolver {
    ca: Arc<CertAuthority>,
    fallback: String,
}

impl ResolvesServerCert for LeafResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name().unwrap_or(&self.fallback);
        self.ca.leaf(host).ok()
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        f.write_all(bytes)
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, bytes)
    }
}

/// The DER of the first certificate in a PEM text.
pub(crate) fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    pem_blocks(pem).into_iter().next()
}

/// The DER of every `CERTIFICATE` block in a PEM text.
pub(crate) fn pem_blocks(pem: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let after = &rest[start + 27..];
        let Some(end) = after.find("-----END CERTIFICATE-----") else { break };
        let b64: String = after[..end].chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) {
            out.push(der);
        }
        rest = &after[end..];
    }
    out
}

/// The client config for origins: webpki roots plus `extra_roots_pem`.
pub fn upstream_client_config(extra_roots_pem: &[String]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra_roots_pem {
        let blocks = pem_blocks(pem);
        if blocks.is_empty() {
            return Err(TlsError::Cert("an upstream CA file holds no certificate".into()));
        }
        for der in blocks {
            roots.add(CertificateDer::from(der)).map_err(|e| TlsError::Cert(e.to_string()))?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Cert(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_persists_with_a_private_key_and_mints_distinct_leaves() {
        let dir = std::env::temp_dir().join(format!("labelgate-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = CertAuthority::load_or_create(&dir).expect("created");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(dir.join("ca.key")).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = CertAuthority::load_or_create(&dir).expect("loaded");
        assert_eq!(ca.pem(), again.pem());
        let a = ca.leaf("example.com").unwrap();
        let b = ca.leaf("127.0.0.1").unwrap();
        assert_ne!(a.cert[0], b.cert[0]);
        assert!(Arc::ptr_eq(&a, &ca.leaf("EXAMPLE.com").unwrap()), "cached");
        assert_eq!(ca.minted(), 2);
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dates() {
        let week = days_from_now(7) - days_from_now(0);
        assert!(week.whole_days() == 7 || week.whole_days() == 6, "{week}");
    }
}
