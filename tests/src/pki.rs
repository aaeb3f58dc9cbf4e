//! Certificates made at test time (rcgen), never committed: a CA, a server
//! certificate for `localhost` and `127.0.0.1`, and client certificates,
//! written as PEM files into a temporary folder for the hub, mosquitto
//! and paho, plus rustls client configs for Rust clients.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hub::listener::config::{ClientCert, ListenerConfig, ListenerKind};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub struct TestPki {
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// CA certificate (PEM) that signs the server and client certificates.
    pub ca_pem: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Identity (CN) of the client certificate `TestPki::new` issues.
pub const CLIENT_CN: &str = "device-42";

impl TestPki {
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "hub test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).expect("write CA");
        let pki = TestPki {
            ca_pem,
            server_cert: dir.path().join("server.pem"),
            server_key: dir.path().join("server.key"),
            client_cert: dir.path().join("client.pem"),
            client_key: dir.path().join("client.key"),
            ca,
            dir,
        };
        pki.issue_server("localhost");
        pki.issue_client("client", Some(CLIENT_CN), &[]);
        pki
    }

    /// (Re)writes the server certificate and key with subject `cn` and
    /// names localhost and 127.0.0.1; returns the certificate's DER.
    pub fn issue_server(&self, cn: &str) -> Vec<u8> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.ca).expect("server cert");
        std::fs::write(&self.server_cert, cert.pem()).expect("write server cert");
        std::fs::write(&self.server_key, key.serialize_pem()).expect("write server key");
        cert.der().to_vec()
    }

    /// Writes `<name>.pem` and `<name>.key`: a client certificate with
    /// subject CN `cn` (if any) and the given DNS SANs.
    pub fn issue_client(&self, name: &str, cn: Option<&str>, sans: &[&str]) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("client params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("client key");
        let cert = params.signed_by(&key, &self.ca).expect("client cert");
        let (c, k) = (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write client cert");
        std::fs::write(&k, key.serialize_pem()).expect("write client key");
        (c, k)
    }

    /// A listener of `kind` on an ephemeral port with this PKI's server
    /// certificate (if the kind is secure) and client CA.
    pub fn listener(
        &self,
        name: &str,
        kind: ListenerKind,
        client_cert: ClientCert,
    ) -> ListenerConfig {
        let mut l = ListenerConfig::ephemeral(name, kind);
        if kind.is_secure() {
            l.cert = Some(self.server_cert.clone());
            l.key = Some(self.server_key.clone());
            if client_cert != ClientCert::None {
                l.client_ca = Some(self.ca_pem.clone());
                l.client_cert = client_cert;
            }
        }
        l
    }

    /// A rustls client config trusting this CA, presenting the client
    /// certificate `name` (see `issue_client`) if given.
    pub fn client_config(&self, client: Option<&str>, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca_pem).expect("read CA") {
            roots.add(c.expect("CA pem")).expect("add CA");
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let dir = self.dir.path();
                let certs = load_certs(&dir.join(format!("{name}.pem")));
                let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key")))
                    .expect("client key");
                builder
                    .with_client_auth_cert(certs, key)
                    .expect("client auth")
            }
        };
        config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        config
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

fn load_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .expect("read certs")
        .map(|c| c.expect("cert pem"))
        .collect()
}
