//! The HTTP layer under the registry client: the ureq agent (TLS roots, `--cert-dir`,
//! timeouts), URL handling (which hosts may get credentials, which addresses are never
//! contacted), redaction of URLs for messages, and the retry policy (backoff,
//! `Retry-After`).

use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often and how long to retry a request that failed for a passing reason
/// (connection reset, timeout, 5xx, 429).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The first wait; each later one doubles.
    pub base: Duration,
    /// No single wait is longer, whatever the backoff or `Retry-After` says.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Five tries over about 15 s ride out a registry restart or a load balancer
        // shuffle; longer outages are better reported than waited out.
        RetryPolicy {
            attempts: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (`attempt` counts from 1): exponential with
    /// ±25 % jitter (so parallel uploads do not retry in lockstep), or what the server
    /// asked for with `Retry-After`, never more than the cap.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.cap);
        }
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let jitter = {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            0.75 + f64::from(nanos % 1000) / 2000.0
        };
        exp.mul_f64(jitter).min(self.cap)
    }
}

/// Parses `Retry-After`: delay seconds or an HTTP date. A date in the past means now;
/// anything unparseable is ignored (the normal backoff applies).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(v)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
fn parse_http_date(s: &str) -> Option<u64> {
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? as i64 + 1;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, se] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&d) || *h > 23 || *mi > 59 || *se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days)
        .ok()
        .map(|days| days * 86_400 + h * 3600 + mi * 60 + se)
}

/// What kind of address a host names, for deciding where credentials and requests may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostClass {
    /// `localhost`, 127.0.0.0/8, `::1`.
    Loopback,
    /// RFC 1918, CGNAT, unique-local IPv6.
    Private,
    /// Link-local (169.254.0.0/16 holds cloud metadata services), unspecified
    /// (`0.0.0.0`, `::`) or a metadata host name: never contacted.
    Forbidden,
    /// Anything else (a public address or a DNS name).
    Public,
}

/// Splits `host[:port]` / `[v6]:port` and returns the host part without brackets.
pub fn host_only(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Classifies a host (with or without port).
pub fn classify(authority: &str) -> HostClass {
    let host = host_only(authority).to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    if host == "localhost" || host.ends_with(".localhost") {
        return HostClass::Loopback;
    }
    if host == "metadata.google.internal" || host == "metadata" || host.is_empty() {
        return HostClass::Forbidden;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => classify_v4(v4),
        Ok(IpAddr::V6(v6)) => classify_v6(v6),
        // The other spellings of an IPv4 address that the system's resolver takes, as
        // inet_aton does (`2130706433`, `0x7f.1`, `127.1`, `0`, `0177.0.0.1`): judged as
        // the address they connect to, never as a name.
        Err(_) => match inet_aton(host) {
            Some(v4) => classify_v4(v4),
            None => HostClass::Public,
        },
    }
}

/// An IPv4 address in any form inet_aton(3) reads: one to four parts separated by
/// dots, each decimal, octal (a leading 0) or hexadecimal (0x); the last part fills the
/// bytes the others leave (`127.1` is 127.0.0.1, `2130706433` too).
fn inet_aton(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = host
        .split('.')
        .map(|p| {
            let (digits, radix) =
                if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
                    (h, 16)
                } else if p.len() > 1 && p.starts_with('0') {
                    (&p[1..], 8)
                } else {
                    (p, 10)
                };
            if p.is_empty() || (digits.is_empty() && radix != 16) {
                return None;
            }
            if digits.is_empty() {
                return Some(0);
            }
            if !digits.chars().all(|c| c.is_digit(radix)) || digits.len() > 12 {
                return None;
            }
            u64::from_str_radix(digits, radix).ok()
        })
        .collect::<Option<_>>()?;
    let (last, first) = parts.split_last()?;
    if parts.len() > 4 || first.iter().any(|&b| b > 255) {
        return None;
    }
    let room = 8 * (4 - first.len() as u32);
    if *last >= 1u64 << room {
        return None;
    }
    let mut value = *last as u32;
    for (i, &b) in first.iter().enumerate() {
        value |= (b as u32) << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(value))
}

fn classify_v4(ip: Ipv4Addr) -> HostClass {
    let o = ip.octets();
    if ip.is_loopback() {
        HostClass::Loopback
    } else if ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast() {
        HostClass::Forbidden
    } else if ip.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
        HostClass::Private
    } else {
        HostClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> HostClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let first = ip.segments()[0];
    if ip.is_loopback() {
        HostClass::Loopback
    } else if ip.is_unspecified() || (first & 0xffc0) == 0xfe80 {
        HostClass::Forbidden
    } else if (first & 0xfe00) == 0xfc00 {
        HostClass::Private
    } else {
        HostClass::Public
    }
}

/// A parsed absolute `http(s)://authority/path?query` URL (only what the client needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`, lowercased.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub rest: String,
}

impl Url {
    /// Parses an absolute http(s) URL; URLs with user info are refused (a credential
    /// in a URL would end up in messages).
    pub fn parse(s: &str) -> Result<Url> {
        let bad = |why: &str| Error::Registry(format!("invalid URL {}: {why}", redact(s)));
        let (scheme, after) = s.split_once("://").ok_or_else(|| bad("not absolute"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("only http and https are allowed"));
        }
        let (authority, rest) = match after.find(['/', '?']) {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("no host, or a user name in it"));
        }
        let rest = if rest.starts_with('?') {
            format!("/{rest}")
        } else {
            rest.to_string()
        };
        if rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("it has spaces or control characters"));
        }
        Ok(Url {
            authority: normalize_authority(authority, &scheme),
            scheme,
            rest,
        })
    }

    /// Resolves a `Location` header against this URL (absolute, or absolute path).
    pub fn join(&self, location: &str) -> Result<Url> {
        if location.contains("://") {
            Url::parse(location)
        } else if let Some(path) = location.strip_prefix('/') {
            if path.starts_with('/') {
                // `//host/path`: scheme-relative.
                Url::parse(&format!("{}:{location}", self.scheme))
            } else {
                Ok(Url {
                    rest: location.to_string(),
                    ..self.clone()
                })
            }
        } else {
            Err(Error::Registry(format!(
                "the registry answered with an unusable Location {:?}",
                redact(location)
            )))
        }
    }

    /// True when both name the same scheme, host and port.
    pub fn same_origin(&self, other: &Url) -> bool {
        self.scheme == other.scheme && self.authority == other.authority
    }

    /// This URL with `key=value` added to its query (value percent-encoded).
    pub fn with_query(&self, key: &str, value: &str) -> Url {
        let sep = if self.rest.contains('?') { '&' } else { '?' };
        Url {
            rest: format!("{}{sep}{key}={}", self.rest, encode_query(value)),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.rest)
    }
}

/// Drops a default port so `host:443` and `host` compare equal.
fn normalize_authority(authority: &str, scheme: &str) -> String {
    let a = authority.to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    match a.strip_suffix(default) {
        Some(h) if !h.is_empty() && !h.ends_with(':') => h.to_string(),
        _ => a,
    }
}

/// Percent-encodes a query value (unreserved characters stay).
pub fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL as it may be shown: no user info, and only query parameters known to carry
/// nothing secret. Upload locations carry signed `_state` tokens and storage redirects
/// carry signatures (`X-Amz-Signature`), so every other value becomes `…`.
pub fn redact(url: &str) -> String {
    const SHOWN: [&str; 7] = ["digest", "mount", "from", "n", "last", "service", "scope"];
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((auth, path)) => format!(
                "{scheme}://{}/{path}",
                auth.rsplit_once('@').map_or(auth, |(_, h)| h)
            ),
            None => format!(
                "{scheme}://{}",
                rest.rsplit_once('@').map_or(rest, |(_, h)| h)
            ),
        },
        None => base.to_string(),
    };
    match query {
        None => base,
        Some(q) => {
            let parts: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if SHOWN.contains(&k) => format!("{k}={v}"),
                    Some((k, _)) => format!("{k}=…"),
                    None => kv.to_string(),
                })
                .collect();
            format!("{base}?{}", parts.join("&"))
        }
    }
}

/// Where nobase finds CA certificates and client certificates for a registry.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// `--cert-dir`: `*.crt` files are extra CAs, `*.cert` + `*.key` a client certificate.
    /// Without it, `/etc/containers/certs.d/HOST` and `/etc/docker/certs.d/HOST` are
    /// used when they exist, as podman and docker do.
    pub cert_dir: Option<PathBuf>,
    /// Skip certificate verification (`--insecure`).
    pub insecure: bool,
    /// HTTPS only, even for a loopback registry (an explicit `--tls-verify=true`, as
    /// skopeo reads it): no fall-back to plain HTTP.
    pub https_only: bool,
}

/// Files that hold the system's CA bundle on common distributions; `SSL_CERT_FILE`
/// comes first, as OpenSSL-based tools honour it.
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/pki/tls/cacert.pem",            // OpenELEC
    "/etc/ssl/cert.pem",                  // Alpine, macOS
];

fn read_certs(path: &Path, out: &mut Vec<ureq::tls::Certificate<'static>>) -> Result<usize> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Registry(format!("reading certificates {}: {e}", path.display())))?;
    let before = out.len();
    for item in ureq::tls::parse_pem(&bytes) {
        if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
            out.push(c);
        }
    }
    Ok(out.len() - before)
}

/// Reads a client certificate (`NAME.cert`) and its key (`NAME.key`) and checks them the
/// way rustls will when ureq builds its configuration. ureq treats a pair rustls refuses
/// as impossible and panics (in whichever thread first connects), so everything it would
/// refuse is refused here, naming the file and the reason.
fn client_identity(cert: &Path) -> Result<ureq::tls::ClientCert> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use ureq::tls::{ClientCert, PrivateKey};
    let key_path = cert.with_extension("key");
    let mut chain = Vec::new();
    if read_certs(cert, &mut chain)? == 0 {
        return Err(Error::Registry(format!(
            "{} holds no certificate (-----BEGIN CERTIFICATE-----); put the client \
             certificate there in PEM form, or remove the file",
            cert.display()
        )));
    }
    let key_pem = std::fs::read(&key_path).map_err(|e| {
        Error::Registry(format!(
            "{} has no matching key {}: {e}",
            cert.display(),
            key_path.display()
        ))
    })?;
    let no_key = || {
        Error::Registry(format!(
            "{} holds no usable private key (-----BEGIN PRIVATE KEY-----)",
            key_path.display()
        ))
    };
    // ureq's reader and pki-types' take the first private key of the file alike.
    let key = PrivateKey::from_pem(&key_pem).map_err(|_| no_key())?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| no_key())?;
    let chain_der: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    // The same call ureq makes (`with_client_auth_cert`, on the same ring provider): it
    // loads the key and compares its public half with the certificate's.
    let checked = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| {
        b.with_root_certificates(rustls::RootCertStore::empty())
            .with_client_auth_cert(chain_der, key_der)
    });
    match checked {
        Ok(Ok(_)) => Ok(ClientCert::new_with_certs(&chain, key)),
        Ok(Err(e)) => Err(Error::Registry(client_identity_refusal(
            cert,
            &key_path,
            chain.first().map(|c| c.der()),
            &e,
        ))),
        Err(e) => Err(Error::Registry(format!("setting up TLS: {e}"))),
    }
}

/// Why rustls refused a client certificate and key, in words, with what to do.
fn client_identity_refusal(
    cert: &Path,
    key: &Path,
    first: Option<&[u8]>,
    e: &rustls::Error,
) -> String {
    use rustls::{Error as E, InconsistentKeys};
    let (cert, key) = (cert.display(), key.display());
    match e {
        E::InconsistentKeys(InconsistentKeys::KeyMismatch) => format!(
            "{key} does not belong to {cert} (the certificate holds another public key); \
             give the key the certificate was issued for"
        ),
        E::InvalidCertificate(_) if first.and_then(x509_version) == Some(1) => format!(
            "{cert} is an X.509 version 1 certificate, which TLS client authentication here \
             does not accept; re-issue it with extensions (openssl x509 -req … -extfile \
             FILE, FILE holding extendedKeyUsage=clientAuth)"
        ),
        E::InvalidCertificate(why) => format!(
            "{cert} cannot be used as a TLS client certificate: it does not parse as one \
             ({why:?})"
        ),
        E::General(why) => format!(
            "{key} holds a private key that TLS here cannot use ({why}); RSA (2048 bits or \
             more), ECDSA P-256/P-384 and Ed25519 keys work"
        ),
        other => format!("{cert} with {key} cannot be used for TLS client authentication: {other}"),
    }
}

/// The version of a DER X.509 certificate (1, 2 or 3), read from the start of its
/// TBSCertificate: an explicit `[0]` version field, absent in version 1.
fn x509_version(der: &[u8]) -> Option<u8> {
    // One DER header: (tag, header length, content length).
    fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *b.first()?;
        let first = *b.get(1)?;
        if first < 0x80 {
            return Some((tag, 2, usize::from(first)));
        }
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = b
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        Some((tag, 2 + n, len))
    }
    let (0x30, cert_h, _) = header(der)? else {
        return None;
    };
    let tbs = der.get(cert_h..)?;
    let (0x30, tbs_h, _) = header(tbs)? else {
        return None;
    };
    let first = tbs.get(tbs_h..)?;
    match header(first)? {
        // [0] EXPLICIT Version ::= INTEGER { v1(0), v2(1), v3(2) }
        (0xa0, h, _) => match first.get(h..h + 3)? {
            [0x02, 0x01, v] if *v <= 2 => Some(v + 1),
            _ => None,
        },
        // The serial number comes first: no version field, so version 1.
        (0x02, _, _) => Some(1),
        _ => None,
    }
}

/// Builds the TLS configuration for `host`: the system's roots (the Mozilla set that
/// ureq bundles only when the system has no bundle), plus the cert directory's CAs and
/// client certificate.
fn tls_config(host: &str, opts: &TlsOptions) -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{RootCerts, TlsConfig};
    let mut roots = Vec::new();
    let env_bundle = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let mut system = false;
    for p in env_bundle
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
    {
        if p.is_file() && read_certs(&p, &mut roots).unwrap_or(0) > 0 {
            system = true;
            break;
        }
    }
    let dirs: Vec<PathBuf> = match &opts.cert_dir {
        Some(d) => vec![d.clone()],
        None => ["/etc/containers/certs.d", "/etc/docker/certs.d"]
            .iter()
            .map(|b| Path::new(b).join(host))
            .filter(|d| d.is_dir())
            .collect(),
    };
    let mut client = None;
    for dir in &dirs {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::Registry(format!("reading the cert dir {}: {e}", dir.display())))?;
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in &names {
            match p.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    let found = read_certs(p, &mut roots)?;
                    if found == 0 {
                        return Err(Error::Registry(format!(
                            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                            p.display()
                        )));
                    }
                }
                Some("cert") => client = Some(client_identity(p)?),
                _ => {}
            }
        }
    }
    // Without a system bundle, the cert dir's CAs alone decide (a user who names a
    // private CA on such a machine wants exactly that); with neither, Mozilla's set.
    let root_certs = if system || !roots.is_empty() {
        RootCerts::new_with_certs(&roots)
    } else {
        RootCerts::WebPki
    };
    Ok(TlsConfig::builder()
        .root_certs(root_certs)
        .client_cert(client)
        .disable_verification(opts.insecure)
        .build())
}

/// Builds the HTTP agent for one registry. Redirects are not followed by ureq: the
/// client follows them itself, to decide per hop whether credentials go along.
/// Statuses are answers, not errors. Per-read and per-write timeouts (not a total one)
/// let a 700 MB blob take as long as it needs while a stalled connection fails.
/// A loopback registry is reached directly: an `HTTPS_PROXY` from the environment is
/// for the outside world (Go's clients skip it for loopback too).
pub fn agent(host: &str, tls: &TlsOptions, io_timeout: Duration) -> Result<ureq::Agent> {
    let mut builder = ureq::Agent::config_builder();
    if classify(host) == HostClass::Loopback {
        builder = builder.proxy(None);
    }
    let config = builder
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("nobase/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(io_timeout))
        .timeout_per_write(Some(io_timeout))
        .tls_config(tls_config(host, tls)?)
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

/// True for I/O errors worth retrying: the connection, not the request, failed.
pub fn io_retryable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset
            | ConnectionAborted
            | ConnectionRefused
            | BrokenPipe
            | UnexpectedEof
            | TimedOut
            | Interrupted
            | WouldBlock
            | NotConnected
    ) || e
        .get_ref()
        .and_then(|i| i.downcast_ref::<ureq::Error>())
        .is_some_and(ureq_retryable)
}

/// True for ureq errors worth retrying.
pub fn ureq_retryable(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => io_retryable(io),
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

/// A ureq error in words that never include a URL (ureq's own messages can).
pub fn describe_ureq(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Protocol(p) => format!("HTTP protocol error: {p}"),
        ureq::Error::Tls(t) => format!("TLS: {t}"),
        ureq::Error::Rustls(r) => format!("TLS: {r}"),
        ureq::Error::BadUri(_) => "invalid URL".into(),
        ureq::Error::InvalidProxyUrl => "invalid proxy URL in the environment".into(),
        ureq::Error::BodyExceedsLimit(n) => format!("response larger than {n} bytes"),
        other => other.to_string(),
    }
}

/// A response body that must keep moving: after a grace period (the I/O timeout), one
/// averaging under [`MIN_RATE`] bytes a second fails (a timed-out read, retried like
/// one). Each read arriving within the I/O timeout is not enough: a registry dripping a
/// byte a second held a pull for as long as it liked.
pub struct RateGuard<R> {
    inner: R,
    /// Time spent waiting in `inner`'s reads: the sender's time, not the reader's (a
    /// consumer that holds a response before reading it, or reads slowly, is not the
    /// registry being slow).
    waited: std::time::Duration,
    grace: std::time::Duration,
    bytes: u64,
}

/// The slowest average a transfer may keep after its grace period: 1 KiB/s.
pub const MIN_RATE: u64 = 1024;

impl<R> RateGuard<R> {
    /// Guards `inner`, once it has been waited for longer than `grace`.
    pub fn new(inner: R, grace: std::time::Duration) -> Self {
        RateGuard {
            inner,
            waited: std::time::Duration::ZERO,
            grace,
            bytes: 0,
        }
    }
}

impl<R: std::io::Read> std::io::Read for RateGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let started = std::time::Instant::now();
        let n = self.inner.read(buf)?;
        self.waited += started.elapsed();
        self.bytes += n as u64;
        let waited = self.waited.as_secs_f64();
        let floor = (MIN_RATE as f64 * waited) as u64;
        if n > 0 && self.waited > self.grace && self.bytes < floor {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the transfer averaged {:.0} bytes/s over {waited:.1}s, under the {MIN_RATE} bytes/s nobase waits for",
                    self.bytes as f64 / waited
                ),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_floor_counts_the_senders_time_not_the_readers() {
        use std::io::Read;
        use std::time::Duration;
        /// One byte a read, after `delay`.
        struct Drip(Duration);
        impl Read for Drip {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::thread::sleep(self.0);
                buf[0] = b'x';
                Ok(1)
            }
        }
        let mut byte = [0u8; 1];
        // A sender dripping a byte each 30 ms fails once past the grace.
        let mut slow = RateGuard::new(Drip(Duration::from_millis(30)), Duration::from_millis(50));
        let err = (0..10).find_map(|_| slow.read(&mut byte).err()).unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        // A prompt sender read slowly is not: the reader's pauses are its own.
        let mut prompt = RateGuard::new(Drip(Duration::ZERO), Duration::from_secs(1));
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(prompt.read(&mut byte).unwrap(), 1);
        }
    }

    #[test]
    fn hosts_are_classified() {
        for (h, want) in [
            ("localhost:5000", HostClass::Loopback),
            ("127.0.0.1:5000", HostClass::Loopback),
            ("127.9.9.9", HostClass::Loopback),
            ("[::1]:5000", HostClass::Loopback),
            ("169.254.169.254", HostClass::Forbidden),
            ("[fe80::1]:80", HostClass::Forbidden),
            ("0.0.0.0:80", HostClass::Forbidden),
            ("[::]", HostClass::Forbidden),
            ("metadata.google.internal", HostClass::Forbidden),
            ("10.1.2.3", HostClass::Private),
            ("192.168.0.1:5000", HostClass::Private),
            ("[::ffff:10.0.0.1]", HostClass::Private),
            ("ghcr.io", HostClass::Public),
            ("8.8.8.8", HostClass::Public),
            // inet_aton's other spellings, which the resolver connects to as addresses.
            ("2130706433:5599", HostClass::Loopback),
            ("0x7f.1:5599", HostClass::Loopback),
            ("127.1", HostClass::Loopback),
            ("0177.0.0.1", HostClass::Loopback),
            ("0:5599", HostClass::Forbidden),
            ("0x0", HostClass::Forbidden),
            ("2852039166", HostClass::Forbidden),
            ("0xa.0x1.2.3", HostClass::Private),
            ("167772161", HostClass::Private),
            // Names, not numbers.
            ("1e100.net", HostClass::Public),
            ("0x7g.1", HostClass::Public),
            ("99999999999", HostClass::Public),
            ("1.2.3.4.5", HostClass::Public),
        ] {
            assert_eq!(classify(h), want, "{h}");
        }
        assert_eq!(inet_aton("127.0.0.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("10.65535"), Some(Ipv4Addr::new(10, 0, 255, 255)));
        assert_eq!(inet_aton("1.2.65536"), None);
        assert_eq!(inet_aton("256.1"), None);
        assert_eq!(inet_aton("08"), None);
    }

    #[test]
    fn urls_parse_join_and_compare() {
        let u = Url::parse("https://Reg.example:443/v2/").unwrap();
        assert_eq!(u.authority, "reg.example");
        let loc = u.join("/v2/a/blobs/uploads/x?_state=s").unwrap();
        assert!(loc.same_origin(&u));
        assert_eq!(
            loc.to_string(),
            "https://reg.example/v2/a/blobs/uploads/x?_state=s"
        );
        let other = u
            .join("https://s3.example/bucket?X-Amz-Signature=1")
            .unwrap();
        assert!(!other.same_origin(&u));
        assert!(!u.join("http://reg.example/v2/").unwrap().same_origin(&u));
        assert!(Url::parse("https://user:pw@reg.example/").is_err());
        assert!(Url::parse("file:///etc/passwd").is_err());
        assert!(u.join("relative").is_err());
        assert_eq!(
            loc.with_query("digest", "sha256:ab").rest,
            "/v2/a/blobs/uploads/x?_state=s&digest=sha256%3Aab"
        );
    }

    #[test]
    fn redaction_keeps_only_harmless_parts() {
        assert_eq!(
            redact("https://u:secret@h/p?_state=abc&digest=sha256:1"),
            "https://h/p?_state=…&digest=sha256:1"
        );
        assert_eq!(
            redact("https://s3/x?X-Amz-Signature=zzz"),
            "https://s3/x?X-Amz-Signature=…"
        );
        assert_eq!(redact("http://h/v2/"), "http://h/v2/");
    }

    #[test]
    fn x509_versions_are_read_from_the_tbs_certificate() {
        // SEQUENCE { SEQUENCE (TBSCertificate) { … } }, short and long length forms.
        let v3 = [
            0x30, 0x0a, 0x30, 0x08, 0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x05,
        ];
        let v1 = [0x30, 0x81, 0x05, 0x30, 0x03, 0x02, 0x01, 0x05];
        for (der, want) in [
            (&v3[..], Some(3)),
            (&v1[..], Some(1)),
            (&[0x30, 0x02, 0x04, 0x00][..], None),
            (&[0x30][..], None),
            (&[][..], None),
            (&[0x30, 0x85, 1, 2, 3, 4, 5][..], None),
        ] {
            assert_eq!(x509_version(der), want, "{der:02x?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        let p = RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(1)
        );
        assert!(p.wait(1, None) <= Duration::from_millis(125));
        assert!(p.wait(10, None) <= Duration::from_secs(1));
    }
}
