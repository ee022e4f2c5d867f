//! TLS for the models' connections and the built-in targets: rustls with the ring provider.
//!
//! Clients trust the platform's roots plus an optional CA file (and, against the built-in
//! targets, the CA generated for the run), offer ALPN `http/1.1`, and resume sessions unless
//! told not to (`resume = false`: every fresh connection pays a full handshake, as for a
//! provider that keeps no session cache). `verify = false` accepts any certificate (test
//! targets only) but still checks the handshake's signatures. Servers take a PEM certificate
//! chain and key, or an identity generated here with rcgen: a CA and a leaf for `localhost`
//! and `127.0.0.1`, the CA being what the harness trusts. Handshake errors are explained in
//! words that name the scenario key to change.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::scenario::TlsSettings;

pub mod session;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a model's connections need to speak TLS to one target.
#[derive(Clone)]
pub struct ClientTls {
    /// Starts handshakes (the webhook model's streams).
    pub connector: tokio_rustls::TlsConnector,
    /// The same configuration, for sessions driven record by record (the WebSocket fleet).
    pub config: Arc<ClientConfig>,
    /// The name the certificate must be valid for (and sent as SNI).
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientTls({:?})", self.server_name)
    }
}

/// The client side for a target at `host`: `settings` from the scenario, `extra_ca_pem` the
/// built-in target's CA. Errors name the key to change.
pub fn client(
    settings: &TlsSettings,
    host: &str,
    extra_ca_pem: Option<&str>,
) -> Result<ClientTls, String> {
    let name = settings.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| format!("tls.server_name: \"{name}\" is not a host name or address"))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = if settings.verify {
        let mut roots = RootCertStore::empty();
        // The platform's roots; a machine without any still trusts the CA files given.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &settings.ca_file {
            let added = add_pem_file(&mut roots, path)?;
            if added == 0 {
                return Err(format!(
                    "tls.ca_file: {} holds no certificate",
                    path.display()
                ));
            }
        }
        if let Some(pem) = extra_ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("the run's CA: {e}"))?;
                roots.add(cert).map_err(|e| format!("the run's CA: {e}"))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = if settings.resume {
        Resumption::in_memory_sessions(1024)
    } else {
        Resumption::disabled()
    };
    let config = Arc::new(config);
    Ok(ClientTls {
        connector: tokio_rustls::TlsConnector::from(config.clone()),
        config,
        server_name,
    })
}

fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> Result<usize, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("tls.ca_file: cannot read {}: {e}", path.display()))?;
    let mut added = 0;
    for cert in certs {
        let cert = cert.map_err(|e| format!("tls.ca_file: {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("tls.ca_file: {}: {e}", path.display()))?;
        added += 1;
    }
    Ok(added)
}

/// `verify = false`: any certificate, but the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A certificate chain and key for a server, in PEM, and the key its session tickets are
/// sealed with.
#[derive(Clone)]
pub struct Identity {
    /// The leaf, then the CA.
    pub chain_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
    /// The CA clients trust (generated identities only).
    pub ca_pem: Option<String>,
    /// Seals session tickets: every process serving this identity shares it, so a client
    /// resumes on whichever process the kernel hands its connection to.
    pub ticket_key: [u8; 32],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("chain_pem", &self.chain_pem)
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

fn random_key() -> Result<[u8; 32], String> {
    use ring::rand::SecureRandom;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| "no randomness for the session ticket key".to_string())?;
    Ok(key)
}

impl Identity {
    /// A CA and a leaf for `localhost` and `127.0.0.1`, made for this run.
    pub fn generate() -> Result<Self, String> {
        Self::generate_for(None)
    }

    /// As [`Identity::generate`], the leaf also valid for `also` (a target's address across an
    /// emulated link).
    pub fn generate_for(also: Option<std::net::IpAddr>) -> Result<Self, String> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let err = |e: rcgen::Error| format!("generating the run's certificate: {e}");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pushbench run CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(err)?)
            .map_err(err)?;
        let leaf_key = KeyPair::generate().map_err(err)?;
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(also.map(|ip| ip.to_string()));
        let mut leaf_params = CertificateParams::new(names).map_err(err)?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "pushbench built-in target");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(err)?;
        Ok(Self {
            chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
            key_pem: leaf_key.serialize_pem(),
            ca_pem: Some(ca.pem()),
            ticket_key: random_key()?,
        })
    }

    /// Reads a chain and key from PEM files (`serve --tls-cert --tls-key`), and the ticket key
    /// from `tickets` (32 bytes, as the harness hands it to its server processes) or a new one.
    pub fn from_files(cert: &Path, key: &Path, tickets: Option<&Path>) -> Result<Self, String> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let ticket_key = match tickets {
            Some(p) => std::fs::read(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?
                .try_into()
                .map_err(|_| format!("{} does not hold a 32-byte key", p.display()))?,
            None => random_key()?,
        };
        Ok(Self {
            chain_pem: read(cert)?,
            key_pem: read(key)?,
            ca_pem: None,
            ticket_key,
        })
    }

    /// The server side: ALPN `http/1.1`, stateless session tickets (sealed with the shared
    /// key) so any number of clients can resume, on any of the server's processes.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let chain = CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the certificate: {e}"))?;
        if chain.is_empty() {
            return Err("the certificate file holds no certificate".into());
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| format!("the key: {e}"))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("the certificate and key: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.ticketer = Arc::new(SharedTickets::new(&self.ticket_key)?);
        Ok(Arc::new(config))
    }
}

/// Session tickets sealed with ChaCha20-Poly1305 under one key, a random nonce per ticket. The
/// key is never rotated: it lives as long as the (benchmark) server, as a gateway fleet's
/// shared ticket key would for a run's length.
struct SharedTickets {
    key: ring::aead::LessSafeKey,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for SharedTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedTickets")
    }
}

const TICKET_NONCE: usize = 12;

impl SharedTickets {
    fn new(key: &[u8; 32]) -> Result<Self, String> {
        let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key)
            .map_err(|_| "TLS tickets: bad key".to_string())?;
        Ok(Self {
            key: ring::aead::LessSafeKey::new(key),
            rng: ring::rand::SystemRandom::new(),
        })
    }
}

impl rustls::server::ProducesTickets for SharedTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        6 * 3600
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        use ring::rand::SecureRandom;
        let mut nonce = [0u8; TICKET_NONCE];
        self.rng.fill(&mut nonce).ok()?;
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::empty(),
                &mut body,
            )
            .ok()?;
        let mut ticket = Vec::with_capacity(TICKET_NONCE + body.len());
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(&body);
        Some(ticket)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < TICKET_NONCE + 16 {
            return None;
        }
        let (nonce, sealed) = cipher.split_at(TICKET_NONCE);
        let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = sealed.to_vec();
        let len = self
            .key
            .open_in_place(nonce, ring::aead::Aad::empty(), &mut body)
            .ok()?
            .len();
        body.truncate(len);
        Some(body)
    }
}

/// What a handshake negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

impl Negotiated {
    /// What a connection's handshake settled on.
    pub fn of(conn: &rustls::CommonState) -> Self {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map_or_else(String::new, |s| format!("{:?}", s.suite()));
        Self { version, cipher }
    }

    /// The summary's `tls` block: these, and the handshakes a run's counters hold.
    pub fn summary(
        self,
        all: &crate::record::PhaseStats,
        resume: bool,
    ) -> crate::record::results::TlsSummary {
        use crate::record::Counter;
        crate::record::results::TlsSummary {
            full: all.get(Counter::TlsFull),
            resumed: all.get(Counter::TlsResumed),
            version: self.version,
            cipher: self.cipher,
            resume,
        }
    }
}

/// One handshake with the target before the run, so that a certificate or protocol problem
/// stops it with a message naming the key to change, instead of failing every delivery.
pub async fn probe(addr: std::net::SocketAddr, tls: &ClientTls) -> Result<Negotiated, String> {
    use std::time::Duration;
    let tcp = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no TCP connection to {addr} within 3 s"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tls.connector.connect(tls.server_name.clone(), tcp),
    )
    .await
    .map_err(|_| "no TLS handshake within 5 s: is this port serving TLS?".to_string())?
    .map_err(|e| explain(&e))?;
    Ok(Negotiated::of(stream.get_ref().1))
}

/// A failed handshake in words, naming the scenario key that changes the outcome.
pub fn explain(e: &io::Error) -> String {
    use rustls::{CertificateError, Error as TlsError};
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>())
    else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => format!(
                "the server closed the connection during the TLS handshake ({e}): is it \
                 serving TLS on this port?"
            ),
            _ => format!("TLS handshake failed: {e}"),
        };
    };
    match tls {
        TlsError::InvalidCertificate(CertificateError::UnknownIssuer)
        | TlsError::InvalidCertificate(CertificateError::BadSignature) => {
            "the server's certificate is not signed by a trusted CA: give the CA with \
             tls.ca_file (or set tls.verify = false against a test target)"
                .into()
        }
        TlsError::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the server's certificate is not valid for this host name: set tls.server_name to \
              a name it is valid for"
            .into(),
        TlsError::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server's certificate has expired (renew it, or set tls.verify = false \
              against a test target)"
            .into(),
        TlsError::InvalidMessage(_) => {
            "the server did not answer in TLS: is it a plaintext server on an https:// or \
             wss:// url? (use http:// or ws://, or point at its TLS port)"
                .into()
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn tickets_open_on_every_process_sharing_the_key_and_nowhere_else() {
        let key = random_key().unwrap();
        let (a, b) = (
            SharedTickets::new(&key).unwrap(),
            SharedTickets::new(&key).unwrap(),
        );
        let ticket = a.encrypt(b"session state").unwrap();
        assert_ne!(&ticket[TICKET_NONCE..TICKET_NONCE + 13], b"session state");
        assert_eq!(b.decrypt(&ticket).as_deref(), Some(&b"session state"[..]));
        assert_ne!(
            a.encrypt(b"session state").unwrap(),
            ticket,
            "a fresh nonce each time"
        );
        let other = SharedTickets::new(&random_key().unwrap()).unwrap();
        assert_eq!(other.decrypt(&ticket), None);
        let mut forged = ticket.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(b.decrypt(&forged), None);
        assert_eq!(b.decrypt(&ticket[..20]), None);
    }

    #[test]
    fn a_generated_identity_serves_and_is_trusted_through_its_ca_only() {
        let id = Identity::generate().unwrap();
        assert!(id.server_config().is_ok());
        let settings = TlsSettings::default();
        assert!(client(&settings, "127.0.0.1", id.ca_pem.as_deref()).is_ok());
        let bad = TlsSettings {
            server_name: Some("not a name!".into()),
            ..TlsSettings::default()
        };
        let e = client(&bad, "127.0.0.1", None).unwrap_err();
        assert!(e.starts_with("tls.server_name"), "{e}");
        let missing = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        let e = client(&missing, "127.0.0.1", None).unwrap_err();
        assert!(e.starts_with("tls.ca_file: cannot read"), "{e}");
    }
}
