//! Registries: push, pull and read over the distribution API, judged by a real
//! `docker-registry` (distribution 2.8) on loopback and by skopeo. Basic auth
//! (htpasswd) and Bearer tokens (a token server in this file, signing JWTs with a key
//! made by openssl), a fault-injecting proxy between nobase and the registry, and
//! secrets that must never be printed. Everything listens on 127.0.0.1 only.

use crate::util::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USER: &str = "tester";
const PASS: &str = "s3cret-Pa55";

// ---------------------------------------------------------------------------------
// A real registry on a free loopback port.

pub(crate) enum Auth {
    None,
    /// Basic auth for USER:PASS.
    Htpasswd,
    /// Basic auth for another user.
    HtpasswdAs(&'static str, &'static str),
    Token {
        realm: String,
        cert: PathBuf,
    },
}

pub(crate) struct Registry {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

/// One GET over a fresh connection; the status code, or None if nothing answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Registry {
    /// Starts `docker-registry` with its own storage and config; None (after saying
    /// why) when it is not installed.
    pub(crate) fn start(auth: Auth) -> Option<Registry> {
        Registry::start_with(auth, None)
    }

    /// The same, serving TLS with `(certificate, key)`.
    fn start_with(auth: Auth, tls: Option<(&Path, &Path)>) -> Option<Registry> {
        let htpasswd = match auth {
            Auth::Htpasswd => Some((USER, PASS)),
            Auth::HtpasswdAs(user, pass) => Some((user, pass)),
            _ => None,
        };
        if !have("docker-registry") || (htpasswd.is_some() && !have("htpasswd")) {
            return None;
        }
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            // Held until the registry answers: a port found free and let go could be given
            // to another test's server first, which would then answer for this registry.
            let reserved = reserved_port();
            let port = reserved.port;
            let auth_yaml = match (&auth, htpasswd) {
                (Auth::None, _) => String::new(),
                (Auth::Htpasswd | Auth::HtpasswdAs(..), Some((user, pass))) => {
                    let out = run(Command::new("htpasswd").args(["-Bbn", user, pass])).ok();
                    std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
                    format!(
                        "auth: {{htpasswd: {{realm: test, path: {}}}}}\n",
                        dir.path().join("htpasswd").display()
                    )
                }
                (Auth::Htpasswd | Auth::HtpasswdAs(..), None) => unreachable!(),
                (Auth::Token { realm, cert }, _) => format!(
                    "auth: {{token: {{realm: \"{realm}\", service: test-registry, issuer: test-issuer, rootcertbundle: {}}}}}\n",
                    cert.display()
                ),
            };
            let tls_yaml = tls
                .map(|(c, k)| {
                    format!(
                        ", tls: {{certificate: {}, key: {}}}",
                        c.display(),
                        k.display()
                    )
                })
                .unwrap_or_default();
            let cfg = format!(
                "version: 0.1\nlog: {{level: info}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}{tls_yaml}}}\n{auth_yaml}",
                dir.path().join("data").display()
            );
            std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(dir.path().join("config.yml"))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("docker-registry starts");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // it could not start: try again
                }
                if http_status(port, "/v2/").is_some() {
                    drop(reserved);
                    return Some(Registry {
                        port,
                        child,
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }

    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------
// HTTP plumbing shared by the proxy and the token server.

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Method, path and headers of a request.
type Head = (String, String, Vec<(String, String)>);

/// Reads a request's head; None at end of stream or on garbage (a TLS hello).
fn read_head(r: &mut BufReader<TcpStream>) -> Option<Head> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    if !parts.next()?.starts_with("HTTP/1") {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
        if headers.len() > 100 {
            return None;
        }
    }
    Some((method, path, headers))
}

fn content_length(headers: &[(String, String)]) -> usize {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn respond(s: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let _ = s.flush();
}

/// Runs `handle` for each connection on a loopback listener until dropped.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = Arc::new(handle);
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                        let h = handle.clone();
                        std::thread::spawn(move || h(s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------
// A fault-injecting, request-counting proxy.

/// What the proxy does with one request.
#[derive(Clone, Debug)]
enum Fault {
    Forward,
    /// Answer this status (with headers) instead of forwarding.
    Status(u16, Vec<(&'static str, String)>),
    /// Answer this status with this body.
    Reply(u16, Vec<u8>),
    /// Read half the request body, then close: the registry sees nothing.
    DropRequest,
    /// Forward, but pass on only this many body bytes of the answer, then close.
    CutResponse(usize),
    /// Answer 307 to this URL.
    Redirect(String),
}

/// A request as the proxy saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    body_len: usize,
    range: Option<String>,
    content_range: Option<String>,
    authorization: bool,
    /// The Authorization header itself.
    authorization_header: Option<String>,
}

type Plan = dyn Fn(&Seen, usize) -> Fault + Send + Sync;

struct Proxy {
    server: Server,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    /// A proxy to `upstream`; `plan(request, index)` picks each request's fate; with
    /// `auth`, requests are forwarded with that Authorization header instead of theirs.
    fn start(
        upstream: u16,
        auth: Option<String>,
        plan: impl Fn(&Seen, usize) -> Fault + Send + Sync + 'static,
    ) -> Proxy {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let seen2 = seen.clone();
        let plan: Arc<Plan> = Arc::new(plan);
        let server = Server::start(move |s| proxy_one(s, upstream, &auth, &seen2, &*plan));
        Proxy { server, seen }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, method: &str, path_part: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path.contains(path_part))
            .count()
    }
}

fn proxy_one(
    client: TcpStream,
    upstream: u16,
    auth: &Option<String>,
    seen: &Mutex<Vec<Seen>>,
    plan: &Plan,
) {
    let mut out = client.try_clone().unwrap();
    let mut r = BufReader::new(client);
    let Some((method, path, headers)) = read_head(&mut r) else {
        return;
    };
    let len = content_length(&headers);
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let s = Seen {
        method: method.clone(),
        path: path.clone(),
        body_len: len,
        range: find("range"),
        content_range: find("content-range"),
        authorization: find("authorization").is_some(),
        authorization_header: find("authorization"),
    };
    let index = {
        let mut v = seen.lock().unwrap();
        v.push(s.clone());
        v.len() - 1
    };
    let fault = plan(&s, index);
    if let Fault::DropRequest = fault {
        let mut half = vec![0u8; len / 2];
        let _ = r.read_exact(&mut half);
        let _ = out.shutdown(Shutdown::Both);
        return;
    }
    let mut body = vec![0u8; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    match fault {
        Fault::Status(code, hs) => respond(&mut out, code, &hs, b""),
        Fault::Reply(code, body) => respond(&mut out, code, &[], &body),
        Fault::Redirect(to) => respond(&mut out, 307, &[("Location", to)], b""),
        Fault::Forward | Fault::CutResponse(_) | Fault::DropRequest => {
            let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                return;
            };
            let mut head = format!("{method} {path} HTTP/1.1\r\n");
            for (k, v) in &headers {
                let k_l = k.to_ascii_lowercase();
                if k_l == "connection" || (auth.is_some() && k_l == "authorization") {
                    continue;
                }
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            if let Some(a) = auth {
                head.push_str(&format!("Authorization: {a}\r\n"));
            }
            head.push_str("Connection: close\r\n\r\n");
            if up.write_all(head.as_bytes()).is_err() || up.write_all(&body).is_err() {
                return;
            }
            let mut resp = Vec::new();
            let _ = up.read_to_end(&mut resp);
            // The answer goes back with "Connection: close", so the client never reuses
            // a connection the proxy is about to drop.
            let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&resp[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let mut new_head = format!("{}\r\n", lines.next().unwrap_or(""));
            for l in lines {
                let k = l.split(':').next().unwrap_or("").to_ascii_lowercase();
                if k != "connection" && k != "keep-alive" {
                    new_head.push_str(l);
                    new_head.push_str("\r\n");
                }
            }
            new_head.push_str("Connection: close\r\n\r\n");
            let body = &resp[end + 4..];
            let body = match fault {
                Fault::CutResponse(n) => &body[..n.min(body.len())],
                _ => body,
            };
            let _ = out.write_all(new_head.as_bytes());
            let _ = out.write_all(body);
            let _ = out.flush();
        }
    }
    let _ = out.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------------
// A token server: Basic credentials (or a refresh token) in, RS256 JWTs out.

fn b64(bytes: &[u8], url: bool) -> String {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let t = if url { URL } else { STD };
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(t[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    if !url {
        while out.len() % 4 != 0 {
            out.push('=');
        }
    }
    out
}

fn unb64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for c in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &b) in c.iter().enumerate() {
            n |= (val(b) as u32) << (18 - 6 * i);
        }
        for i in 0..c.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn unpercent(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (unpercent(k), unpercent(v)))
        .collect()
}

struct TokenServer {
    server: Server,
    cert: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

const REFRESH_TOKEN: &str = "refresh-Token-8d1e";

impl TokenServer {
    fn start() -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        self_signed(&cert, &key, "/CN=test-issuer", &[]);
        let der = Command::new("openssl")
            .args(["x509", "-in", cert.to_str().unwrap(), "-outform", "DER"])
            .output()
            .unwrap()
            .stdout;
        assert!(!der.is_empty(), "openssl x509 wrote no certificate");
        let x5c = b64(&der, false);
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let req2 = requests.clone();
        let key2 = key.clone();
        let server = Server::start(move |s| token_one(s, &key2, &x5c, &req2));
        TokenServer {
            server,
            cert,
            requests,
            _dir: dir,
        }
    }

    fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.server.port)
    }
}

fn token_one(s: TcpStream, key: &Path, x5c: &str, log: &Mutex<Vec<String>>) {
    let mut out = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let Some((method, path, headers)) = read_head(&mut r) else {
        return;
    };
    let mut body = vec![0u8; content_length(&headers).min(1 << 20)];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let req = Request {
        method,
        path,
        headers,
        body,
    };
    log.lock()
        .unwrap()
        .push(format!("{} {}", req.method, req.path));
    let params = match req.method.as_str() {
        "GET" => query_pairs(req.path.split_once('?').map_or("", |(_, q)| q)),
        _ => query_pairs(&String::from_utf8_lossy(&req.body)),
    };
    let get = |k: &str| {
        params
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.clone())
    };
    // Who is asking: Basic credentials, a refresh token, or nobody.
    let user = if req.method == "POST" {
        match (
            get("grant_type").as_deref(),
            get("refresh_token").as_deref(),
        ) {
            (Some("refresh_token"), Some(REFRESH_TOKEN)) => Some(USER.to_string()),
            _ => return respond(&mut out, 401, &[], br#"{"error":"invalid_grant"}"#),
        }
    } else {
        match req.header("authorization") {
            Some(a) => {
                let decoded =
                    String::from_utf8_lossy(&unb64(a.strip_prefix("Basic ").unwrap_or("")))
                        .into_owned();
                if decoded != format!("{USER}:{PASS}") {
                    return respond(&mut out, 401, &[], br#"{"details":"wrong credentials"}"#);
                }
                Some(USER.to_string())
            }
            None => None,
        }
    };
    // Scopes: "repository:NAME:ACTIONS", one per parameter (GET) or space-separated (POST).
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut p = s.splitn(3, ':');
            let (kind, name, actions) = (p.next()?, p.next()?, p.next()?);
            // Anonymous users get nothing; the test user gets what it asks for.
            let actions: Vec<&str> = if user.is_some() {
                actions.split(',').collect()
            } else {
                vec![]
            };
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": "test-issuer", "sub": user.clone().unwrap_or_default(), "aud": "test-registry",
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", rand_u32()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes(), true),
        b64(claims.to_string().as_bytes(), true)
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", key.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let sig = child.wait_with_output().unwrap().stdout;
    let token = format!("{signing_input}.{}", b64(&sig, true));
    let body = if req.method == "POST" {
        serde_json::json!({"access_token": token, "expires_in": 300})
    } else {
        serde_json::json!({"token": token, "expires_in": 300})
    };
    respond(
        &mut out,
        200,
        &[("Content-Type", "application/json".into())],
        body.to_string().as_bytes(),
    );
}

fn rand_u32() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

// ---------------------------------------------------------------------------------
// Helpers for the tests.

/// A store image built from the static hello world (and, with `big`, a few MiB of
/// incompressible data so chunked uploads happen); returns its digest.
fn build_image(env: &Env, tag: &str, big: bool) -> String {
    let bin = hello_static();
    let mut args = vec![
        "build".to_string(),
        "--json".into(),
        bin.display().to_string(),
        "-t".into(),
        tag.into(),
    ];
    if big {
        let p = env.path("big.bin");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let data: Vec<u8> = (0..3 * 1024 * 1024 + 12345)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(&p, data).unwrap();
        args.push("--add".into());
        args.push(format!("{}:/data/big.bin", p.display()));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    env.nobase(&a).ok().json()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `nobase` with a private mount-hint cache, fast retries and no inherited
/// credentials (Docker's config.json, the containers' auth.json files).
fn nb(env: &Env, args: &[&str]) -> Run {
    nb_env(env, args, &[])
}

/// [`nb`] with more environment (later settings win).
fn nb_env(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut c = env.cmd(args);
    c.env("XDG_CACHE_HOME", env.path("cache"))
        .env("DOCKER_CONFIG", env.path("docker"))
        .env("XDG_RUNTIME_DIR", env.path("run"))
        .env("XDG_CONFIG_HOME", env.path("config"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env("NOBASE_RETRY_BASE_MS", "20")
        .env("NOBASE_RETRY_CAP_MS", "1500");
    for (k, v) in vars {
        c.env(k, v);
    }
    run(&mut c)
}

fn skopeo_registry_digest(reference: &str, creds: Option<&str>) -> Option<String> {
    if !have("skopeo") {
        return None;
    }
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(cr) = creds {
        c.args(["--creds", cr]);
    }
    let o = c.arg(reference).output().unwrap();
    assert!(
        o.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(sha256_hex(&o.stdout))
}

/// skopeo copies the image out of the registry (checking every blob's digest) into a
/// layout and reports its manifest digest there.
fn skopeo_copy_digest(env: &Env, reference: &str, creds: Option<&str>) -> Option<String> {
    if !have("skopeo") {
        return None;
    }
    let dir = env.path(&format!("skopeo-copy-{}", rand_u32()));
    let mut c = Command::new("skopeo");
    c.args(["copy", "--src-tls-verify=false"]);
    if let Some(cr) = creds {
        c.args(["--src-creds", cr]);
    }
    let r = run(c.arg(reference).arg(format!("oci:{}:x", dir.display())));
    assert_eq!(r.code, 0, "skopeo copy: {}", r.stderr);
    skopeo_digest(&format!("oci:{}:x", dir.display()))
}

fn creds_file(env: &Env) -> String {
    let p = env.path("creds");
    std::fs::write(&p, format!("{USER}:{PASS}\n")).unwrap();
    p.display().to_string()
}

// ---------------------------------------------------------------------------------
// The tests.

#[test]
fn basic_auth_push_then_skopeo_pull_and_read_agree() {
    let Some(reg) = Registry::start(Auth::Htpasswd) else {
        return;
    };
    let env = Env::new();
    let digest = build_image(&env, "hello:1", false);
    let proxy = Proxy::start(reg.port, None, |_, _| Fault::Forward);
    let creds = creds_file(&env);
    let dest = format!("docker://{}/team/hello:1", proxy.host());
    let r = nb(&env, &["push", "hello:1", &dest, "--creds-file", &creds]).ok();
    assert!(r.stdout.contains(&digest), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("pushed 2 blobs (2 uploaded, 0 mounted, 0 existing skipped)"),
        "{}",
        r.stderr
    );
    let uploads = proxy.count("PUT", "/blobs/uploads/");
    assert_eq!(uploads, 2, "{:?}", proxy.seen());

    // skopeo sees the same manifest, straight from the registry.
    let creds_arg = format!("{USER}:{PASS}");
    if let Some(d) = skopeo_registry_digest(
        &format!("docker://{}/team/hello:1", reg.host()),
        Some(&creds_arg),
    ) {
        assert_eq!(d, digest);
    }

    // Again: nothing is uploaded, HEAD finds every blob.
    let before = proxy.seen().len();
    let r = nb(&env, &["push", "hello:1", &dest, "--creds-file", &creds]).ok();
    assert!(
        r.stderr
            .contains("(0 uploaded, 0 mounted, 2 existing skipped)"),
        "{}",
        r.stderr
    );
    let again: Vec<Seen> = proxy.seen()[before..].to_vec();
    assert!(
        !again.iter().any(|s| s.path.contains("/blobs/uploads/")),
        "second push uploaded: {again:?}"
    );

    // To another repository: the blobs are mounted, not uploaded.
    let before = proxy.seen().len();
    let other = format!("docker://{}/team/other:2", proxy.host());
    let r = nb(&env, &["push", "hello:1", &other, "--creds-file", &creds]).ok();
    assert!(
        r.stderr
            .contains("(0 uploaded, 2 mounted, 0 existing skipped)"),
        "{}",
        r.stderr
    );
    let third: Vec<Seen> = proxy.seen()[before..].to_vec();
    assert_eq!(
        third
            .iter()
            .filter(|s| s.method == "POST" && s.path.contains("mount="))
            .count(),
        2,
        "{third:?}"
    );
    assert!(
        !third
            .iter()
            .any(|s| s.method == "PUT" && s.path.contains("/blobs/uploads/")),
        "{third:?}"
    );
    assert!(!third.iter().any(|s| s.method == "PATCH"), "{third:?}");

    // Pull into a fresh store: same digest, readable by skopeo there.
    let env2 = Env::new();
    let src = format!("docker://{}/team/other:2", reg.host());
    let r = nb(
        &env2,
        &["pull", &src, "-t", "pulled:1", "--creds", &creds_arg],
    )
    .ok();
    assert!(r.stdout.contains(&digest), "{}", r.stdout);
    if let Some(d) = skopeo_digest(&format!("oci:{}:pulled:1", env2.store().display())) {
        assert_eq!(d, digest);
    }
    // The default name is HOST/REPO:TAG.
    nb(&env2, &["pull", &src, "--creds", &creds_arg]).ok();
    let images = nb(&env2, &["images", "--json"]).ok().json();
    let names: Vec<String> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}:{}",
                i["name"].as_str().unwrap(),
                i["tag"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        names.contains(&format!("{}/team/other:2", reg.host())),
        "{names:?}"
    );

    // docker:// as a source anywhere an image is read: registry → layout.
    let out = env2.path("out");
    nb(
        &env2,
        &[
            "push",
            &src,
            &format!("oci:{}:copy", out.display()),
            "--creds",
            &creds_arg,
        ],
    )
    .ok();
    if let Some(d) = skopeo_digest(&format!("oci:{}:copy", out.display())) {
        assert_eq!(d, digest);
    }
    // And as a build output.
    let built = nb(
        &env2,
        &[
            "build",
            "--json",
            hello_static().to_str().unwrap(),
            "-o",
            &format!("docker://{}/team/built:1", reg.host()),
            "--creds",
            &creds_arg,
        ],
    )
    .ok()
    .json();
    assert_eq!(built["digest"].as_str().unwrap(), digest);
    if let Some(d) = skopeo_registry_digest(
        &format!("docker://{}/team/built:1", reg.host()),
        Some(&creds_arg),
    ) {
        assert_eq!(d, digest);
    }
}

#[test]
fn credentials_come_from_docker_config_and_wrong_ones_fail_without_leaking() {
    let Some(reg) = Registry::start(Auth::Htpasswd) else {
        return;
    };
    let env = Env::new();
    build_image(&env, "hello:1", false);
    let canary = "Canary-Pw-7f3a9c1e";
    let dest = format!("docker://{}/team/hello:1", reg.host());
    let docker = env.path("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let config = docker.join("config.json");

    // Right credentials in config.json.
    let auth = b64(format!("{USER}:{PASS}").as_bytes(), false);
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    nb(&env, &["push", "hello:1", &dest]).ok();

    // Wrong ones: in config.json, with --creds, with --creds-file, each also with -v.
    let bad = b64(format!("{USER}:{canary}").as_bytes(), false);
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{}":{{"auth":"{bad}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let bad_file = env.path("bad-creds");
    std::fs::write(&bad_file, format!("{USER}:{canary}\n")).unwrap();
    let bad_creds = format!("{USER}:{canary}");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec![], config.display().to_string()),
        (vec!["--creds", &bad_creds], "--creds".into()),
        (
            vec!["--creds-file", bad_file.to_str().unwrap()],
            "--creds-file".into(),
        ),
    ];
    for (extra, origin) in &cases {
        for verbose in [false, true] {
            let mut args = vec!["push", "hello:1", &dest];
            args.extend(extra.iter().copied());
            if verbose {
                args.push("-v");
            }
            let r = nb(&env, &args).code(3);
            for out in [&r.stdout, &r.stderr] {
                assert!(!out.contains(canary), "secret printed: {out}");
                assert!(!out.contains(&bad), "encoded secret printed: {out}");
            }
            assert!(
                r.stderr.contains(&format!(
                    "push to {}/team/hello:1: unauthorized: check the credentials for {}",
                    reg.host(),
                    reg.host()
                )),
                "{}",
                r.stderr
            );
            assert!(r.stderr.contains(origin.as_str()), "{}", r.stderr);
        }
    }
    // A credential helper, named per registry (credHelpers) or for all (credsStore):
    // `docker-credential-NAME get` reads the host on stdin and prints the secret.
    let bin = env.path("helpers");
    std::fs::create_dir_all(&bin).unwrap();
    let log = env.path("helper-log");
    for (name, pass) in [("nbgood", PASS), ("nbbad", canary)] {
        let helper = bin.join(format!("docker-credential-{name}"));
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\necho \"{name} $host\" >> {}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{pass}\"}}' \"$host\"\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let host = reg.host();
    for (conf, works) in [
        (format!(r#"{{"credHelpers":{{"{host}":"nbgood"}}}}"#), true),
        (r#"{"credsStore":"nbgood"}"#.to_string(), true),
        // credHelpers wins over credsStore for its registry.
        (
            format!(r#"{{"credsStore":"nbgood","credHelpers":{{"{host}":"nbbad"}}}}"#),
            false,
        ),
    ] {
        std::fs::write(&config, &conf).unwrap();
        let r = nb_env(&env, &["push", "hello:1", &dest, "-v"], &[("PATH", &path)]);
        assert_eq!(r.code, if works { 0 } else { 3 }, "{conf}: {}", r.stderr);
        for out in [&r.stdout, &r.stderr] {
            assert!(
                !out.contains(canary) && !out.contains(PASS),
                "secret printed: {out}"
            );
        }
    }
    let asked = std::fs::read_to_string(&log).unwrap();
    assert!(asked.contains(&format!("nbgood {host}")), "{asked}");
    assert!(asked.contains(&format!("nbbad {host}")), "{asked}");
    // A helper that is not installed is named.
    std::fs::write(&config, r#"{"credsStore":"nbnosuch"}"#).unwrap();
    let r = nb(&env, &["push", "hello:1", &dest]).code(3);
    assert!(
        r.stderr.contains("docker-credential-nbnosuch") && r.stderr.contains("it is not on PATH"),
        "{}",
        r.stderr
    );
    // One that is there but cannot start (a script without `#!`) is not said to be
    // missing.
    let broken = bin.join("docker-credential-nbbroken");
    std::fs::write(&broken, format!("echo {canary}\n")).unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&config, r#"{"credsStore":"nbbroken"}"#).unwrap();
    let r = nb_env(&env, &["push", "hello:1", &dest], &[("PATH", &path)]).code(3);
    assert!(
        !r.stderr.contains("PATH") && !r.stderr.contains(canary),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "the credential helper docker-credential-nbbroken ({}) named in",
            broken.display()
        )) && r.stderr.contains("gave no credentials"),
        "{}",
        r.stderr
    );
    // No credentials at all: says how to give some.
    std::fs::remove_file(&config).unwrap();
    let r = nb(&env, &["push", "hello:1", &dest]).code(3);
    assert!(
        r.stderr.contains("needs credentials and none were found"),
        "{}",
        r.stderr
    );
}

#[test]
fn credentials_from_skopeo_login_auth_json_and_authfile() {
    let Some(reg) = Registry::start(Auth::Htpasswd) else {
        return;
    };
    if !have("skopeo") {
        return;
    }
    let env = Env::new();
    build_image(&env, "hello:1", false);
    let host = reg.host();
    let dest = format!("docker://{host}/team/hello:1");
    let run_dir = env.path("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let auth_json = run_dir.join("containers/auth.json");

    // Before any login: the message names where it looked.
    let r = nb(&env, &["push", "hello:1", &dest]).code(3);
    assert!(
        r.stderr.contains("needs credentials and none were found")
            && r.stderr.contains(&auth_json.display().to_string())
            && r.stderr.contains("skopeo login"),
        "{}",
        r.stderr
    );

    // `skopeo login` writes $XDG_RUNTIME_DIR/containers/auth.json; nobase reads it.
    let login = run(Command::new("skopeo")
        .args(["login", "--tls-verify=false", "-u", USER, "-p", PASS, &host])
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env_remove("REGISTRY_AUTH_FILE"));
    assert_eq!(login.code, 0, "skopeo login: {}", login.stderr);
    assert!(auth_json.is_file());
    nb(&env, &["push", "hello:1", &dest]).ok();

    // The same file elsewhere, named by $REGISTRY_AUTH_FILE or --authfile.
    let elsewhere = env.path("elsewhere.json");
    std::fs::rename(&auth_json, &elsewhere).unwrap();
    let named = elsewhere.to_str().unwrap();
    nb(&env, &["push", "hello:1", &dest]).code(3);
    nb_env(
        &env,
        &["push", "hello:1", &dest],
        &[("REGISTRY_AUTH_FILE", named)],
    )
    .ok();
    nb(&env, &["push", "hello:1", &dest, "--authfile", named]).ok();
    let pulled = nb(
        &env,
        &["pull", &dest, "-t", "back:1", "--authfile", named, "--json"],
    )
    .ok()
    .json();
    assert!(pulled["digest"].is_string(), "{pulled}");

    // A named file is the only one read, as in skopeo: the login in the usual place
    // does not count when $REGISTRY_AUTH_FILE names a file without this registry.
    std::fs::rename(&elsewhere, &auth_json).unwrap();
    let other = env.path("other.json");
    std::fs::write(&other, r#"{"auths":{"other.example":{"auth":"dTpw"}}}"#).unwrap();
    let r = nb_env(
        &env,
        &["push", "hello:1", &dest],
        &[("REGISTRY_AUTH_FILE", other.to_str().unwrap())],
    )
    .code(3);
    assert!(
        r.stderr
            .contains(&format!("{} has no entry for {host}", other.display())),
        "{}",
        r.stderr
    );
    // --authfile wins over $REGISTRY_AUTH_FILE; a missing one is a usage error.
    nb_env(
        &env,
        &[
            "push",
            "hello:1",
            &dest,
            "--authfile",
            auth_json.to_str().unwrap(),
        ],
        &[("REGISTRY_AUTH_FILE", other.to_str().unwrap())],
    )
    .ok();
    let r = nb(
        &env,
        &[
            "push",
            "hello:1",
            &dest,
            "--authfile",
            "/nonexistent/auth.json",
        ],
    )
    .code(2);
    assert!(
        r.stderr
            .contains("--authfile /nonexistent/auth.json: no such file"),
        "{}",
        r.stderr
    );

    // auth.json's entries for a namespace or repository (`skopeo login HOST/team`): the
    // most specific covering the repository wins, over the registry's own, as in
    // skopeo; skopeo reads the same file the same way.
    let auth = b64(format!("{USER}:{PASS}").as_bytes(), false);
    let wrong = b64(format!("{USER}:not-{PASS}").as_bytes(), false);
    let entries = |good: &str, bad: &str| {
        std::fs::write(
            &auth_json,
            format!(r#"{{"auths":{{"{good}":{{"auth":"{auth}"}},"{bad}":{{"auth":"{wrong}"}}}}}}"#),
        )
        .unwrap();
    };
    let skopeo_inspect = || {
        run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--authfile",
            auth_json.to_str().unwrap(),
            &dest,
        ]))
    };
    entries(&format!("{host}/team"), &host);
    nb(&env, &["push", "hello:1", &dest]).ok();
    assert_eq!(skopeo_inspect().code, 0);
    entries(&format!("{host}/team/hello"), &format!("{host}/team"));
    nb(&env, &["push", "hello:1", &dest]).ok();
    // The wrong one is the most specific: refused, and the entry named.
    entries(&host, &format!("{host}/team"));
    let r = nb(&env, &["push", "hello:1", &dest]).code(3);
    assert!(
        r.stderr.contains(&format!(
            "check the credentials for {host} in {} (the entry {host}/team)",
            auth_json.display()
        )),
        "{}",
        r.stderr
    );
    assert_ne!(skopeo_inspect().code, 0);
    // An entry for another repository or a name that only starts the same does not
    // cover it, and the refusal says so.
    std::fs::write(
        &auth_json,
        format!(
            r#"{{"auths":{{"{host}/other":{{"auth":"{auth}"}},"{host}/tea":{{"auth":"{auth}"}}}}}}"#
        ),
    )
    .unwrap();
    let r = nb(&env, &["push", "hello:1", &dest]).code(3);
    assert!(
        r.stderr.contains(&format!(
            "the entries for other repositories ({host}/other, {host}/tea) do not cover {host}/team/hello"
        )),
        "{}",
        r.stderr
    );

    // Wrong credentials there: named, never printed.
    let canary = "Canary-Pw-2b8e41d0";
    let bad = b64(format!("{USER}:{canary}").as_bytes(), false);
    std::fs::write(
        &auth_json,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{bad}"}}}}}}"#),
    )
    .unwrap();
    let r = nb(&env, &["push", "hello:1", &dest, "-v"]).code(3);
    assert!(
        r.stderr.contains(&format!(
            "check the credentials for {host} in {}",
            auth_json.display()
        )),
        "{}",
        r.stderr
    );
    for out in [&r.stdout, &r.stderr] {
        assert!(!out.contains(canary) && !out.contains(&bad), "{out}");
    }

    // A usual place that cannot be read (here `containers` is a file) is passed over:
    // Docker's config.json, which worked before auth.json was read, still does.
    std::fs::remove_dir_all(run_dir.join("containers")).unwrap();
    std::fs::write(run_dir.join("containers"), "not a directory").unwrap();
    let docker = env.path("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    nb(&env, &["push", "hello:1", &dest]).ok();
    // Named with --authfile, it is an error.
    let r = nb(
        &env,
        &[
            "push",
            "hello:1",
            &dest,
            "--authfile",
            &format!("{}/containers/auth.json", run_dir.display()),
        ],
    );
    assert_ne!(r.code, 0, "{}", r.stderr);
}

#[test]
fn an_unreachable_registry_is_tried_once_per_command_not_once_per_layer() {
    // Nothing listens: the first request's retries say so, and the other layers fail
    // with the same answer at once. Each layer waited out its own retry sequence (a push
    // of four layers to a registry that was down took a minute).
    let env = Env::new();
    let bin = hello_static();
    env.nobase(&[
        "build",
        bin.to_str().unwrap(),
        "-t",
        "layers:1",
        "--with",
        "all",
    ])
    .ok();
    let closed = closed_port();
    let dest = format!("docker://127.0.0.1:{}/team/layers:1", closed.port);
    let r = nb(&env, &["push", "layers:1", &dest]).code(3);
    assert!(
        r.stderr.contains("cannot reach the registry"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.matches("(attempt 2 of ").count(),
        1,
        "one retry sequence: {}",
        r.stderr
    );
}

#[test]
fn bearer_tokens_push_pull_mount_and_identity_tokens() {
    if !have("openssl") {
        return;
    }
    let tokens = TokenServer::start();
    let Some(reg) = Registry::start(Auth::Token {
        realm: tokens.realm(),
        cert: tokens.cert.clone(),
    }) else {
        return;
    };
    let env = Env::new();
    let digest = build_image(&env, "hello:1", false);
    let creds = format!("{USER}:{PASS}");
    let dest = format!("docker://{}/team/hello:1", reg.host());
    let r = nb(&env, &["push", "hello:1", &dest, "--creds", &creds]).ok();
    assert!(r.stderr.contains("2 uploaded"), "{}", r.stderr);
    assert!(!tokens.requests.lock().unwrap().is_empty());
    // The token asked for push and pull on the repository.
    assert!(
        tokens
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("scope=repository%3Ateam%2Fhello%3Apull%2Cpush")),
        "{:?}",
        tokens.requests.lock().unwrap()
    );
    if let Some(d) = skopeo_registry_digest(&dest, Some(&creds)) {
        assert_eq!(d, digest);
    }
    // A mount needs pull access to the source repository in the same token.
    let other = format!("docker://{}/other/copy:1", reg.host());
    let r = nb(&env, &["push", "hello:1", &other, "--creds", &creds]).ok();
    assert!(r.stderr.contains("2 mounted"), "{}", r.stderr);

    // A token the registry stops accepting in the middle of a push (a proxy answers the
    // first authorized blob request with 401 and a fresh challenge) is fetched again.
    let realm = tokens.realm();
    let refused = Arc::new(AtomicBool::new(false));
    let once = refused.clone();
    let proxy = Proxy::start(reg.port, None, move |s, _| {
        if s.authorization && s.path.contains("/blobs/") && !once.swap(true, Ordering::SeqCst) {
            let challenge = format!(
                r#"Bearer realm="{realm}",service="test-registry",scope="repository:team/again:pull,push""#
            );
            Fault::Status(401, vec![("WWW-Authenticate", challenge)])
        } else {
            Fault::Forward
        }
    });
    let asked = tokens.requests.lock().unwrap().len();
    let again = format!("docker://{}/team/again:1", proxy.host());
    nb(&env, &["push", "hello:1", &again, "--creds", &creds]).ok();
    assert!(refused.load(Ordering::SeqCst));
    let now = tokens.requests.lock().unwrap().len();
    assert!(
        now >= asked + 2,
        "one token, then a fresh one: {asked} -> {now}"
    );
    if let Some(d) = skopeo_registry_digest(
        &format!("docker://{}/team/again:1", reg.host()),
        Some(&creds),
    ) {
        assert_eq!(d, digest);
    }

    // Pull with an identity token from config.json (the OAuth2 refresh grant).
    let env2 = Env::new();
    let docker = env2.path("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}","identitytoken":"{REFRESH_TOKEN}"}}}}}}"#,
            reg.host(),
            b64(b"<token>:", false)
        ),
    )
    .unwrap();
    let r = nb(&env2, &["pull", &other, "-t", "p:1", "-v"]).ok();
    assert!(r.stdout.contains(&digest));
    assert!(!r.stderr.contains(REFRESH_TOKEN), "{}", r.stderr);
    assert!(tokens
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.starts_with("POST")));

    // A wrong password is refused by the token server, clearly, without the secret.
    let canary = "Canary-Token-Pw-42x";
    let r = nb(
        &env,
        &[
            "push",
            "hello:1",
            &dest,
            "--creds",
            &format!("{USER}:{canary}"),
            "-v",
        ],
    )
    .code(3);
    assert!(r.stderr.contains("unauthorized"), "{}", r.stderr);
    assert!(
        !r.stderr.contains(canary) && !r.stdout.contains(canary),
        "{}",
        r.stderr
    );
    // Anonymous: the token carries no access, so the registry refuses.
    let r = nb(
        &env,
        &[
            "push",
            "hello:1",
            &format!("docker://{}/team/anon:1", reg.host()),
        ],
    )
    .code(3);
    assert!(
        r.stderr.contains("needs credentials and none were found"),
        "{}",
        r.stderr
    );
}

#[test]
fn pushes_and_pulls_survive_dropped_connections_500s_and_429s() {
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let env = Env::new();
    let digest = build_image(&env, "big:1", true);
    // The plan: each kind of fault once, early, on the requests that matter.
    let fired: Arc<Mutex<BTreeMap<&'static str, usize>>> = Arc::default();
    let f2 = fired.clone();
    let cut_paths: Arc<Mutex<std::collections::BTreeSet<String>>> = Arc::default();
    let proxy = Proxy::start(reg.port, None, move |s, _| {
        let mut fired = f2.lock().unwrap();
        let mut cut = cut_paths.lock().unwrap();
        let mut once = |name: &'static str, fault: Fault| {
            let n = fired.entry(name).or_insert(0);
            *n += 1;
            if *n == 1 {
                fault
            } else {
                Fault::Forward
            }
        };
        match s.method.as_str() {
            "HEAD" => once("head-503", Fault::Status(503, vec![])),
            "POST" => once("post-500", Fault::Status(500, vec![])),
            // The second PATCH dies halfway through its body.
            "PATCH"
                if s.content_range
                    .as_deref()
                    .is_some_and(|r| !r.starts_with("0-")) =>
            {
                once("patch-drop", Fault::DropRequest)
            }
            "PATCH" => once(
                "patch-429",
                Fault::Status(429, vec![("Retry-After", "1".into())]),
            ),
            "PUT" if s.path.contains("/manifests/") => {
                once("manifest-502", Fault::Status(502, vec![]))
            }
            // Each blob's first download breaks off after 100 kB (small ones arrive
            // whole).
            "GET" if s.path.contains("/blobs/sha256:") && s.range.is_none() => {
                if cut.insert(s.path.clone()) {
                    Fault::CutResponse(100_000)
                } else {
                    Fault::Forward
                }
            }
            _ => Fault::Forward,
        }
    });
    let dest = format!("docker://{}/faults/big:1", proxy.host());
    let r = nb_env(
        &env,
        &["push", "big:1", &dest],
        &[("NOBASE_CHUNK_SIZE", "1048576")],
    )
    .ok();
    assert!(r.stderr.contains("retrying"), "{}", r.stderr);
    {
        let fired = fired.lock().unwrap();
        for f in [
            "head-503",
            "post-500",
            "patch-drop",
            "patch-429",
            "manifest-502",
        ] {
            assert!(
                fired.get(f).copied().unwrap_or(0) >= 1,
                "fault {f} never fired: {fired:?}"
            );
        }
    }
    // The dropped PATCH was resumed from the registry's offset, not restarted: the
    // upload status was asked for, and the big blob went up less than twice.
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.path.contains("/blobs/uploads/")),
        "{seen:?}"
    );
    let patched: usize = seen
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.body_len)
        .sum();
    assert!(patched < 2 * 3 * 1024 * 1024, "{patched} bytes patched");
    // skopeo reads a correct image, every blob checked, straight from the registry.
    let direct = format!("docker://{}/faults/big:1", reg.host());
    if let Some(d) = skopeo_copy_digest(&env, &direct, None) {
        assert_eq!(d, digest);
    }
    // A pull whose blob download breaks off resumes with a Range request.
    let env2 = Env::new();
    let r = nb(&env2, &["pull", &dest, "-t", "big:1"]).ok();
    assert!(r.stdout.contains(&digest), "{}", r.stdout);
    assert!(
        proxy.seen().iter().any(|s| s.range.is_some()),
        "no Range request: {:?}",
        proxy.seen()
    );
    if let Some(d) = skopeo_digest(&format!("oci:{}:big:1", env2.store().display())) {
        assert_eq!(d, digest);
    }
}

#[test]
fn layers_go_up_first_small_blobs_in_one_put_large_ones_in_chunks_manifest_last() {
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let env = Env::new();
    // Four layers (tmp, passwd, certs, the program) and a config.
    let bin = hello_static();
    let j = build_json(
        &env,
        &[
            bin.to_str().unwrap(),
            "-t",
            "four:1",
            "--with",
            "tmp,passwd,certs",
        ],
    );
    let layers: Vec<String> = j["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers.len(), 4, "{j}");
    let proxy = Proxy::start(reg.port, None, |_, _| Fault::Forward);
    let dest = format!("docker://{}/order/four:1", proxy.host());
    // Chunks of 64 KiB: the program's layer (over 300 KiB) goes up in PATCHes, the
    // small ones in one PUT each.
    nb_env(
        &env,
        &["push", "four:1", &dest],
        &[("NOBASE_CHUNK_SIZE", "65536")],
    )
    .ok();
    let seen = proxy.seen();
    let finals: Vec<(usize, String)> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.method == "PUT" && s.path.contains("/blobs/uploads/"))
        .map(|(i, s)| {
            let d = s.path.split("digest=").nth(1).unwrap_or("");
            (i, d.replace("%3A", ":").replace("%3a", ":"))
        })
        .collect();
    assert_eq!(finals.len(), 5, "four layers and the config: {seen:#?}");
    let config_at = finals
        .iter()
        .find(|(_, d)| !layers.contains(d))
        .map(|(i, _)| *i)
        .expect("the config's upload");
    for (i, d) in &finals {
        if layers.contains(d) {
            assert!(*i < config_at, "layer {d} after the config");
        }
    }
    let manifest_at = seen
        .iter()
        .rposition(|s| s.method == "PUT" && s.path.contains("/manifests/"))
        .unwrap();
    assert!(manifest_at > config_at);
    assert_eq!(
        manifest_at,
        seen.len() - 1,
        "the manifest is the last request"
    );
    // Blobs over the chunk size went up in PATCHes of it, with an empty final PUT; the
    // others (the config too) whole in their PUT.
    let sizes: BTreeMap<String, u64> = j["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(sizes.values().any(|&n| n > 65536) && sizes.values().any(|&n| n <= 65536));
    let want_patches: u64 = sizes
        .values()
        .filter(|&&n| n > 65536)
        .map(|n| n.div_ceil(65536))
        .sum();
    let patches = proxy.count("PATCH", "/blobs/uploads/");
    assert_eq!(patches as u64, want_patches, "{seen:#?}");
    for (i, d) in &finals {
        let chunked = sizes.get(d).is_some_and(|&n| n > 65536);
        assert_eq!(seen[*i].body_len == 0, chunked, "{d}");
    }
    // What arrived is a correct image: skopeo copies it out, checking every blob.
    if let Some(d) = skopeo_copy_digest(&env, &dest, None) {
        assert_eq!(d, j["digest"].as_str().unwrap());
    }
}

#[test]
fn endless_faults_fail_cleanly_after_bounded_retries() {
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let env = Env::new();
    build_image(&env, "hello:1", false);
    let proxy = Proxy::start(reg.port, None, |s, _| {
        if s.path == "/v2/" {
            Fault::Forward
        } else if s.method == "HEAD" {
            Fault::Status(503, vec![("Retry-After", "3600".into())])
        } else {
            Fault::DropRequest
        }
    });
    let dest = format!("docker://{}/endless/hello:1", proxy.host());
    let start = Instant::now();
    let fast = [
        ("NOBASE_RETRIES", "3"),
        ("NOBASE_RETRY_BASE_MS", "10"),
        ("NOBASE_RETRY_CAP_MS", "200"),
    ];
    let r = nb_env(&env, &["push", "hello:1", &dest], &fast).code(3);
    assert!(
        r.stderr.contains("still failing after 3 attempts"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("HTTP 503"), "{}", r.stderr);
    // Retry-After: 3600 was capped; the whole thing took seconds, not an hour.
    assert!(start.elapsed() < Duration::from_secs(60));
    let heads = proxy.count("HEAD", "/blobs/");
    assert!((3..=6).contains(&heads), "{heads} HEADs");
    // A registry that takes each session's first chunk and then loses the session
    // (replicas without shared upload storage): the landed chunk reset the count, so
    // the upload started sessions forever. Now the sessions are bounded too.
    build_image(&env, "big:1", true);
    let lossy = Proxy::start(reg.port, None, |s, _| {
        if s.method == "PATCH"
            && s.content_range
                .as_deref()
                .is_some_and(|r| !r.starts_with("0-"))
        {
            Fault::Status(404, vec![])
        } else {
            Fault::Forward
        }
    });
    let dest = format!("docker://{}/lossy/big:1", lossy.host());
    let mut env_vars = fast.to_vec();
    env_vars.push(("NOBASE_CHUNK_SIZE", "1048576"));
    let r = nb_env(&env, &["push", "big:1", &dest], &env_vars).code(3);
    assert!(
        r.stderr
            .contains("the upload session was lost, still failing after 3 attempts"),
        "{}",
        r.stderr
    );
    let posts = lossy.count("POST", "/blobs/uploads/");
    assert!(posts <= 4 * 3, "{posts} sessions started");
    // Dropped connections on a pull give up too.
    let dropper = Proxy::start(reg.port, None, |s, _| {
        if s.path == "/v2/" {
            Fault::Forward
        } else {
            Fault::Status(500, vec![])
        }
    });
    let src = format!("docker://{}/endless/hello:1", dropper.host());
    let r = nb_env(&env, &["pull", &src, "-t", "x:1"], &fast).code(3);
    assert!(
        r.stderr.contains("still failing after 3 attempts"),
        "{}",
        r.stderr
    );
    // Answers that cannot change by asking again are not retried: 401, 403, 404, and
    // 501 and 505 (a server that does not implement it: a static file server).
    for status in [401u16, 403, 404, 501, 505] {
        let refuser = Proxy::start(reg.port, None, move |s, _| {
            if s.path == "/v2/" {
                Fault::Forward
            } else {
                Fault::Status(status, vec![])
            }
        });
        let src = format!("docker://{}/endless/hello:1", refuser.host());
        let r = nb_env(&env, &["pull", &src, "-t", "x:1"], &fast).code(3);
        assert!(!r.stderr.contains("attempts"), "{status}: {}", r.stderr);
        let gets = refuser.count("GET", "/manifests/") + refuser.count("HEAD", "/manifests/");
        assert_eq!(gets, 1, "{status}: asked {gets} times");
    }
}

/// A registry front on `upstream` that redirects every blob download to `storage` (a
/// host:port), as registries backed by object storage do.
fn blobs_redirected_to(upstream: u16, storage: String) -> Proxy {
    Proxy::start(upstream, None, move |s, _| {
        if s.method == "GET" && s.path.contains("/blobs/sha256:") {
            Fault::Redirect(format!("http://{storage}{}", s.path))
        } else {
            Fault::Forward
        }
    })
}

#[test]
fn blob_redirects_to_another_host_carry_no_credentials() {
    let Some(reg) = Registry::start(Auth::Htpasswd) else {
        return;
    };
    let env = Env::new();
    let digest = build_image(&env, "hello:1", false);
    let creds = format!("{USER}:{PASS}");
    nb(
        &env,
        &[
            "push",
            "hello:1",
            &format!("docker://{}/team/hello:1", reg.host()),
            "--creds",
            &creds,
        ],
    )
    .ok();
    // "Storage": another origin that serves blobs (it authenticates upstream itself).
    let storage = Proxy::start(
        reg.port,
        Some(format!("Basic {}", b64(creds.as_bytes(), false))),
        |_, _| Fault::Forward,
    );
    let front = blobs_redirected_to(reg.port, storage.host());
    let env2 = Env::new();
    let r = nb(
        &env2,
        &[
            "pull",
            &format!("docker://{}/team/hello:1", front.host()),
            "-t",
            "r:1",
            "--creds",
            &creds,
        ],
    )
    .ok();
    assert!(r.stdout.contains(&digest));
    let at_storage = storage.seen();
    assert!(!at_storage.is_empty(), "the redirect was not followed");
    assert!(
        at_storage.iter().all(|s| !s.authorization),
        "credentials went to storage: {at_storage:?}"
    );
    assert!(
        front.seen().iter().any(|s| s.authorization),
        "the registry itself got none"
    );
    // Storage that refuses the signed link with an S3-style XML body: only its Code and
    // Message are shown (the body echoes the request: a key id), and the credentials
    // given to the registry are not blamed.
    let refusing = Proxy::start(reg.port, None, |_, _| {
        Fault::Reply(
            403,
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match.</Message><AWSAccessKeyId>AKIASECRETKEYID1234</AWSAccessKeyId></Error>".to_vec(),
        )
    });
    let front2 = blobs_redirected_to(reg.port, refusing.host());
    let r = nb(
        &Env::new(),
        &[
            "pull",
            &format!("docker://{}/team/hello:1", front2.host()),
            "-t",
            "r:2",
            "--creds",
            &creds,
        ],
    )
    .code(3);
    assert!(
        r.stderr.contains("denied: SignatureDoesNotMatch: The request signature we calculated does not match. by the storage"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("AKIA") && !r.stderr.contains("credentials for"),
        "{}",
        r.stderr
    );
}

/// Writes `bytes` as a blob of the layout `dir`; returns its digest.
fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let d = sha256_hex(bytes);
    let p = dir
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    d
}

/// A layout `multi` (ref `multi`) holding a two-platform index made by hand from the
/// static hello world (built into `env`'s store as hello:1): the same layer, an arm64
/// config beside the amd64 one; with `attestation`, a BuildKit-style attestation
/// manifest too.
struct Multi {
    dir: PathBuf,
    amd_digest: String,
    amd_config: String,
    arm_digest: String,
    arm_config: String,
    idx_digest: String,
}

fn two_platforms(env: &Env, attestation: bool) -> Multi {
    build_image(env, "hello:1", false);
    // A two-platform index made by hand from the built image: the same layer, an
    // arm64 config beside the amd64 one (nobase only moves bytes here).
    let store = env.store();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    let top = &index["manifests"][0];
    let blob = |d: &str| {
        std::fs::read(
            store
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let amd_manifest_bytes = blob(top["digest"].as_str().unwrap());
    let amd_manifest: serde_json::Value = serde_json::from_slice(&amd_manifest_bytes).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&blob(amd_manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let dir = env.path("multi");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let layer = amd_manifest["layers"][0]["digest"].as_str().unwrap();
    put_blob(&dir, &blob(layer));
    put_blob(
        &dir,
        &blob(amd_manifest["config"]["digest"].as_str().unwrap()),
    );
    let amd_digest = put_blob(&dir, &amd_manifest_bytes);
    config["architecture"] = "arm64".into();
    let arm_config = serde_json::to_vec(&config).unwrap();
    let arm_config_digest = put_blob(&dir, &arm_config);
    let mut arm_manifest = amd_manifest.clone();
    arm_manifest["config"]["digest"] = arm_config_digest.clone().into();
    arm_manifest["config"]["size"] = arm_config.len().into();
    let arm_manifest_bytes = serde_json::to_vec(&arm_manifest).unwrap();
    let arm_digest = put_blob(&dir, &arm_manifest_bytes);
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let mut manifests = vec![
        serde_json::json!({"mediaType": mt, "digest": amd_digest, "size": amd_manifest_bytes.len(), "platform": {"architecture": "amd64", "os": "linux"}}),
        serde_json::json!({"mediaType": mt, "digest": arm_digest, "size": arm_manifest_bytes.len(), "platform": {"architecture": "arm64", "os": "linux"}}),
    ];
    if attestation {
        // As BuildKit writes provenance: an image manifest of platform unknown/unknown,
        // annotated as an attestation of the amd64 image.
        let cfg = serde_json::to_vec(&serde_json::json!({
            "architecture": "unknown", "os": "unknown",
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap();
        let cfg_digest = put_blob(&dir, &cfg);
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": mt,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg.len()},
            "layers": []
        }))
        .unwrap();
        let m_digest = put_blob(&dir, &m);
        manifests.push(serde_json::json!({
            "mediaType": mt, "digest": m_digest, "size": m.len(),
            "platform": {"architecture": "unknown", "os": "unknown"},
            "annotations": {
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": amd_digest,
            }
        }));
    }
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let idx_bytes = serde_json::to_vec(&idx).unwrap();
    let idx_digest = put_blob(&dir, &idx_bytes);
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": idx_digest, "size": idx_bytes.len(),
             "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))
        .unwrap(),
    )
    .unwrap();

    Multi {
        dir,
        amd_digest,
        amd_config: amd_manifest["config"]["digest"]
            .as_str()
            .unwrap()
            .to_string(),
        arm_digest,
        arm_config: arm_config_digest,
        idx_digest,
    }
}

#[test]
fn multi_platform_indexes_push_and_pull_by_platform() {
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let env = Env::new();
    let Multi {
        dir,
        amd_digest,
        arm_digest,
        idx_digest,
        ..
    } = two_platforms(&env, false);
    let dest = format!("docker://{}/team/multi:1", reg.host());
    let r = nb(
        &env,
        &["push", &format!("oci:{}:multi", dir.display()), &dest],
    )
    .ok();
    // Three blobs: the shared layer and two configs.
    assert!(
        r.stderr.contains("pushed 3 blobs (3 uploaded"),
        "{}",
        r.stderr
    );
    if let Some(d) = skopeo_registry_digest(&dest, None) {
        assert_eq!(d, idx_digest);
    }
    if have("skopeo") {
        let o = run(Command::new("skopeo").args([
            "--override-arch",
            "arm64",
            "inspect",
            "--tls-verify=false",
            &dest,
        ]));
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(
            o.stdout.contains("\"Architecture\": \"arm64\""),
            "{}",
            o.stdout
        );
    }
    // Pull: this machine's platform by default, one by --platform, or all of it.
    let env2 = Env::new();
    let host_arch = nb(&env2, &["pull", &dest, "-t", "m:host"]).ok();
    let want = if std::env::consts::ARCH == "aarch64" {
        &arm_digest
    } else {
        &amd_digest
    };
    assert!(
        host_arch.stdout.contains(want.as_str()),
        "{}",
        host_arch.stdout
    );
    let arm = nb(
        &env2,
        &["pull", &dest, "-t", "m:arm", "--platform", "linux/arm64"],
    )
    .ok();
    assert!(arm.stdout.contains(&arm_digest), "{}", arm.stdout);
    let all = nb(&env2, &["pull", &dest, "-t", "m:all", "--all-platforms"]).ok();
    assert!(all.stdout.contains(&idx_digest), "{}", all.stdout);
    if let Some(d) = skopeo_digest(&format!("oci:{}:m:all", env2.store().display())) {
        assert_eq!(d, idx_digest);
    }
    let none = nb(
        &env2,
        &["pull", &dest, "-t", "m:s390x", "--platform", "linux/s390x"],
    )
    .code(3);
    assert!(
        none.stderr.contains("no linux/s390x variant"),
        "{}",
        none.stderr
    );
    // Pushing the index again re-sends nothing: blobs and child manifests exist.
    let r = nb(
        &env,
        &["push", &format!("oci:{}:multi", dir.display()), &dest, "-v"],
    )
    .ok();
    assert!(
        r.stderr
            .contains("(0 uploaded, 0 mounted, 3 existing skipped)"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.matches("PUT http").count(),
        1,
        "only the index by tag: {}",
        r.stderr
    );
}

fn blob_size(dir: &Path, digest: &str) -> u64 {
    std::fs::metadata(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
    .len()
}

#[test]
fn pulling_one_platform_fetches_only_its_manifest_and_config_and_counts_them() {
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let env = Env::new();
    let m = two_platforms(&env, true);
    let dest = format!("docker://{}/team/multi:1", reg.host());
    nb(
        &env,
        &["push", &format!("oci:{}:multi", m.dir.display()), &dest],
    )
    .ok();
    let proxy = Proxy::start(reg.port, None, |_, _| Fault::Forward);
    let src = format!("docker://{}/team/multi:1", proxy.host());
    let env2 = Env::new();
    let j = nb(
        &env2,
        &[
            "pull",
            &src,
            "-t",
            "m:arm",
            "--platform",
            "linux/arm64",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(j["digest"], m.arm_digest.as_str(), "{j}");
    // The index, then the arm64 manifest, its config and the layer: nothing of the
    // amd64 image, nothing of the attestation.
    let seen = proxy.seen();
    for s in &seen {
        assert!(
            !s.path.contains(&m.amd_digest) && !s.path.contains(&m.amd_config),
            "fetched the other platform's document: {seen:#?}"
        );
    }
    assert_eq!(
        proxy.count("GET", "/manifests/"),
        2,
        "the index and one manifest: {seen:#?}"
    );
    let layer = &serde_json::from_slice::<serde_json::Value>(
        &std::fs::read(
            m.dir
                .join("blobs/sha256")
                .join(m.arm_digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap()["layers"][0]["digest"];
    let documents = blob_size(&m.dir, &m.idx_digest)
        + blob_size(&m.dir, &m.arm_digest)
        + blob_size(&m.dir, &m.arm_config);
    let layer_size = blob_size(&m.dir, layer.as_str().unwrap());
    assert_eq!(j["blobs"]["downloaded"], 3, "{j}");
    assert_eq!(j["blobs"]["present"], 0, "{j}");
    assert_eq!(j["bytes_downloaded"], documents + layer_size, "{j}");
    // Again into the same store: every blob is there; what was received is the
    // documents read to choose the image, and the summary says so.
    let again = nb(
        &env2,
        &[
            "pull",
            &src,
            "-t",
            "m:arm2",
            "--platform",
            "linux/arm64",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(again["blobs"]["downloaded"], 0, "{again}");
    assert_eq!(again["blobs"]["present"], 3, "{again}");
    assert_eq!(again["bytes_downloaded"], documents, "{again}");
    let r = nb(
        &env2,
        &["pull", &src, "-t", "m:arm3", "--platform", "linux/arm64"],
    )
    .ok();
    assert!(
        r.stderr
            .contains("pulled 3 blobs (0 downloaded, 3 already present), ")
            && r.stderr
                .contains(" received (manifests and config included), manifest "),
        "{}",
        r.stderr
    );
    // A platform the image lacks is a fact about the image (exit 3), not a usage
    // error; the attestation is no platform it has.
    let none = nb(
        &env2,
        &["pull", &src, "-t", "m:s390x", "--platform", "linux/s390x"],
    )
    .code(3);
    assert!(
        none.stderr
            .contains("no linux/s390x variant (it has linux/amd64, linux/arm64)"),
        "{}",
        none.stderr
    );
}

#[test]
fn images_and_check_leave_attestation_manifests_out_of_the_platforms() {
    let env = Env::new();
    let m = two_platforms(&env, true);
    env.nobase(&["push", &format!("oci:{}:multi", m.dir.display()), "att:1"])
        .ok();
    let j = env.nobase(&["images", "--json"]).ok().json();
    let att = j
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "att")
        .expect("att:1 listed");
    assert_eq!(att["platform"], "linux/amd64,linux/arm64", "{j}");
    let table = env.nobase(&["images"]).ok();
    assert!(!table.stdout.contains("unknown"), "{}", table.stdout);
    // check --all-platforms already left it out; it still does.
    let c = env
        .nobase(&["check", "--all-platforms", "--json", "att:1"])
        .json();
    let platforms: Vec<&str> = c["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{c}");
}

/// Adds to `m`'s index two OCI 1.1 artifact manifests, as `oras attach` and cosign
/// write them: an SBOM (empty config, a JSON "layer", `artifactType`) listed with no
/// platform and no annotation, so only its manifest says what it is, and a signature
/// whose entry says its `artifactType`. Returns the SBOM manifest's digest.
fn add_artifacts(m: &mut Multi) -> String {
    let empty = put_blob(&m.dir, b"{}");
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let artifact = |kind: &str, data: &[u8]| {
        let layer = put_blob(&m.dir, data);
        let bytes = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": mt, "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": kind, "digest": layer, "size": data.len()}],
            "subject": {"mediaType": mt, "digest": m.amd_digest, "size": 1},
        }))
        .unwrap();
        (put_blob(&m.dir, &bytes), bytes.len())
    };
    let (sbom, sbom_size) = artifact("application/spdx+json", br#"{"spdxVersion":"SPDX-2.3"}"#);
    let (sig, sig_size) = artifact("application/vnd.dev.cosign.artifact.sig.v1+json", b"sig");
    let read = |d: &str| {
        std::fs::read(
            m.dir
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let mut idx: serde_json::Value = serde_json::from_slice(&read(&m.idx_digest)).unwrap();
    let entries = idx["manifests"].as_array_mut().unwrap();
    entries.push(serde_json::json!({"mediaType": mt, "digest": sbom, "size": sbom_size}));
    entries.push(
        serde_json::json!({"mediaType": mt, "digest": sig, "size": sig_size,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}),
    );
    let idx_bytes = serde_json::to_vec(&idx).unwrap();
    m.idx_digest = put_blob(&m.dir, &idx_bytes);
    std::fs::write(
        m.dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": m.idx_digest, "size": idx_bytes.len(),
             "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))
        .unwrap(),
    )
    .unwrap();
    sbom
}

#[test]
fn artifact_manifests_in_an_index_are_no_platform_and_travel_byte_for_byte() {
    let env = Env::new();
    let mut m = two_platforms(&env, false);
    let sbom = add_artifacts(&mut m);
    let src = format!("oci:{}:multi", m.dir.display());
    // Before, every command failed: the SBOM's empty config lists no layers, and its
    // manifest one.
    let t = env
        .nobase(&["tree", "--json", "--platform", "linux/amd64", &src])
        .ok();
    assert!(t.stdout.contains("/app/hello"), "{}", t.stdout);
    let c = env
        .nobase(&["check", "--all-platforms", "--json", &src])
        .json();
    let platforms: Vec<&str> = c["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{c}");
    // The whole index into the store: its digest kept, the artifacts listed as such.
    let j = env
        .nobase(&["pull", "--all-platforms", "--json", &src, "-t", "art:1"])
        .ok()
        .json();
    assert_eq!(j["digest"], m.idx_digest.as_str(), "{j}");
    let images = env.nobase(&["images", "--json"]).ok().json();
    assert_eq!(images[0]["platform"], "linux/amd64,linux/arm64", "{images}");
    assert_eq!(
        images[0]["artifacts"],
        serde_json::json!([
            "application/spdx+json",
            "application/vnd.dev.cosign.artifact.sig.v1+json"
        ]),
        "{images}"
    );
    env.nobase(&["fsck"]).ok();
    // Through a registry and back: the index and the artifact keep their digests.
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let dest = format!("docker://{}/team/art:1", reg.host());
    nb(&env, &["push", "art:1", &dest]).ok();
    if let Some(d) = skopeo_registry_digest(&dest, None) {
        assert_eq!(d, m.idx_digest);
        let at = format!("docker://{}/team/art@{sbom}", reg.host());
        assert_eq!(skopeo_registry_digest(&at, None).unwrap(), sbom);
    }
    let env2 = Env::new();
    let back = nb(
        &env2,
        &["pull", "--all-platforms", "--json", &dest, "-t", "art:2"],
    )
    .ok()
    .json();
    assert_eq!(back["digest"], m.idx_digest.as_str(), "{back}");
    // One platform from the registry: the artifacts are never chosen.
    let one = nb(
        &env2,
        &[
            "pull",
            "--json",
            &dest,
            "-t",
            "art:amd",
            "--platform",
            "linux/amd64",
        ],
    )
    .ok()
    .json();
    assert_eq!(one["digest"], m.amd_digest.as_str(), "{one}");
    nb(&env2, &["fsck"]).ok();
}

#[test]
fn a_registry_that_cuts_every_download_short_is_given_up_on() {
    // Each connection brought a kilobyte, and each kilobyte started the count of
    // failures again: a pull reconnected hundreds of times, as long as the registry
    // liked. Only a MiB (or the end) of progress counts now.
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let env = Env::new();
    build_image(&env, "hello:1", false);
    let dest = format!("docker://{}/drip/hello:1", reg.host());
    nb(&env, &["push", "hello:1", &dest]).ok();
    let proxy = Proxy::start(reg.port, None, |s, _| {
        if s.method == "GET" && s.path.contains("/blobs/sha256:") {
            Fault::CutResponse(1000)
        } else {
            Fault::Forward
        }
    });
    let src = format!("docker://{}/drip/hello:1", proxy.host());
    let r = nb_env(
        &Env::new(),
        &["pull", &src, "-t", "x:1"],
        &[("NOBASE_RETRIES", "5")],
    )
    .code(3);
    assert!(
        r.stderr.contains("still failing after 5 attempts"),
        "{}",
        r.stderr
    );
    let gets = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains("/blobs/sha256:"))
        .count();
    assert!(gets <= 12, "{gets} downloads: {}", r.stderr);
}

#[test]
fn a_registry_that_drips_its_manifest_is_given_up_on() {
    // Each byte within the I/O timeout, a byte at a time: the pull waited as long as the
    // registry liked. After the grace (the I/O timeout), under 1 KiB/s fails.
    let fake = Fake::start(|s, path, _| {
        if path.contains("/manifests/") {
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 4000\r\nConnection: close\r\n\r\n"
            );
            for _ in 0..4000 {
                if s.write_all(b" ").and_then(|_| s.flush()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            respond(s, 200, &[], b"{}");
        }
    });
    let started = Instant::now();
    let r = nb_env(
        &Env::new(),
        &[
            "pull",
            &format!("docker://{}/x:1", fake.host()),
            "-t",
            "x:1",
        ],
        &[("NOBASE_IO_TIMEOUT_MS", "1000")],
    )
    .code(3);
    assert!(r.stderr.contains("bytes/s"), "{}", r.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}: {}",
        started.elapsed(),
        r.stderr
    );
}

#[test]
fn a_download_that_breaks_and_then_fails_counts_one_sequence_of_attempts() {
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let env = Env::new();
    build_image(&env, "hello:1", false);
    let dest = format!("docker://{}/reset/hello:1", reg.host());
    nb(&env, &["push", "hello:1", &dest]).ok();
    // Each blob's first download breaks off after 1000 bytes (the small config
    // arrives whole); every later request for it answers 500.
    let first: Arc<Mutex<std::collections::BTreeSet<String>>> = Arc::default();
    let proxy = Proxy::start(reg.port, None, move |s, _| {
        if s.method == "GET" && s.path.contains("/blobs/sha256:") {
            if first.lock().unwrap().insert(s.path.clone()) {
                Fault::CutResponse(1000)
            } else {
                Fault::Status(500, vec![])
            }
        } else {
            Fault::Forward
        }
    });
    let src = format!("docker://{}/reset/hello:1", proxy.host());
    let env2 = Env::new();
    let r = nb_env(
        &env2,
        &["pull", &src, "-t", "x:1"],
        &[("NOBASE_RETRIES", "5")],
    )
    .code(3);
    let said: Vec<&str> = r
        .stderr
        .lines()
        .filter_map(|l| l.split("(attempt ").nth(1))
        .collect();
    assert_eq!(
        said,
        ["2 of 5)", "3 of 5)", "4 of 5)", "5 of 5)"],
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("still failing after 5 attempts"),
        "{}",
        r.stderr
    );
    // Five attempts said, five made: the first download and four more.
    let layer_gets = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains("/blobs/sha256:"))
        .count()
        - 1; // the config's one GET
    assert_eq!(layer_gets, 5, "{:#?}", proxy.seen());
}

#[test]
fn docker_v2_manifests_copy_and_failed_mounts_fall_back_to_upload() {
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    if !have("skopeo") {
        return;
    }
    let env = Env::new();
    build_image(&env, "hello:1", false);
    // skopeo writes a Docker v2 schema 2 image; nobase reads it, keeps it byte for
    // byte, and copies it within the registry.
    let v2 = format!("docker://{}/docker/v2:1", reg.host());
    let r = run(Command::new("skopeo").args([
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci:{}:hello:1", env.store().display()),
        &v2,
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v2_digest = skopeo_registry_digest(&v2, None).unwrap();
    let pulled = nb(&env, &["pull", &v2, "-t", "v2:1"]).ok();
    assert!(pulled.stdout.contains(&v2_digest), "{}", pulled.stdout);
    let raw = std::fs::read(
        env.store()
            .join("blobs/sha256")
            .join(v2_digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&raw)
        .contains("application/vnd.docker.distribution.manifest.v2+json"));
    let copy = format!("docker://{}/docker/copy:1", reg.host());
    let j = nb(&env, &["push", &v2, &copy, "--json"]).ok().json();
    assert_eq!(j["digest"].as_str(), Some(v2_digest.as_str()));
    assert_eq!(j["blobs"]["mounted"], 2, "{j}");
    assert_eq!(skopeo_registry_digest(&copy, None).unwrap(), v2_digest);

    // A mount hint naming a repository that lacks the blobs: the registry answers the
    // mount with 202 and an upload session, which the upload then uses.
    let proxy = Proxy::start(reg.port, None, |_, _| Fault::Forward);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let digests: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&manifest["config"]])
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    let hints = env.path("cache/nobase/registry-blobs.json");
    std::fs::create_dir_all(hints.parent().unwrap()).unwrap();
    let entries: Vec<(String, String, String)> = digests
        .iter()
        .map(|d| (proxy.host(), "nowhere/empty".to_string(), d.clone()))
        .collect();
    std::fs::write(
        &hints,
        serde_json::to_vec(&serde_json::json!({ "entries": entries })).unwrap(),
    )
    .unwrap();
    let dest = format!("docker://{}/fresh/repo:1", proxy.host());
    let r = nb(&env, &["push", "v2:1", &dest]).ok();
    assert!(r.stderr.contains("(2 uploaded, 0 mounted"), "{}", r.stderr);
    let seen = proxy.seen();
    let mounts = seen
        .iter()
        .filter(|s| s.method == "POST" && s.path.contains("mount="))
        .count();
    let plain_posts = seen
        .iter()
        .filter(|s| s.method == "POST" && !s.path.contains("mount="))
        .count();
    assert_eq!((mounts, plain_posts), (2, 0), "{seen:?}");
    assert_eq!(
        skopeo_registry_digest(&format!("docker://{}/fresh/repo:1", reg.host()), None).unwrap(),
        v2_digest
    );
}

/// Runs openssl, asserting it succeeded.
fn openssl(args: &[&str]) {
    let r = run(Command::new("openssl").args(args));
    assert_eq!(r.code, 0, "openssl {args:?}: {}", r.stderr);
}

/// A self-signed certificate (`openssl req -x509`, which marks it CA:TRUE unless
/// `extra` says otherwise) for `subject`, written to `crt` with its key at `key`.
fn self_signed(crt: &Path, key: &Path, subject: &str, extra: &[&str]) {
    let (crt, key) = (crt.to_str().unwrap(), key.to_str().unwrap());
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject, "-keyout",
        key, "-out", crt,
    ];
    args.extend_from_slice(extra);
    openssl(&args);
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with openssl.
/// Returns (dir holding ca.crt only, server cert, server key).
fn make_tls(env: &Env) -> (PathBuf, PathBuf, PathBuf) {
    let d = env.path("tls");
    let certs = env.path("certs.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::create_dir_all(&certs).unwrap();
    let p = |n: &str| d.join(n).display().to_string();
    self_signed(
        &d.join("ca.crt"),
        &d.join("ca.key"),
        "/CN=nobase test CA",
        &[],
    );
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.csr"),
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.crt"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("server.crt"),
    ]);
    std::fs::copy(d.join("ca.crt"), certs.join("ca.crt")).unwrap();
    (certs, d.join("server.crt"), d.join("server.key"))
}

#[test]
fn tls_registries_need_their_ca_and_token_realms_may_not_downgrade() {
    if !have("openssl") {
        return;
    }
    let env = Env::new();
    let (certs, crt, key) = make_tls(&env);
    let Some(reg) = Registry::start_with(Auth::None, Some((&crt, &key))) else {
        return;
    };
    let digest = build_image(&env, "hello:1", false);
    let dest = format!("docker://{}/tls/hello:1", reg.host());
    let cert_dir = certs.display().to_string();
    // With the CA from --cert-dir: HTTPS, verified.
    let r = nb(
        &env,
        &["push", "hello:1", &dest, "--cert-dir", &cert_dir, "-v"],
    )
    .ok();
    assert!(
        r.stderr
            .contains(&format!("GET https://{}/v2/ → 200", reg.host())),
        "{}",
        r.stderr
    );
    if have("skopeo") {
        let o =
            run(Command::new("skopeo").args(["inspect", "--raw", "--cert-dir", &cert_dir, &dest]));
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(sha256_hex(o.stdout.as_bytes()), digest);
    }
    // Without it the certificate is unknown, and plain HTTP gets nowhere either.
    let r = nb(&env, &["pull", &dest, "-t", "x:1"]).code(3);
    assert!(r.stderr.contains("certificate"), "{}", r.stderr);
    // --insecure skips verification, as skopeo's --tls-verify=false does here too.
    nb(&env, &["pull", &dest, "-t", "x:1", "--insecure"]).ok();
    nb(&env, &["pull", &dest, "-t", "x:1", "--tls-verify=false"]).ok();
    nb(&env, &["pull", &dest, "-t", "x:1", "--tls-verify=true"]).code(3);
    // A cert dir whose CA did not sign the registry's certificate says so; one whose
    // ca.crt holds no certificate is an error, not silently nothing.
    let other = env.path("other.d");
    std::fs::create_dir_all(&other).unwrap();
    let o = other.display().to_string();
    let self_signed_in = |name: &str, extra: &[&str]| {
        let (crt, key) = (
            other.join(format!("{name}.pem")),
            other.join(format!("{name}.key")),
        );
        let mut all = vec!["-addext", "subjectAltName=IP:127.0.0.1"];
        all.extend_from_slice(extra);
        self_signed(&crt, &key, "/CN=127.0.0.1", &all);
        (crt, key)
    };
    let (unrelated, _) = self_signed_in("unrelated", &[]);
    std::fs::copy(&unrelated, other.join("ca.crt")).unwrap();
    let r = nb(&env, &["pull", &dest, "-t", "x:1", "--cert-dir", &o]).code(3);
    assert!(r.stderr.contains("did not sign"), "{}", r.stderr);
    std::fs::write(other.join("ca.crt"), "not a certificate\n").unwrap();
    let r = nb(&env, &["pull", &dest, "-t", "x:1", "--cert-dir", &o]).code(3);
    assert!(
        r.stderr.contains("holds no PEM certificate"),
        "{}",
        r.stderr
    );
    // Signed by the CA given, but for another name: said so, not "did not sign".
    let tls = env.path("tls");
    let t = |n: &str| tls.join(n).display().to_string();
    std::fs::write(
        tls.join("other.cnf"),
        "subjectAltName=IP:10.9.9.9\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=10.9.9.9",
        "-keyout",
        &t("other.key"),
        "-out",
        &t("other.csr"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &t("other.csr"),
        "-CA",
        &t("ca.crt"),
        "-CAkey",
        &t("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &t("other.cnf"),
        "-out",
        &t("other.crt"),
    ]);
    if let Some(named) = Registry::start_with(
        Auth::None,
        Some((&tls.join("other.crt"), &tls.join("other.key"))),
    ) {
        let d = format!("docker://{}/tls/hello:1", named.host());
        let r = nb(&env, &["push", "hello:1", &d, "--cert-dir", &cert_dir]).code(3);
        assert!(r.stderr.contains("not made for the name"), "{}", r.stderr);
        assert!(!r.stderr.contains("did not sign"), "{}", r.stderr);
        // A server that showed a certificate speaks TLS: no plain-HTTP attempt after it.
        assert!(!r.stderr.contains("http: "), "{}", r.stderr);
    }
    // The usual self-signed certificate (`openssl req -x509`, which marks it CA:TRUE)
    // as the registry's own: refused by rustls, with how to make one that works; the
    // same made with CA:FALSE is trusted through --cert-dir.
    for (name, extra, works) in [
        ("ca-true", &[][..], false),
        (
            "ca-false",
            &["-addext", "basicConstraints=critical,CA:FALSE"][..],
            true,
        ),
    ] {
        let (crt, key) = self_signed_in(name, extra);
        let Some(own) = Registry::start_with(Auth::None, Some((&crt, &key))) else {
            return;
        };
        let dir = env.path(&format!("{name}.d"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&crt, dir.join("ca.crt")).unwrap();
        let dest = format!("docker://{}/tls/hello:1", own.host());
        let r = nb(
            &env,
            &[
                "push",
                "hello:1",
                &dest,
                "--cert-dir",
                dir.to_str().unwrap(),
            ],
        );
        if works {
            r.ok();
        } else {
            let r = r.code(3);
            assert!(
                r.stderr.contains("basicConstraints=critical,CA:FALSE"),
                "{}",
                r.stderr
            );
        }
    }

    // A TLS registry whose token server is on plain HTTP: refused before any
    // credential is sent there.
    let tokens = TokenServer::start();
    let Some(treg) = Registry::start_with(
        Auth::Token {
            realm: tokens.realm(),
            cert: tokens.cert.clone(),
        },
        Some((&crt, &key)),
    ) else {
        return;
    };
    let tdest = format!("docker://{}/tls/hello:1", treg.host());
    let r = nb(
        &env,
        &[
            "push",
            "hello:1",
            &tdest,
            "--cert-dir",
            &cert_dir,
            "--creds",
            &format!("{USER}:{PASS}"),
        ],
    )
    .code(3);
    assert!(
        r.stderr.contains("downgrades HTTPS to plain HTTP"),
        "{}",
        r.stderr
    );
    assert!(
        tokens.requests.lock().unwrap().is_empty(),
        "the token server was contacted"
    );
}

/// Regression: a client certificate rustls refuses (an X.509 v1 certificate from a plain
/// `openssl x509 -req`, a key of another certificate, a client.cert that is not PEM)
/// made ureq panic (exit 101) at the first connection, even to a plain-HTTP registry.
/// Each is now a one-line error naming the file and the cause, exit 3; a proper
/// (version 3, clientAuth) certificate still works.
#[test]
fn client_certificates_rustls_refuses_are_errors_not_panics() {
    if !have("openssl") {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let env = Env::new();
    build_image(&env, "hello:1", false);
    let d = env.path("client-tls");
    std::fs::create_dir_all(&d).unwrap();
    let p = |n: &str| d.join(n).display().to_string();
    self_signed(&d.join("ca.crt"), &d.join("ca.key"), "/CN=client CA", &[]);
    for name in ["client", "other"] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &p(&format!("{name}.key")),
            "-out",
            &p(&format!("{name}.csr")),
        ]);
    }
    std::fs::write(
        d.join("client.cnf"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    // Signed by the CA from client.csr; without -extfile openssl makes version 1.
    let sign = |out: &str, extra: &[&str]| {
        let (csr, ca, cakey) = (p("client.csr"), p("ca.crt"), p("ca.key"));
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &cakey,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            out,
        ];
        args.extend_from_slice(extra);
        openssl(&args);
    };
    let client_cnf = p("client.cnf");
    sign(&p("v1.cert"), &[]);
    sign(&p("v3.cert"), &["-extfile", &client_cnf]);
    let dir_with = |name: &str, cert: Option<&str>, key: &str| {
        let dir = env.path(&format!("certs-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(d.join("ca.crt"), dir.join("ca.crt")).unwrap();
        match cert {
            Some(c) => std::fs::copy(d.join(c), dir.join("client.cert")).map(|_| ()),
            None => std::fs::write(dir.join("client.cert"), "not a certificate\n"),
        }
        .unwrap();
        std::fs::copy(d.join(key), dir.join("client.key")).unwrap();
        dir.display().to_string()
    };
    let dest = format!("docker://{}/client/hello:1", reg.host());
    let good = dir_with("v3", Some("v3.cert"), "client.key");
    nb(&env, &["push", "hello:1", &dest, "--cert-dir", &good]).ok();
    for (name, cert, key, says) in [
        (
            "v1",
            Some("v1.cert"),
            "client.key",
            "client.cert is an X.509 version 1 certificate",
        ),
        (
            "mismatch",
            Some("v3.cert"),
            "other.key",
            "client.key does not belong to",
        ),
        (
            "junk",
            None,
            "client.key",
            "client.cert holds no certificate",
        ),
    ] {
        let dir = dir_with(name, cert, key);
        for args in [
            vec!["pull", &dest, "-t", "p:1", "--cert-dir", &dir],
            vec!["push", "hello:1", &dest, "--cert-dir", &dir],
        ] {
            // `code` also fails on a panic.
            let r = nb(&env, &args).code(3);
            assert!(r.stderr.contains(says), "{name}: {}", r.stderr);
            assert!(r.stderr.contains(&dir), "{name}: {}", r.stderr);
            assert_eq!(
                r.stderr.trim_end().lines().count(),
                1,
                "{name}: {}",
                r.stderr
            );
        }
    }
}

/// Regression: an explicit `--tls-verify=true` still fell back to plain HTTP on loopback
/// (skopeo refuses: "server gave HTTP response to HTTPS client"). Said explicitly, it now
/// means HTTPS only; without the flag a loopback registry may still use plain HTTP.
#[test]
fn tls_verify_true_means_https_only_even_on_loopback() {
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let env = Env::new();
    build_image(&env, "hello:1", false);
    let dest = format!("docker://{}/plain/hello:1", reg.host());
    nb(&env, &["push", "hello:1", &dest]).ok();
    nb(&env, &["pull", &dest, "-t", "p:1"]).ok();
    for flag in ["--tls-verify=true", "--tls-verify"] {
        for args in [
            vec!["pull", &dest, "-t", "p:2", flag, "-v"],
            vec!["push", "hello:1", &dest, flag, "-v"],
        ] {
            let r = nb(&env, &args).code(3);
            assert!(
                r.stderr.contains(
                    "answered in plain HTTP, not TLS, and --tls-verify=true allows only HTTPS"
                ),
                "{args:?}: {}",
                r.stderr
            );
            assert!(!r.stderr.contains("GET http://"), "{args:?}: {}", r.stderr);
        }
    }
    let images = nb(&env, &["images", "--json"]).ok().json();
    let tags: Vec<String> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}:{}",
                i["name"].as_str().unwrap(),
                i["tag"].as_str().unwrap()
            )
        })
        .collect();
    assert!(!tags.contains(&"p:2".to_string()), "{tags:?}");
    // A registry that speaks TLS is reached with it.
    if !have("openssl") {
        return;
    }
    let (certs, crt, key) = make_tls(&env);
    let Some(tls) = Registry::start_with(Auth::None, Some((&crt, &key))) else {
        return;
    };
    let tdest = format!("docker://{}/tls/hello:1", tls.host());
    let cert_dir = certs.display().to_string();
    nb(
        &env,
        &[
            "push",
            "hello:1",
            &tdest,
            "--cert-dir",
            &cert_dir,
            "--tls-verify=true",
        ],
    )
    .ok();
}

/// Regression: `push --creds U:P docker://A/… docker://B/…` sent A's credentials to B
/// too (and hid B's entry in config.json). Credentials now go to exactly one registry:
/// `--creds` is refused between two registries, `--src-creds`/`--dest-creds` name each
/// side, a side without any uses config.json, and B never sees A's password.
#[test]
fn creds_for_one_registry_never_reach_the_other() {
    const OTHER_USER: &str = "other-user";
    const OTHER_PASS: &str = "0ther-Pa55-dest";
    let Some(a) = Registry::start(Auth::Htpasswd) else {
        return;
    };
    let Some(b) = Registry::start(Auth::HtpasswdAs(OTHER_USER, OTHER_PASS)) else {
        return;
    };
    // B is reached through a proxy that records every Authorization header it is sent.
    let front = Proxy::start(b.port, None, |_, _| Fault::Forward);
    let env = Env::new();
    build_image(&env, "hello:1", false);
    let (a_creds, b_creds) = (
        format!("{USER}:{PASS}"),
        format!("{OTHER_USER}:{OTHER_PASS}"),
    );
    let src = format!("docker://{}/team/hello:1", a.host());
    let dest = format!("docker://{}/copy/hello:1", front.host());
    // One registry side: --creds is for it, as before.
    nb(&env, &["push", "hello:1", &src, "--creds", &a_creds]).ok();

    // Two registries and only --creds: refused before anything is sent anywhere.
    let r = nb(&env, &["push", &src, &dest, "--creds", &a_creds]).code(2);
    assert!(
        r.stderr.contains("--src-creds") && r.stderr.contains("--dest-creds"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(PASS), "{}", r.stderr);
    // One registry on both sides (a copy between its repositories): --creds is its.
    let sibling = format!("docker://{}/team/sibling:1", a.host());
    nb(&env, &["push", &src, &sibling, "--creds", &a_creds]).ok();
    assert!(front.seen().is_empty(), "{:?}", front.seen());
    // Building to two registries with one --creds: refused as well.
    let bin = hello_static();
    let r = nb(
        &env,
        &[
            "build",
            bin.to_str().unwrap(),
            "-o",
            &src,
            "-o",
            &dest,
            "--creds",
            &a_creds,
        ],
    )
    .code(2);
    assert!(r.stderr.contains("every registry output"), "{}", r.stderr);
    assert!(front.seen().is_empty(), "{:?}", front.seen());
    // Side flags where a side is no registry, or with --creds: usage errors.
    nb(&env, &["push", "hello:1", &dest, "--src-creds", &a_creds]).code(2);
    nb(&env, &["push", &src, "oci:out:x", "--dest-creds", &b_creds]).code(2);
    nb(
        &env,
        &[
            "push",
            &src,
            &dest,
            "--creds",
            &a_creds,
            "--dest-creds",
            &b_creds,
        ],
    )
    .code(2);

    // Each side its own: works, and B is sent only B's credentials.
    let b_file = env.path("b-creds");
    std::fs::write(&b_file, format!("{b_creds}\n")).unwrap();
    for dest_flag in [
        vec!["--dest-creds", &b_creds],
        vec!["--dest-creds-file", b_file.to_str().unwrap()],
    ] {
        let mut args = vec!["push", &src, &dest, "--src-creds", &a_creds, "-v"];
        args.extend_from_slice(&dest_flag);
        let r = nb(&env, &args).ok();
        for secret in [PASS, OTHER_PASS] {
            assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret));
        }
    }
    // Without --dest-creds, B's entry in config.json is used (--src-creds does not hide it).
    let docker = env.path("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            front.host(),
            b64(b_creds.as_bytes(), false)
        ),
    )
    .unwrap();
    let dest2 = format!("docker://{}/copy/hello:2", front.host());
    nb(&env, &["push", &src, &dest2, "--src-creds", &a_creds]).ok();
    std::fs::remove_file(docker.join("config.json")).unwrap();
    // With neither, B refuses, and the advice names the flag for its side.
    let r = nb(&env, &["push", &src, &dest2, "--src-creds", &a_creds]).code(3);
    assert!(
        r.stderr.contains("--dest-creds or --dest-creds-file"),
        "{}",
        r.stderr
    );
    // A registry source alone: --creds is the source's.
    let out = format!("oci:{}:x", env.path("out").display());
    nb(&env, &["push", &dest, &out, "--creds", &b_creds]).ok();

    // A Dockerfile whose FROM is on B, built to A with --creds: they are A's, and B is
    // asked with its own config.json entry (B was sent A's password).
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            front.host(),
            b64(b_creds.as_bytes(), false)
        ),
    )
    .unwrap();
    let ctx = env.path("dfctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let df = ctx.join("Dockerfile");
    std::fs::write(
        &df,
        format!("FROM {}/copy/hello:1\nENV X=1\n", front.host()),
    )
    .unwrap();
    let out_a = format!("docker://{}/team/fromb:1", a.host());
    nb(
        &env,
        &[
            "build",
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-o",
            &out_a,
            "--creds",
            &a_creds,
        ],
    )
    .ok();
    std::fs::remove_file(docker.join("config.json")).unwrap();
    let sent: Vec<String> = front
        .seen()
        .iter()
        .filter_map(|s| s.authorization_header.clone())
        .collect();
    assert!(!sent.is_empty(), "B was never sent credentials");
    for h in &sent {
        let basic = h.strip_prefix("Basic ").unwrap_or_else(|| panic!("{h}"));
        let decoded = String::from_utf8(unb64(basic)).unwrap();
        assert_eq!(decoded, b_creds, "B was sent other credentials");
    }
    if let Some(d) = skopeo_registry_digest(
        &format!("docker://{}/copy/hello:1", b.host()),
        Some(&b_creds),
    ) {
        assert_eq!(Some(d), skopeo_registry_digest(&src, Some(&a_creds)));
    }
}

#[test]
fn check_reads_an_image_straight_from_a_registry() {
    let Some(reg) = Registry::start(Auth::None) else {
        return;
    };
    let env = Env::new();
    // One image that starts, one that cannot (an unknown user, written with --no-check).
    build_image(&env, "good:1", false);
    let bin = hello_static();
    let bin = bin.to_str().unwrap();
    nb(
        &env,
        &["build", bin, "-t", "bad:1", "-u", "nobody", "--no-check"],
    )
    .ok();
    for (tag, ok) in [("good:1", true), ("bad:1", false)] {
        let dest = format!("docker://{}/check/{tag}", reg.host());
        nb(&env, &["push", tag, &dest]).ok();
        let blobs = blob_count(&env.store());
        let images = nb(&env, &["images", "--json"]).ok().json();
        let r = nb(&env, &["check", "--json", &dest]);
        assert_eq!(r.code, if ok { 0 } else { 1 }, "{tag}: {}", r.stderr);
        assert_eq!(r.json()["ok"], ok);
        assert_eq!(r.json()["image"], dest);
        // Read straight from the registry: nothing was pulled into the store.
        assert_eq!(blob_count(&env.store()), blobs, "{tag}");
        assert_eq!(nb(&env, &["images", "--json"]).ok().json(), images);
        // tree reads it there too, and run starts it from there.
        let t = nb(&env, &["tree", "--json", &dest]).ok().json();
        assert_eq!(t["image"], dest);
        assert!(
            t["merged"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["path"] == "/app/hello-static"),
            "{t}"
        );
        if ok && have("runc") && is_root() {
            let r = nb(&env, &["run", &dest]).ok();
            assert_eq!(r.stdout, "hello world\n");
        }
    }
    // What is not there is named as written: a tag after ':', a digest after '@'.
    let zero = format!("sha256:{}", "0".repeat(64));
    for (reference, shown, what) in [
        (
            format!("docker://{}/check/nothere:1", reg.host()),
            format!("{}/check/nothere:1", reg.host()),
            "tag",
        ),
        (
            format!("docker://{}/check/good@{zero}", reg.host()),
            format!("{}/check/good@{zero}", reg.host()),
            "digest",
        ),
    ] {
        let r = nb(&env, &["check", &reference]).code(3);
        assert!(
            r.stderr
                .contains(&format!("reading {shown}: no such image"))
                && r.stderr
                    .contains(&format!("check the repository and the {what}")),
            "{}",
            r.stderr
        );
    }
}

/// A fake registry on loopback whose every answer is chosen by `answer(path, port)`,
/// which writes it whole to the stream; records the paths asked for.
struct Fake {
    server: Server,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn start(answer: impl Fn(&mut TcpStream, &str, u16) + Send + Sync + 'static) -> Fake {
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = paths.clone();
        let port = Arc::new(std::sync::atomic::AtomicU16::new(0));
        let port2 = port.clone();
        let server = Server::start(move |s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let Some((_, path, _)) = read_head(&mut r) else {
                return;
            };
            seen.lock().unwrap().push(path.clone());
            let mut s = s;
            answer(&mut s, &path, port2.load(Ordering::Relaxed));
        });
        port.store(server.port, Ordering::Relaxed);
        Fake { server, paths }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    fn asked(&self, part: &str) -> bool {
        self.paths.lock().unwrap().iter().any(|p| p.contains(part))
    }
}

/// Writes a status line and headers, then body bytes until the client goes away
/// (at most 256 MiB): an answer that never ends unless the client caps it.
fn endless(s: &mut TcpStream, status: u16, headers: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nConnection: close\r\n{headers}\r\n"
    );
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..256 {
        if s.write_all(&chunk).is_err() {
            return;
        }
    }
}

fn challenge(s: &mut TcpStream, realm: &str) {
    respond(
        s,
        401,
        &[(
            "WWW-Authenticate",
            format!(r#"Bearer realm="{realm}",service="fake",scope="repository:x:pull""#),
        )],
        br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
    );
}

/// A fake registry whose token realm is itself, on this port, named by `host` (a
/// spelling of an address that must never be contacted): a token asked for there
/// would be answered.
fn realm_on_this_fake_as(host: &'static str) -> Fake {
    Fake::start(move |s, path, port| {
        if path.starts_with("/token") {
            respond(s, 200, &[], br#"{"token":"t"}"#)
        } else {
            challenge(s, &format!("http://{host}:{port}/token"))
        }
    })
}

#[test]
fn hostile_registry_answers_are_capped_and_bad_realms_refused_without_secrets() {
    let canary = "Canary-Fake-Pw-9e1d";
    let creds = format!("{USER}:{canary}");
    let env = Env::new();
    // (what, fake registry, text the one-line error must carry, path that must never be
    // asked for)
    let cases: Vec<(&str, Fake, &str, Option<&str>)> = vec![
        (
            "an endless error body",
            Fake::start(|s, _, _| endless(s, 400, "Content-Type: application/json\r\n")),
            "400",
            None,
        ),
        (
            "an endless token body",
            Fake::start(|s, path, port| {
                if path.starts_with("/token") {
                    endless(s, 200, "Content-Type: application/json\r\n")
                } else {
                    challenge(s, &format!("http://127.0.0.1:{port}/token"))
                }
            }),
            "larger than",
            None,
        ),
        (
            "a realm at the metadata address",
            Fake::start(|s, _, _| challenge(s, "http://169.254.169.254/latest/meta-data")),
            "never contacted",
            None,
        ),
        (
            "a realm at a metadata name",
            Fake::start(|s, _, _| challenge(s, "http://metadata.google.internal/token")),
            "never contacted",
            None,
        ),
        (
            "a realm at the unspecified address (this fake, really)",
            realm_on_this_fake_as("0.0.0.0"),
            "never contacted",
            Some("/token"),
        ),
        (
            "a realm at the unspecified address spelled 0 (inet_aton's)",
            realm_on_this_fake_as("0"),
            "never contacted",
            Some("/token"),
        ),
        (
            "a realm at the unspecified address spelled 0x0",
            realm_on_this_fake_as("0x0"),
            "never contacted",
            Some("/token"),
        ),
        (
            "a token that expires after the end of time (it overflowed the clock: a panic)",
            Fake::start(|s, path, port| {
                if path.starts_with("/token") {
                    respond(
                        s,
                        200,
                        &[],
                        br#"{"token":"t","expires_in":18446744073709551615}"#,
                    )
                } else if path.contains("/manifests/") {
                    respond(s, 404, &[], br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#)
                } else {
                    challenge(s, &format!("http://127.0.0.1:{port}/token"))
                }
            }),
            "x:1",
            None,
        ),
        (
            "a realm on another scheme",
            Fake::start(|s, _, port| challenge(s, &format!("ftp://127.0.0.1:{port}/token"))),
            "token",
            Some("/token"),
        ),
        (
            "a realm that is a local file",
            Fake::start(|s, _, _| challenge(s, "file:///etc/shadow")),
            "token",
            None,
        ),
        (
            "a token server redirecting to the metadata address",
            Fake::start(|s, path, port| {
                if path.starts_with("/token") {
                    respond(
                        s,
                        302,
                        &[("Location", "http://169.254.169.254/latest/meta-data".into())],
                        b"",
                    )
                } else {
                    challenge(s, &format!("http://127.0.0.1:{port}/token"))
                }
            }),
            // Token answers are never followed anywhere.
            "302",
            None,
        ),
        (
            "a token server redirecting to the unspecified address",
            Fake::start(|s, path, port| {
                if path.starts_with("/token2") {
                    respond(s, 200, &[], br#"{"token":"t"}"#)
                } else if path.starts_with("/token") {
                    respond(
                        s,
                        302,
                        &[("Location", format!("http://0.0.0.0:{port}/token2"))],
                        b"",
                    )
                } else {
                    challenge(s, &format!("http://127.0.0.1:{port}/token"))
                }
            }),
            "302",
            Some("/token2"),
        ),
    ];
    for (what, fake, why, never) in cases {
        let src = format!("docker://{}/x:1", fake.host());
        let started = Instant::now();
        let r = nb(&env, &["pull", &src, "-t", "x:1", "--creds", &creds, "-v"]).code(3);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: took {:?}",
            started.elapsed()
        );
        let last = r.stderr.trim_end().lines().last().unwrap_or("");
        assert!(last.starts_with("nobase: "), "{what}: {}", r.stderr);
        assert!(
            last.contains(why),
            "{what}: expected {why:?} in\n{}",
            r.stderr
        );
        // A capped body is cut, not echoed: the error line stays short.
        assert!(last.len() < 4096, "{what}: {} bytes of error", last.len());
        for out in [&r.stdout, &r.stderr] {
            assert!(!out.contains(canary), "{what}: secret printed: {out}");
            assert!(
                !out.contains(&b64(creds.as_bytes(), false)),
                "{what}: {out}"
            );
        }
        if let Some(p) = never {
            assert!(!fake.asked(p), "{what}: {p} was asked for");
        }
    }
}

#[test]
fn verbose_transfers_print_no_password_and_no_token() {
    let env = Env::new();
    build_image(&env, "hello:1", true);
    let creds = format!("{USER}:{PASS}");
    let encoded = b64(creds.as_bytes(), false);
    let mut registries = Vec::new();
    if let Some(reg) = Registry::start(Auth::Htpasswd) {
        registries.push(("basic", reg, None));
    }
    if have("openssl") {
        let tokens = TokenServer::start();
        if let Some(reg) = Registry::start(Auth::Token {
            realm: tokens.realm(),
            cert: tokens.cert.clone(),
        }) {
            registries.push(("bearer", reg, Some(tokens)));
        }
    }
    for (kind, reg, _tokens) in &registries {
        let dest = format!("docker://{}/team/secret:1", reg.host());
        let other = Env::new();
        for (e, args) in [
            (
                &env,
                vec!["push", "hello:1", &dest, "--creds", &creds, "-v"],
            ),
            (
                &other,
                vec!["pull", &dest, "-t", "s:1", "--creds", &creds, "-v"],
            ),
            (&other, vec!["check", &dest, "--creds", &creds, "-v"]),
        ] {
            let r = nb(e, &args).ok();
            assert!(
                r.stderr.contains("GET") || r.stderr.contains("PUT"),
                "{kind}: -v shows requests"
            );
            for out in [&r.stdout, &r.stderr] {
                assert!(
                    !out.contains(PASS),
                    "{kind} {args:?}: password printed: {out}"
                );
                assert!(!out.contains(&encoded), "{kind} {args:?}: {out}");
                // Every JWT starts with the base64 of `{"`.
                assert!(
                    !out.contains("eyJ"),
                    "{kind} {args:?}: a token printed: {out}"
                );
            }
        }
    }
}

#[test]
fn content_that_does_not_match_its_digest_is_refused_and_nothing_is_stored() {
    type Tamper = fn(&str, &mut Vec<u8>);
    let env = Env::new();
    build_image(&env, "hello:1", true);
    let layout = env.path("layout");
    nb(
        &env,
        &["push", "hello:1", &format!("oci:{}:img", layout.display())],
    )
    .ok();
    let read = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&read(&top)).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blobs: Arc<BTreeMap<String, Vec<u8>>> = Arc::new(
        std::fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (format!("sha256:{name}"), std::fs::read(e.path()).unwrap())
            })
            .collect(),
    );
    // A registry serving the image from memory, changed by `tamper(path, bytes)`.
    let serve = |tamper: Tamper, top: String, blobs: Arc<BTreeMap<String, Vec<u8>>>| {
        Fake::start(move |s, path, _| {
            if path == "/v2/" {
                return respond(s, 200, &[], b"{}");
            }
            let Some((kind, reference)) =
                path.strip_prefix("/v2/x/").and_then(|p| p.split_once('/'))
            else {
                return respond(s, 404, &[], b"");
            };
            let digest = if reference.starts_with("sha256:") {
                reference
            } else {
                top.as_str()
            };
            let Some(bytes) = blobs.get(digest) else {
                return respond(s, 404, &[], b"");
            };
            let mut bytes = bytes.clone();
            tamper(path, &mut bytes);
            let mut headers = vec![(
                "Docker-Content-Digest",
                format!("sha256:{}", "0".repeat(64)),
            )];
            if kind == "manifests" {
                headers.push((
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".into(),
                ));
            }
            respond(s, 200, &headers, &bytes);
        })
    };
    // A registry that lies only in Docker-Content-Digest: the computed digest wins.
    let honest = serve(|_, _| {}, top.clone(), blobs.clone());
    let other = Env::new();
    let r = nb(
        &other,
        &[
            "pull",
            &format!("docker://{}/x:1", honest.host()),
            "-t",
            "ok:1",
        ],
    )
    .ok();
    assert!(r.stdout.contains(&top), "{}", r.stdout);
    other.nobase(&["fsck"]).ok();
    // Changed bytes: a manifest fetched by digest, a layer at the same size, a layer one
    // byte longer. Each is refused; the store gains no tag and no blob.
    let cases: Vec<(&str, Tamper, String)> = vec![
        (
            "a manifest by digest",
            |path, b| {
                if path.contains("/manifests/") {
                    b.insert(b.len() - 1, b' ');
                }
            },
            format!("docker://{}/x@{top}", "HOST"),
        ),
        (
            "a layer at the same size",
            |path, b| {
                if path.contains("/blobs/") && b.len() > 1 << 20 {
                    let n = b.len() / 2;
                    b[n] ^= 1;
                }
            },
            "docker://HOST/x:1".into(),
        ),
        (
            "a layer one byte longer",
            |path, b| {
                if path.contains("/blobs/") && b.len() > 1 << 20 {
                    b.push(0);
                }
            },
            "docker://HOST/x:1".into(),
        ),
    ];
    for (what, tamper, src) in cases {
        let fake = serve(tamper, top.clone(), blobs.clone());
        let store = Env::new();
        let blobs_before = blob_count(&store.store());
        let src = src.replace("HOST", &fake.host());
        let r = nb(&store, &["pull", &src, "-t", "bad:1"]).code(3);
        assert!(
            r.stderr.contains("digest mismatch") || r.stderr.contains("longer than"),
            "{what}: {}",
            r.stderr
        );
        let images = store.nobase(&["images", "--json"]).ok().json();
        assert_eq!(images, serde_json::json!([]), "{what}");
        assert_eq!(
            blob_count(&store.store()),
            blobs_before,
            "{what}: a blob was kept"
        );
        assert!(
            !store
                .store()
                .join("blobs/sha256")
                .join(layer.trim_start_matches("sha256:"))
                .exists(),
            "{what}"
        );
        // A pull refused before it wrote anything may not have made the store at all.
        if store.store().exists() {
            store.nobase(&["fsck"]).ok();
        }
    }
}
