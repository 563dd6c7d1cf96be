//! One registry host's HTTP client: picks the scheme with a `/v2/` ping, attaches
//! credentials (Basic, or Bearer tokens fetched per scope and refreshed on 401), retries
//! what failed for a passing reason, follows redirects without taking credentials to
//! another host, and turns error answers into messages without secrets.

use super::auth::{self, Challenge, Creds, Found, Scopes, Secret};
use super::net::{self, classify, redact, HostClass, Url};
use super::Options;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// A response with its body still to read.
pub type Resp = ureq::http::Response<ureq::Body>;

/// The outcome of one network attempt: a response (any status), or a transport error.
pub type Net<T> = std::result::Result<T, ureq::Error>;

/// Largest error body read (registry JSON errors are a few hundred bytes).
const MAX_ERROR_BODY: u64 = 64 << 10;
/// Largest token response read.
const MAX_TOKEN_BODY: u64 = 1 << 20;
/// Redirect hops followed for one blob.
const MAX_REDIRECTS: usize = 5;

/// A request body.
pub enum Body<'a> {
    /// None (GET, HEAD, a final PUT).
    Empty,
    /// Bytes in memory (manifests): can be sent again on retry.
    Bytes(&'a [u8]),
    /// A stream of exactly this many bytes (blob data): sent once; the caller resumes.
    Stream(&'a mut dyn Read, u64),
}

/// The failed attempts of one operation, shared by every retry loop that serves it (a
/// download and the requests that reconnect it; an upload and the sessions, chunks and
/// status requests it takes), so the attempts the user is told of are one sequence and
/// the retry policy bounds the whole operation, not each loop anew.
#[derive(Debug, Default)]
pub struct Tries(std::cell::Cell<u32>);

impl Tries {
    /// Counts one more failed attempt; returns how many have failed so far.
    pub fn fail(&self) -> u32 {
        let n = self.0.get() + 1;
        self.0.set(n);
        n
    }

    /// Progress was made: the next failure starts a new sequence.
    pub fn reset(&self) {
        self.0.set(0);
    }
}

/// What to do after one attempt.
pub enum Verdict {
    /// A final answer (any status but 401, 408, 429 and 5xx).
    Done(Resp),
    /// 401: authenticate again (once) and retry.
    Unauthorized(Resp),
    /// A passing failure: retry after a wait (the server's `Retry-After`, if any).
    Retry {
        /// Why, for messages.
        why: String,
        /// `Retry-After`.
        after: Option<Duration>,
    },
    /// A failure retrying cannot fix.
    Fail(Error),
}

struct Token {
    value: Secret,
    expires: Instant,
}

/// A client for one registry host.
pub struct Client {
    /// The host as the reference names it (`127.0.0.1:5000`, `docker.io`).
    pub host: String,
    /// The host requests go to (`registry-1.docker.io` for `docker.io`).
    api_host: String,
    agent: ureq::Agent,
    /// The repository whose credentials are used (an auth.json may have an entry for
    /// it or its namespace): the one the command reads or writes.
    repo: String,
    /// Shared settings.
    pub opts: Options,
    /// `http(s)://host`, known after the ping, with the registry's challenge.
    ready: Mutex<Option<(Url, Option<Challenge>)>>,
    found: Mutex<Option<Found>>,
    tokens: Mutex<HashMap<String, Token>>,
    /// Held while pinging or fetching a token, so parallel uploads starting together
    /// make one ping and one token request, not one each.
    handshake: Mutex<()>,
    /// Why the ping failed, after its retries: every later request of the command
    /// fails with it at once instead of retrying the same unreachable host again (a
    /// push of four layers waited out four retry sequences).
    unreachable: Mutex<Option<String>>,
    /// Every secret this client has seen, scrubbed from any message it builds.
    secrets: Mutex<Vec<String>>,
}

impl Client {
    /// A client for `host`, with the credentials for its repository `repo`. Nothing is
    /// sent until the first request.
    pub fn new(host: &str, repo: &str, opts: &Options) -> Result<Client> {
        let api_host = match host {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            h => h,
        };
        if classify(api_host) == HostClass::Forbidden {
            return Err(Error::Usage(format!(
                "{host} is a link-local, unspecified or metadata address; nobase does not contact it"
            )));
        }
        let mut secrets = Vec::new();
        if let Some(g) = &opts.creds {
            secrets.extend(g.creds.secrets());
        }
        Ok(Client {
            host: host.to_string(),
            api_host: api_host.to_string(),
            repo: repo.to_string(),
            agent: net::agent(api_host, &opts.tls, opts.io_timeout)?,
            opts: opts.clone(),
            ready: Mutex::new(None),
            found: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            handshake: Mutex::new(()),
            unreachable: Mutex::new(None),
            secrets: Mutex::new(secrets),
        })
    }

    /// Plain HTTP is allowed for loopback registries (as Docker does) and with
    /// `--insecure`; every other registry must speak TLS, and every registry must when
    /// the user asked for verified TLS (`--tls-verify=true`).
    fn plain_http_allowed(&self) -> bool {
        !self.opts.tls.https_only
            && (self.opts.tls.insecure || classify(&self.api_host) == HostClass::Loopback)
    }

    /// `http(s)://host`, pinging `/v2/` the first time.
    pub fn base(&self) -> Result<Url> {
        if let Some((u, _)) = &*lock(&self.ready) {
            return Ok(u.clone());
        }
        let _one_at_a_time = lock(&self.handshake);
        if let Some((u, _)) = &*lock(&self.ready) {
            return Ok(u.clone());
        }
        if let Some(why) = &*lock(&self.unreachable) {
            return Err(Error::Registry(why.clone()));
        }
        if let Err(e) = self.ping() {
            if let Error::Registry(why) = &e {
                *lock(&self.unreachable) = Some(why.clone());
            }
            return Err(e);
        }
        Ok(lock(&self.ready).as_ref().expect("set by ping").0.clone())
    }

    /// `GET /v2/`: learns the scheme (HTTPS first; plain HTTP only where allowed, when
    /// HTTPS fails) and how the registry wants to be authenticated.
    fn ping(&self) -> Result<()> {
        let schemes: &[&str] = if self.plain_http_allowed() {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut failures = Vec::new();
        for (i, scheme) in schemes.iter().enumerate() {
            let url = Url::parse(&format!("{scheme}://{}/v2/", self.api_host))?;
            let what = format!("connecting to {}", self.host);
            // An HTTPS attempt that may fall back is tried once: a plain-HTTP registry
            // answers it with garbage at once, and retrying would only add waits.
            let last = i + 1 == schemes.len();
            let resp = if last {
                self.run(
                    &what,
                    || Ok(self.send_raw("GET", &url, &[], Body::Empty, None)),
                    |r| Ok(Some(r)),
                )
            } else {
                match self.send_raw("GET", &url, &[], Body::Empty, None) {
                    Ok(r) => Ok(r),
                    Err(e) => Err(Error::Registry(net::describe_ureq(&e))),
                }
            };
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    let text = e.to_string();
                    failures.push(format!("{scheme}: {text}"));
                    // A certificate was presented: the server speaks TLS, and plain
                    // HTTP to it would only fail (after retries) and hide the reason.
                    if text.contains("certificate") {
                        break;
                    }
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let challenge = match status {
                200..=299 => None,
                401 => Some(
                    auth::parse_challenges(header_all(&resp, "www-authenticate")).ok_or_else(
                        || {
                            Error::Registry(format!(
                                "{} asks for authentication (401 on /v2/) in a way nobase does not know (no Basic or Bearer challenge)",
                                self.host
                            ))
                        },
                    )?,
                ),
                _ => {
                    failures.push(format!(
                        "{scheme}: GET /v2/ answered HTTP {status}, so it is not a registry API endpoint"
                    ));
                    continue;
                }
            };
            let base = Url::parse(&format!("{scheme}://{}", self.api_host))?;
            *lock(&self.ready) = Some((base, challenge));
            return Ok(());
        }
        let hint = if failures.iter().any(|f| f.contains("CaUsedAsEndEntity")) {
            // `openssl req -x509` marks a self-signed certificate as a CA (CA:TRUE);
            // Go's TLS accepts one as the server's own, rustls does not.
            "; the registry's own certificate is marked as a CA (basicConstraints CA:TRUE, as \
             `openssl req -x509` makes one by default), which is refused as a server's \
             certificate: make it with `-addext basicConstraints=critical,CA:FALSE`, or sign \
             a server certificate with a CA given by --cert-dir DIR (DIR/ca.crt), or use \
             --insecure"
        } else if failures
            .iter()
            .any(|f| f.contains("NotValidForName") || f.contains("not valid for name"))
        {
            "; the registry's certificate is not made for the name used to reach it (its \
             subject alternative names must include it): use the name it was made for"
        } else if failures
            .iter()
            .any(|f| f.contains("Expired") || f.contains("certificate expired"))
        {
            "; the registry's certificate has expired (or this machine's clock is wrong)"
        } else if failures.iter().any(|f| f.contains("certificate")) {
            let unsigned = failures
                .iter()
                .any(|f| f.contains("UnknownIssuer") || f.contains("BadSignature"));
            match (&self.opts.tls.cert_dir, unsigned) {
                (Some(_), true) => {
                    "; the CA certificates of --cert-dir (its *.crt files) did not sign the \
                     registry's certificate"
                }
                (Some(_), false) => "; the registry's certificate was refused for the reason above",
                (None, _) => {
                    "; if the registry uses a private CA, give it with --cert-dir DIR (DIR/ca.crt)"
                }
            }
        } else if self.plain_http_allowed() {
            "; check that the registry is running and listening at that address"
        } else if self.opts.tls.https_only
            && failures.iter().any(|f| f.contains("InvalidContentType"))
        {
            // What rustls makes of a plain-HTTP answer to its hello.
            "; the registry answered in plain HTTP, not TLS, and --tls-verify=true allows \
             only HTTPS (leave the flag out to let a loopback registry use plain HTTP)"
        } else if self.opts.tls.https_only {
            "; check that the registry is running and serving HTTPS at that address \
             (--tls-verify=true allows only HTTPS)"
        } else {
            " (plain HTTP is used only for loopback registries or with --insecure)"
        };
        Err(Error::Registry(format!(
            "cannot reach the registry {}: {}{hint}",
            self.host,
            failures.join("; ")
        )))
    }

    /// `base` + `/v2/<path>`.
    pub fn url(&self, path: &str) -> Result<Url> {
        let base = self.base()?;
        Ok(Url {
            rest: format!("/v2/{path}"),
            ..base
        })
    }

    /// One HTTP exchange, nothing more. `Authorization` goes only to the registry's own
    /// origin, whatever the caller passes.
    pub fn send_raw(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, String)],
        body: Body<'_>,
        authorization: Option<&str>,
    ) -> Net<Resp> {
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(url.to_string());
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        let same_origin = lock(&self.ready)
            .as_ref()
            .is_some_and(|(base, _)| base.same_origin(url));
        if let (Some(a), true) = (authorization, same_origin) {
            b = b.header("authorization", a);
        }
        let shown = format!("{method} {}", redact(&url.to_string()));
        let result = match body {
            Body::Empty => {
                let b = if method == "PUT" || method == "POST" || method == "PATCH" {
                    b.header("content-length", "0")
                } else {
                    b
                };
                b.body(())
                    .map_err(ureq::Error::from)
                    .and_then(|r| self.agent.run(r))
            }
            Body::Bytes(bytes) => b
                .header("content-length", bytes.len().to_string())
                .body(bytes)
                .map_err(ureq::Error::from)
                .and_then(|r| self.agent.run(r)),
            Body::Stream(reader, len) => b
                .header("content-length", len.to_string())
                .body(ureq::SendBody::from_reader(reader))
                .map_err(ureq::Error::from)
                .and_then(|r| self.agent.run(r)),
        };
        match &result {
            Ok(r) => self
                .opts
                .events
                .trace(&format!("{shown} → {}", r.status().as_u16())),
            Err(e) => self
                .opts
                .events
                .trace(&format!("{shown} → {}", net::describe_ureq(e))),
        }
        result
    }

    /// Sorts one attempt's outcome.
    pub fn judge(&self, what: &str, r: Net<Resp>) -> Verdict {
        match r {
            Err(e) if net::ureq_retryable(&e) => Verdict::Retry {
                why: net::describe_ureq(&e),
                after: None,
            },
            Err(e) => Verdict::Fail(Error::Registry(format!(
                "{what}: {}",
                self.scrub(net::describe_ureq(&e))
            ))),
            Ok(resp) => match resp.status().as_u16() {
                401 => Verdict::Unauthorized(resp),
                // 501 Not Implemented and 505 HTTP Version Not Supported say the server
                // will never do it: no retry (a static file server answering /v2/).
                s @ (408 | 429 | 500 | 502..=504 | 506..=599) => Verdict::Retry {
                    why: format!("HTTP {s}"),
                    after: header(&resp, "retry-after")
                        .and_then(|v| net::parse_retry_after(v, SystemTime::now())),
                },
                _ => Verdict::Done(resp),
            },
        }
    }

    /// Waits before retry number `attempt` (counting from 1), telling the user.
    pub fn backoff(&self, what: &str, why: &str, attempt: u32, after: Option<Duration>) {
        let wait = self.opts.retry.wait(attempt, after);
        self.opts
            .events
            .retrying(what, why, wait, attempt, self.opts.retry.attempts);
        std::thread::sleep(wait);
    }

    /// Runs `once` until it gives a final answer: passing failures are retried with
    /// backoff up to the policy's attempts; a 401 goes to `on_401`, which either asks
    /// for another try (`None`, once) or makes it the answer (`Some`).
    pub fn run(
        &self,
        what: &str,
        once: impl FnMut() -> Result<Net<Resp>>,
        on_401: impl FnMut(Resp) -> Result<Option<Resp>>,
    ) -> Result<Resp> {
        self.run_counted(what, &Tries::default(), once, on_401)
    }

    /// [`Client::run`] counting failures in `tries`, which the operation this request
    /// serves shares with its other retry loops: one sequence of attempts, one bound.
    pub fn run_counted(
        &self,
        what: &str,
        tries: &Tries,
        mut once: impl FnMut() -> Result<Net<Resp>>,
        mut on_401: impl FnMut(Resp) -> Result<Option<Resp>>,
    ) -> Result<Resp> {
        let max = self.opts.retry.attempts.max(1);
        loop {
            match self.judge(what, once()?) {
                Verdict::Done(r) => return Ok(r),
                Verdict::Unauthorized(r) => match on_401(r)? {
                    Some(r) => return Ok(r),
                    None => continue,
                },
                Verdict::Retry { why, after } => {
                    let failed = tries.fail();
                    if failed >= max {
                        return Err(Error::Registry(format!(
                            "{what}: {why}, still failing after {}",
                            super::attempts(failed)
                        )));
                    }
                    self.backoff(what, &why, failed, after);
                }
                Verdict::Fail(e) => return Err(e),
            }
        }
    }

    /// A request to the registry with credentials for `scopes`, retried, and
    /// re-authenticated once on 401. Returns the final response whatever its status.
    pub fn request(
        &self,
        what: &str,
        method: &str,
        url: &Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        scopes: &Scopes,
    ) -> Result<Resp> {
        self.request_counted(what, method, url, headers, body, scopes, &Tries::default())
    }

    /// [`Client::request`] counting failures in the operation's `tries`.
    #[allow(clippy::too_many_arguments)]
    pub fn request_counted(
        &self,
        what: &str,
        method: &str,
        url: &Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        scopes: &Scopes,
        tries: &Tries,
    ) -> Result<Resp> {
        let mut scopes = scopes.clone();
        let mut reauthed = false;
        let scopes_cell = std::cell::RefCell::new(&mut scopes);
        self.run_counted(
            what,
            tries,
            || {
                let authz = self.authorization(&scopes_cell.borrow())?;
                let body = body.map_or(Body::Empty, Body::Bytes);
                Ok(self.send_raw(method, url, headers, body, authz.as_deref()))
            },
            |resp| {
                if reauthed {
                    return Ok(Some(resp));
                }
                reauthed = true;
                self.reauthorize(&resp, &mut scopes_cell.borrow_mut())?;
                Ok(None)
            },
        )
    }

    /// The `Authorization` value for `scopes`, fetching a token when the registry
    /// uses Bearer auth and none is cached.
    pub fn authorization(&self, scopes: &Scopes) -> Result<Option<String>> {
        self.base()?;
        let challenge = lock(&self.ready).as_ref().and_then(|(_, c)| c.clone());
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => match self.creds()?.creds {
                Some(Creds::Basic { user, pass }) => {
                    let v = http_auth::basic::encode_credentials(&user, &pass.0);
                    self.remember_secret(&v);
                    Ok(Some(v))
                }
                Some(Creds::IdentityToken(_)) => Err(Error::Registry(format!(
                    "{} asks for a user name and password, but the credentials found are an identity token",
                    self.host
                ))),
                None => Ok(None),
            },
            Some(Challenge::Bearer {
                realm, service, ..
            }) => {
                let key = scopes.key();
                let cached = || {
                    lock(&self.tokens)
                        .get(&key)
                        .filter(|t| t.expires > Instant::now())
                        .map(|t| format!("Bearer {}", t.value.0))
                };
                if let Some(v) = cached() {
                    return Ok(Some(v));
                }
                let _one_at_a_time = lock(&self.handshake);
                if let Some(v) = cached() {
                    return Ok(Some(v));
                }
                let (token, ttl) = self.fetch_token(&realm, service.as_deref(), scopes)?;
                // Renew a little early so a token does not expire mid-request; no
                // command outlives a day, whatever a token server says (a huge
                // `expires_in` overflowed the clock and panicked).
                let ttl = Duration::from_secs(ttl.saturating_sub(10).clamp(1, 86_400));
                lock(&self.tokens).insert(
                    key,
                    Token {
                        value: Secret(token.clone()),
                        expires: Instant::now() + ttl,
                    },
                );
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// After a 401: reads the new challenge, widens the scopes if the registry named
    /// one, and drops the cached token so the next attempt fetches a fresh one.
    pub fn reauthorize(&self, resp: &Resp, scopes: &mut Scopes) -> Result<()> {
        let Some(challenge) = auth::parse_challenges(header_all(resp, "www-authenticate")) else {
            return Err(self.unauthorized());
        };
        if let Challenge::Bearer { scope: Some(s), .. } = &challenge {
            for one in s.split(' ').filter(|s| !s.is_empty()) {
                scopes.add(one);
            }
        }
        if challenge == Challenge::Basic && self.creds()?.creds.is_none() {
            return Err(self.unauthorized());
        }
        if let Some((_, c)) = lock(&self.ready).as_mut() {
            *c = Some(challenge);
        }
        lock(&self.tokens).clear();
        Ok(())
    }

    /// The error for a registry that refused the credentials (or their absence).
    pub fn unauthorized(&self) -> Error {
        let advice = self
            .creds()
            .map(|f| f.advice(&self.host, self.opts.creds_flags))
            .unwrap_or_else(|e| e.to_string());
        Error::Registry(format!("unauthorized: {advice}"))
    }

    fn creds(&self) -> Result<Found> {
        if let Some(f) = &*lock(&self.found) {
            return Ok(f.clone());
        }
        let f = auth::lookup(
            &self.host,
            &self.repo,
            self.opts.creds.as_ref(),
            self.opts.authfile.as_deref(),
        )?;
        if let Some(c) = &f.creds {
            for s in c.secrets() {
                self.remember_secret(&s);
            }
        }
        *lock(&self.found) = Some(f.clone());
        Ok(f)
    }

    /// Asks the token server for a token covering `scopes`: with an identity token by
    /// the OAuth2 refresh grant, else a GET with Basic credentials (or anonymously).
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &Scopes,
    ) -> Result<(String, u64)> {
        let base = self.base()?;
        let realm_url = Url::parse(realm).map_err(|_| {
            Error::Registry(format!(
                "{} named an invalid token server {:?}",
                self.host,
                redact(realm)
            ))
        })?;
        self.check_target(&base, &realm_url, "token server")?;
        let creds = self.creds()?;
        let what = format!("getting a token from {}", redact(realm));
        let resp = match &creds.creds {
            Some(Creds::IdentityToken(t)) => {
                let mut form = format!(
                    "grant_type=refresh_token&client_id=nobase&refresh_token={}",
                    net::encode_query(&t.0)
                );
                if let Some(s) = service {
                    form.push_str(&format!("&service={}", net::encode_query(s)));
                }
                form.push_str(&format!(
                    "&scope={}",
                    net::encode_query(&scopes.list().join(" "))
                ));
                let headers = [(
                    "content-type",
                    "application/x-www-form-urlencoded".to_string(),
                )];
                self.run(
                    &what,
                    || {
                        Ok(self.send_token_request(
                            "POST",
                            &realm_url,
                            &headers,
                            Body::Bytes(form.as_bytes()),
                            None,
                        ))
                    },
                    |r| Ok(Some(r)),
                )?
            }
            other => {
                let mut url = realm_url.clone();
                if let Some(s) = service {
                    url = url.with_query("service", s);
                }
                for s in scopes.list() {
                    url = url.with_query("scope", s);
                }
                let basic = match other {
                    Some(Creds::Basic { user, pass }) => {
                        url = url.with_query("account", user);
                        let v = http_auth::basic::encode_credentials(user, &pass.0);
                        self.remember_secret(&v);
                        Some(v)
                    }
                    _ => None,
                };
                self.run(
                    &what,
                    || Ok(self.send_token_request("GET", &url, &[], Body::Empty, basic.as_deref())),
                    |r| Ok(Some(r)),
                )?
            }
        };
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Error::Registry(format!(
                "unauthorized: the token server for {} refused: {}",
                self.host,
                creds.advice(&self.host, self.opts.creds_flags)
            )));
        }
        if !(200..300).contains(&status) {
            let (detail, _) = self.error_detail(resp);
            return Err(Error::Registry(format!("{what}: HTTP {status}{detail}")));
        }
        let bytes = read_capped(resp, MAX_TOKEN_BODY, self.opts.io_timeout)
            .map_err(|e| Error::Registry(format!("{what}: {e}")))?;
        let parsed: auth::TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|_| Error::Registry(format!("{what}: the answer is not a token response")))?;
        let (token, ttl) = parsed
            .token()
            .ok_or_else(|| Error::Registry(format!("{what}: the answer holds no token")))?;
        self.remember_secret(&token);
        Ok((token, ttl))
    }

    /// A token request: credentials are sent to the token server (it is the one that
    /// checks them), so it goes through the same checks as the registry itself.
    fn send_token_request(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, String)],
        body: Body<'_>,
        authorization: Option<&str>,
    ) -> Net<Resp> {
        let mut h: Vec<(&str, String)> = headers.to_vec();
        if let Some(a) = authorization {
            h.push(("authorization", a.to_string()));
        }
        self.send_raw(method, url, &h, body, None)
    }

    /// Refuses a token realm, redirect or upload location that goes somewhere it must
    /// not: from HTTPS to plain HTTP, to a link-local or metadata address, or from a
    /// public registry to a loopback or private one.
    pub fn check_target(&self, base: &Url, target: &Url, kind: &str) -> Result<()> {
        let refuse = |why: &str| {
            Err(Error::Registry(format!(
                "{} sent nobase to a {kind} at {}, which is refused: {why}",
                self.host,
                redact(&target.to_string())
            )))
        };
        if base.scheme == "https" && target.scheme != "https" && !self.opts.tls.insecure {
            return refuse("it downgrades HTTPS to plain HTTP");
        }
        let from = classify(&base.authority);
        let to = classify(&target.authority);
        match to {
            HostClass::Forbidden => {
                refuse("link-local, unspecified and metadata addresses are never contacted")
            }
            HostClass::Loopback | HostClass::Private if from == HostClass::Public => {
                refuse("a public registry may not send requests to loopback or private addresses")
            }
            // Plain HTTP only for loopback or with --insecure, for every host a registry
            // sends nobase to as for the registry itself: a token server gets
            // credentials.
            _ if target.scheme != "https" && to != HostClass::Loopback && !self.opts.tls.insecure => {
                refuse("plain HTTP is allowed only to loopback addresses (or with --insecure), and credentials would travel unencrypted")
            }
            _ => Ok(()),
        }
    }

    /// GET of a registry path that may redirect (blobs live in object storage on many
    /// registries): each hop is checked, and credentials go only to the registry.
    /// Failures count in the operation's `tries`.
    pub fn get_following(
        &self,
        what: &str,
        url: &Url,
        headers: &[(&str, String)],
        scopes: &Scopes,
        tries: &Tries,
    ) -> Result<Resp> {
        let base = self.base()?;
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let resp = if base.same_origin(&url) {
                self.request_counted(what, "GET", &url, headers, None, scopes, tries)?
            } else {
                self.run_counted(
                    what,
                    tries,
                    || Ok(self.send_raw("GET", &url, headers, Body::Empty, None)),
                    |r| Ok(Some(r)),
                )?
            };
            let status = resp.status().as_u16();
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                return Ok(resp);
            }
            let loc = header(&resp, "location").ok_or_else(|| {
                Error::Registry(format!("{what}: redirect {status} without a Location"))
            })?;
            let next = url.join(loc)?;
            self.check_target(&url, &next, "redirect")?;
            url = next;
        }
        Err(Error::Registry(format!(
            "{what}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// An error for a final non-success answer: the registry's own error codes and
    /// messages (capped, scrubbed), with advice for 401 and 403.
    pub fn status_error(&self, what: &str, resp: Resp) -> Error {
        let status = resp.status().as_u16();
        let (detail, storage) = self.error_detail(resp);
        match status {
            // The caller adds what was being done; "unauthorized" says all there is.
            401 => self.unauthorized(),
            // An object store's answer (S3, GCS, Azure speak XML): the registry sent the
            // download to a signed link that was refused; no credential of ours was used.
            403 if storage => Error::Registry(format!(
                "{what}: denied{detail} by the storage {} sent the download to (a signed link \
                 that expired or that its storage refuses; not a matter of your credentials)",
                self.host
            )),
            403 => {
                let origin = self.creds().map(|f| f.origin).unwrap_or_default();
                Error::Registry(format!(
                    "{what}: denied{detail}: the credentials for {} ({origin}) do not allow it",
                    self.host
                ))
            }
            _ => Error::Registry(format!("{what}: HTTP {status}{detail}")),
        }
    }

    /// `: CODE: message; …` from a registry error body, or nothing; true when the body is
    /// an object store's XML error (of which only `Code` and `Message` are shown: the
    /// rest echoes the request, key ids included).
    fn error_detail(&self, resp: Resp) -> (String, bool) {
        #[derive(serde::Deserialize)]
        struct Errors {
            errors: Vec<One>,
        }
        #[derive(serde::Deserialize)]
        struct One {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let Ok(bytes) = read_capped(resp, MAX_ERROR_BODY, self.opts.io_timeout) else {
            return (String::new(), false);
        };
        let body = String::from_utf8_lossy(&bytes);
        let xml = body.trim_start().starts_with('<');
        let text = match serde_json::from_slice::<Errors>(&bytes) {
            Ok(e) if !e.errors.is_empty() => e
                .errors
                .iter()
                .take(3)
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            _ if xml => ["Code", "Message"]
                .iter()
                .filter_map(|tag| xml_text(&body, tag))
                .collect::<Vec<_>>()
                .join(": "),
            _ => body.lines().next().unwrap_or("").to_string(),
        };
        let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        let detail = if text.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", self.scrub(text.trim().to_string()))
        };
        (detail, xml)
    }

    fn remember_secret(&self, s: &str) {
        // Very short strings would blank ordinary words; such secrets are not worth
        // protecting this way anyway.
        if s.len() >= 4 {
            let mut v = lock(&self.secrets);
            if !v.iter().any(|x| x == s) {
                v.push(s.to_string());
            }
        }
    }

    /// Replaces every known secret in `s`.
    pub fn scrub(&self, mut s: String) -> String {
        for secret in lock(&self.secrets).iter() {
            if s.contains(secret.as_str()) {
                s = s.replace(secret.as_str(), "…");
            }
        }
        s
    }
}

/// Locks a mutex, recovering the data if another thread panicked with it held (the
/// protected values are caches that stay consistent).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A response header as text.
pub fn header<'a>(resp: &'a Resp, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Every value of a header.
pub fn header_all<'a>(resp: &'a Resp, name: &str) -> impl Iterator<Item = &'a str> {
    resp.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

/// The text of the first `<tag>…</tag>` of an XML error body.
fn xml_text<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let len = body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..start + len].trim()).filter(|t| !t.is_empty())
}

/// An answer's body, which must move at least as fast as [`net::RateGuard`] asks after
/// `grace` (the I/O timeout).
pub fn guarded_body(resp: Resp, grace: Duration) -> Box<dyn Read + Send> {
    Box::new(net::RateGuard::new(resp.into_body().into_reader(), grace))
}

/// A whole answer body of at most `cap` bytes, moving as [`guarded_body`] asks.
pub fn read_capped(resp: Resp, cap: u64, grace: Duration) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    guarded_body(resp, grace)
        .take(cap + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the answer is larger than {cap} bytes"),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realms_redirects_and_locations_are_checked() {
        let opts = Options::default();
        let public = Client::new("registry.example", "a", &opts).unwrap();
        let https = Url::parse("https://registry.example").unwrap();
        let ok = |c: &Client, base: &Url, t: &str| {
            c.check_target(base, &Url::parse(t).unwrap(), "token server")
                .is_ok()
        };
        assert!(ok(&public, &https, "https://auth.example/token"));
        assert!(
            !ok(&public, &https, "http://auth.example/token"),
            "scheme downgrade"
        );
        assert!(!ok(&public, &https, "https://169.254.169.254/latest"));
        assert!(!ok(&public, &https, "https://[fe80::1]/x"));
        assert!(!ok(&public, &https, "https://0.0.0.0/x"));
        assert!(!ok(&public, &https, "https://metadata.google.internal/x"));
        assert!(
            !ok(&public, &https, "https://127.0.0.1:5000/x"),
            "public to loopback"
        );
        assert!(
            !ok(&public, &https, "https://10.0.0.1/x"),
            "public to private"
        );
        let local = Client::new("127.0.0.1:5000", "a", &opts).unwrap();
        let http = Url::parse("http://127.0.0.1:5000").unwrap();
        assert!(ok(&local, &http, "http://127.0.0.1:6000/token"));
        assert!(!ok(&local, &http, "http://169.254.169.254/token"));
        // Other spellings of forbidden and loopback addresses (inet_aton's), which the
        // resolver connects to as those addresses.
        for t in [
            "http://0:6000/token",
            "http://0x0:6000/token",
            "http://2852039166/x",
        ] {
            assert!(!ok(&local, &http, t), "{t}");
        }
        for t in [
            "https://2130706433:5599/x",
            "https://0x7f.1:5599/x",
            "https://127.1/x",
        ] {
            assert!(!ok(&public, &https, t), "public to loopback: {t}");
        }
        // A loopback registry may speak plain HTTP; its token server elsewhere may not
        // (credentials would cross the network in clear), unless --insecure.
        assert!(!ok(&local, &http, "http://192.0.2.2:5598/token"));
        assert!(ok(&local, &http, "https://192.0.2.2:5598/token"));
        let insecure = Options {
            tls: super::super::net::TlsOptions {
                insecure: true,
                ..super::super::net::TlsOptions::default()
            },
            ..Options::default()
        };
        let local_insecure = Client::new("127.0.0.1:5000", "a", &insecure).unwrap();
        assert!(ok(&local_insecure, &http, "http://192.0.2.2:5598/token"));
        // A registry on a forbidden address is never contacted at all.
        assert!(Client::new("169.254.169.254", "a", &opts).is_err());
        assert!(Client::new("0x0:5000", "a", &opts).is_err());
    }

    #[test]
    fn secrets_are_scrubbed_from_messages() {
        let opts = Options {
            creds: Some(super::super::parse_user_pass("u:hunter2-pw", "--creds").unwrap()),
            ..Options::default()
        };
        let c = Client::new("r.example", "a", &opts).unwrap();
        c.remember_secret("tok-123456");
        assert_eq!(
            c.scrub("denied: hunter2-pw and tok-123456".into()),
            "denied: … and …"
        );
    }
}
