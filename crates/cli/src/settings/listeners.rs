//! Where the listeners are and which speak TLS: TorchServe's address keys (`http://`, `https://` or
//! a bare `host:port`), its gRPC port keys, and `certificate_file` / `private_key_file` /
//! `enable_grpc_ssl`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{Context, bail};
use oxserve_server::{TlsConfig, TlsListeners};

use super::Layers;

impl Layers {
    pub(super) fn address(&self, key: &str, default: &str) -> anyhow::Result<SocketAddr> {
        parse_address(self.get(key).unwrap_or(default)).with_context(|| format!("invalid {key}"))
    }

    /// A gRPC listener: the host of `address_key` (loopback by default; a port given there is kept)
    /// and the port of `port_key`, which wins, as TorchServe's `grpc_*_port` keys.
    pub(super) fn grpc_address(
        &self,
        address_key: &str,
        port_key: &str,
        default_port: u16,
    ) -> anyhow::Result<SocketAddr> {
        let mut addr = match self.get(address_key) {
            None => SocketAddr::from(([127, 0, 0, 1], default_port)),
            Some(v) => {
                let mut addr =
                    parse_address(v).with_context(|| format!("invalid {address_key}"))?;
                if !has_port(v) {
                    addr.set_port(default_port);
                }
                addr
            }
        };
        if self.get(port_key).is_some() {
            addr.set_port(self.number(port_key, default_port)?);
        }
        Ok(addr)
    }

    /// TLS as TorchServe decides it: a listener whose address says `https://` speaks TLS, and the
    /// gRPC ones with `enable_grpc_ssl=true`, all with `certificate_file` and `private_key_file`.
    /// Certificate files that no listener uses stop the start rather than leave it plain HTTP.
    pub(super) fn tls(&self) -> anyhow::Result<Option<TlsConfig>> {
        if self.get("keystore").is_some() {
            bail!(
                "keystore (a Java KeyStore) is not read by oxserve: export the certificate and key \
                 as PEM (`openssl pkcs12 -in store.p12 -nokeys -out cert.pem` and `-nocerts -nodes \
                 -out key.pem`) and set certificate_file and private_key_file"
            );
        }
        let https = |key: &str| self.get(key).is_some_and(|v| v.trim().starts_with("https://"));
        let listeners = TlsListeners {
            inference: https("inference_address"),
            management: https("management_address"),
            metrics: https("metrics_address"),
            grpc: self.flag("enable_grpc_ssl")?,
        };
        let any =
            listeners.inference || listeners.management || listeners.metrics || listeners.grpc;
        match (self.get("certificate_file"), self.get("private_key_file")) {
            (None, None) if !any => Ok(None),
            (None, None) => bail!(
                "an https:// address or enable_grpc_ssl needs certificate_file and private_key_file \
                 (PEM)"
            ),
            (Some(_), Some(_)) if !any => bail!(
                "certificate_file and private_key_file are set but no listener uses them: write \
                 the addresses with https:// (inference_address=https://127.0.0.1:8443) and set \
                 enable_grpc_ssl=true for gRPC"
            ),
            (Some(cert), Some(key)) => Ok(Some(TlsConfig {
                certificate_file: PathBuf::from(cert),
                private_key_file: PathBuf::from(key),
                listeners,
            })),
            _ => bail!("TLS needs both certificate_file and private_key_file"),
        }
    }
}

/// Whether an address value names its port (`host:port`, `http://[::1]:9`), rather than leaving it to
/// a default.
fn has_port(value: &str) -> bool {
    let host_port = strip_scheme(value.trim()).trim_end_matches('/');
    url::Url::parse(&format!("http://{host_port}")).is_ok_and(|u| u.port().is_some())
}

/// The address without its `http://` or `https://`.
fn strip_scheme(value: &str) -> &str {
    value.strip_prefix("http://").or_else(|| value.strip_prefix("https://")).unwrap_or(value)
}

/// Parses a listener address: `http://host:port`, `https://host:port` (TLS: [`Layers::tls`]),
/// `host:port`. `unix:` is refused with a clear message.
pub(crate) fn parse_address(value: &str) -> anyhow::Result<SocketAddr> {
    let value = value.trim();
    if value.starts_with("unix:") {
        bail!("`{value}`: unix socket listeners are not supported");
    }
    let host_port = strip_scheme(value).trim_end_matches('/');
    let parsed = url::Url::parse(&format!("http://{host_port}"))
        .with_context(|| format!("`{value}` is not an address"))?;
    let host = parsed.host_str().with_context(|| format!("`{value}` has no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{value}`"))?
        .next()
        .with_context(|| format!("`{value}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_like_torchserve() {
        assert_eq!(
            parse_address("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(parse_address("0.0.0.0:9000").unwrap(), "0.0.0.0:9000".parse().unwrap());
        assert_eq!(parse_address("http://[::1]:8085").unwrap(), "[::1]:8085".parse().unwrap());
        assert_eq!(
            parse_address("https://127.0.0.1:8443").unwrap(),
            "127.0.0.1:8443".parse().unwrap()
        );
        assert!(parse_address("unix:/tmp/sock").is_err());
    }

    fn tls_of(pairs: &[(&str, &str)]) -> anyhow::Result<Option<TlsConfig>> {
        let mut layers = Layers::default();
        for (k, v) in pairs {
            layers.set(k, *v);
        }
        layers.resolve().map(|r| r.server.tls)
    }

    #[test]
    fn tls_is_on_the_listeners_whose_address_says_https() {
        let files = [("certificate_file", "cert.pem"), ("private_key_file", "key.pem")];
        let tls = tls_of(&[
            files[0],
            files[1],
            ("inference_address", "https://127.0.0.1:8443"),
            ("management_address", "https://127.0.0.1:8444"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            tls.listeners,
            TlsListeners { inference: true, management: true, metrics: false, grpc: false }
        );
        let grpc = tls_of(&[files[0], files[1], ("enable_grpc_ssl", "true")]).unwrap().unwrap();
        assert_eq!(
            grpc.listeners,
            TlsListeners { inference: false, management: false, metrics: false, grpc: true }
        );
        assert_eq!(tls_of(&[]).unwrap(), None);
    }

    #[test]
    fn tls_settings_that_cannot_work_stop_the_start() {
        let https = ("inference_address", "https://127.0.0.1:8443");
        let files = [("certificate_file", "cert.pem"), ("private_key_file", "key.pem")];
        let err = |pairs: &[(&str, &str)]| format!("{:#}", tls_of(pairs).unwrap_err());
        assert!(err(&[https]).contains("needs certificate_file"));
        assert!(err(&files).contains("no listener uses them"));
        assert!(err(&[https, files[0]]).contains("needs both"));
        assert!(err(&[https, files[0], files[1], ("keystore", "ks.jks")]).contains("PEM"));
        assert!(err(&[files[0], files[1], ("enable_grpc_ssl", "maybe")]).contains("true or false"));
    }
}
