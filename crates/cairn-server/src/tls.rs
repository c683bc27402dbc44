//! HTTPS: Cairn serves TLS when it is given a certificate and a key (PEM files), through
//! rustls with the aws-lc-rs provider. Each connection's negotiated protocol and cipher suite
//! go with its requests, so their records carry `tlsDetails` as CloudTrail's do. Requests
//! arrive at the same router as over plain HTTP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a connection may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
use tower::ServiceExt;

use crate::{router, AppState, ServerError};

/// What a request's TLS connection negotiated, as its record's `tlsDetails` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionTls {
    /// `TLSv1.2`, `TLSv1.3`.
    pub tls_version: String,
    /// The suite's IANA name as CloudTrail writes it (`TLS_AES_128_GCM_SHA256`,
    /// `ECDHE-RSA-AES128-GCM-SHA256`).
    pub cipher_suite: String,
}

/// A server configuration from a PEM certificate chain and a PEM private key.
pub fn server_config(
    certificate: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let tls = |reason: String| ServerError::Tls(reason);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .map_err(|error| tls(format!("{}: {error}", certificate.display())))?
        .collect::<Result<_, _>>()
        .map_err(|error| tls(format!("{}: {error}", certificate.display())))?;
    if chain.is_empty() {
        return Err(tls(format!(
            "{} holds no certificate",
            certificate.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| tls(format!("{}: {error}", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| tls(error.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|error| {
        tls(format!(
            "the certificate and key do not make a server: {error}"
        ))
    })?;
    Ok(Arc::new(config))
}

/// Serves HTTPS on `listener` until `shutdown` resolves. A connection whose handshake fails
/// is dropped (and logged at debug level); it never reaches the router.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let app = router(state);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            // A client that opens a connection and never finishes the handshake must not
            // hold it forever.
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let tls = negotiated(stream.get_ref().1);
            let service = app.map_request(move |request: http::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                if let Some(tls) = &tls {
                    request.extensions_mut().insert(tls.clone());
                }
                request
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
}

fn negotiated(connection: &rustls::ServerConnection) -> Option<ConnectionTls> {
    let version = match connection.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => return None,
    };
    let suite = connection.negotiated_cipher_suite()?.suite();
    Some(ConnectionTls {
        tls_version: version.to_owned(),
        cipher_suite: cipher_suite_name(suite),
    })
}

/// CloudTrail writes TLS 1.3 suites by their IANA names and TLS 1.2 suites by OpenSSL's.
fn cipher_suite_name(suite: rustls::CipherSuite) -> String {
    use rustls::CipherSuite as Suite;
    let name = match suite {
        Suite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        Suite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        Suite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        Suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        Suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        Suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        Suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        Suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        Suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        other => return format!("{other:?}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_are_named_as_cloudtrail_names_them() {
        assert_eq!(
            cipher_suite_name(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            cipher_suite_name(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            "ECDHE-RSA-AES128-GCM-SHA256"
        );
    }

    #[test]
    fn unreadable_certificates_and_keys_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = server_config(&missing, &missing).unwrap_err().to_string();
        assert!(error.contains("missing.pem"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let error = server_config(&empty, &empty).unwrap_err().to_string();
        assert!(error.contains("holds no certificate"), "{error}");
    }
}
