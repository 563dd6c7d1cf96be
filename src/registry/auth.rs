//! Registry credentials and challenges: where a user's credentials come from
//! (`--creds`, `--creds-file`, Docker's `config.json` with `auths`, `credHelpers`,
//! `credsStore` and identity tokens), what a registry's `WWW-Authenticate` asks for, and
//! token scopes. The HTTP exchanges themselves are in `client`.

use crate::error::{Error, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret string: its `Debug` never shows it, so no `{:?}` of an options struct can
/// leak it into a message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Creds {
    /// A user name and password (or personal access token).
    Basic {
        /// User name.
        user: String,
        /// Password.
        pass: Secret,
    },
    /// An identity (refresh) token from `docker login` with an OAuth2 registry.
    IdentityToken(Secret),
}

impl Creds {
    /// The secret strings in these credentials, for scrubbing messages.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Creds::Basic { pass, .. } => vec![pass.0.clone()],
            Creds::IdentityToken(t) => vec![t.0.clone()],
        }
    }
}

/// Credentials the user gave on the command line, with where they came from.
#[derive(Clone, Debug)]
pub struct GivenCreds {
    /// The credentials.
    pub creds: Creds,
    /// `--creds` or `--creds-file /path`, for messages.
    pub origin: String,
    /// The one registry they are for, when the command knows it (a build's output
    /// registry): other hosts (a Dockerfile's FROM images elsewhere) never get them.
    pub host: Option<String>,
}

/// Parses `USER:PASS` (the password may contain `:`).
pub fn parse_user_pass(s: &str, origin: &str) -> Result<GivenCreds> {
    let s = s.trim_end_matches(['\r', '\n']);
    match s.split_once(':') {
        Some((user, pass)) if !user.is_empty() && !pass.is_empty() => Ok(GivenCreds {
            creds: Creds::Basic {
                user: user.to_string(),
                pass: Secret(pass.to_string()),
            },
            origin: origin.to_string(),
            host: None,
        }),
        // The value itself is never echoed: it is (part of) a password.
        _ => Err(Error::Usage(format!(
            "{origin}: expected USER:PASSWORD with both parts non-empty"
        ))),
    }
}

/// Reads `--creds-file FILE` (or whichever `flag` named it): its first line is
/// `USER:PASS`. A file keeps the password out of the process list and shell history.
pub fn read_creds_file(path: &Path, flag: &str) -> Result<GivenCreds> {
    let origin = format!("{flag} {}", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::input_error(path, &format!("the {flag}"), e))?;
    parse_user_pass(text.lines().next().unwrap_or(""), &origin)
}

/// Docker's client config file: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = env_path("DOCKER_CONFIG") {
        return Some(d.join("config.json"));
    }
    env_path("HOME").map(|h| h.join(".docker").join("config.json"))
}

/// A non-empty path from the environment.
fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A file credentials are looked up in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredFile {
    /// Its path.
    pub path: PathBuf,
    /// Docker's own config, which files Docker Hub under its historic key; the
    /// containers' auth.json files it as `docker.io`.
    pub docker: bool,
    /// Named by the user (`--authfile`, `$REGISTRY_AUTH_FILE`): one that cannot be read
    /// is an error, where a usual place that cannot be read is passed over.
    pub named: bool,
}

/// Where credentials are looked for, in the order skopeo and podman read them
/// (containers-auth.json(5)): a file the user named (`--authfile`, else
/// `$REGISTRY_AUTH_FILE`) alone; otherwise the containers' `auth.json` that `skopeo
/// login` and `podman login` write (`$XDG_RUNTIME_DIR/containers/auth.json`, else
/// `/run/containers/UID/auth.json`), then `$XDG_CONFIG_HOME/containers/auth.json` (else
/// `~/.config/…`), then Docker's `config.json` that `docker login` writes.
pub fn credential_files(authfile: Option<&Path>) -> Vec<CredFile> {
    let file = |path: PathBuf, docker: bool| CredFile {
        path,
        docker,
        named: false,
    };
    if let Some(f) = authfile
        .map(Path::to_path_buf)
        .or_else(|| env_path("REGISTRY_AUTH_FILE"))
    {
        return vec![CredFile {
            named: true,
            ..file(f, false)
        }];
    }
    let primary = match env_path("XDG_RUNTIME_DIR") {
        Some(d) => d.join("containers/auth.json"),
        // SAFETY: getuid has no preconditions.
        None => PathBuf::from(format!("/run/containers/{}/auth.json", unsafe {
            libc::getuid()
        })),
    };
    let mut files = vec![file(primary, false)];
    let config_home =
        env_path("XDG_CONFIG_HOME").or_else(|| env_path("HOME").map(|h| h.join(".config")));
    if let Some(d) = config_home {
        files.push(file(d.join("containers/auth.json"), false));
    }
    if let Some(d) = docker_config_path() {
        files.push(file(d, true));
    }
    files
}

/// The key Docker files a registry's credentials under (`docker login HOST`); Docker
/// Hub's is historic.
pub fn config_key(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".to_string()
        }
        h => h.to_string(),
    }
}

/// The key the containers' auth.json files a registry under (`skopeo login HOST`).
fn auth_json_key(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

/// Credentials found (or not) for a registry, and a phrase saying where from.
#[derive(Clone, Debug)]
pub struct Found {
    /// The credentials, if any.
    pub creds: Option<Creds>,
    /// Where they came from (`in /root/.docker/config.json`, `given with --creds`), or
    /// why there are none (`/root/.docker/config.json has no entry for HOST`).
    pub origin: String,
}

impl Found {
    /// The advice for a registry that refused: which credentials to check, or how to
    /// give some (with `flags`, the options that would give them here).
    pub fn advice(&self, host: &str, flags: &str) -> String {
        match self.creds {
            Some(_) => format!("check the credentials for {host} {}", self.origin),
            None => format!(
                "{host} needs credentials and none were found ({}); log in with `docker login {host}` or `skopeo login {host}`, or pass {flags}",
                self.origin
            ),
        }
    }
}

/// The program Docker's config at `path` names for `key` (`credHelpers`, else
/// `credsStore`), for messages.
fn helper_named(path: &std::path::Path, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let name = v["credHelpers"][key]
        .as_str()
        .or_else(|| v["credsStore"].as_str())?;
    Some(format!("docker-credential-{name}"))
}

/// Keys of a credentials file's `auths` (`doc`, parsed) that name repositories or
/// namespaces of `host` (`HOST/team`, `HOST/team/app`), which auth.json allows
/// (containers-auth.json(5)).
fn namespaced_keys(doc: &serde_json::Value, host: &str) -> Vec<String> {
    let prefix = format!("{}/", auth_json_key(host));
    let mut keys: Vec<String> = doc["auths"]
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The most specific of `keys` that covers `repo` of `host`, as skopeo and podman pick
/// it: `HOST/team/app`, then `HOST/team`, for the repository `team/app`.
fn covering_key(keys: &[String], host: &str, repo: &str) -> Option<String> {
    let full = format!("{}/{repo}", auth_json_key(host));
    keys.iter()
        .filter(|k| {
            full.strip_prefix(k.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .max_by_key(|k| k.len())
        .cloned()
}

/// Looks up the credentials for the repository `repo` of `host`: those given on the
/// command line for the host, else those of the first of [`credential_files`] (with
/// `authfile`, the one the user named) that has an entry for the repository (an
/// auth.json's `HOST/NAMESPACE` keys, the most specific first) or the host. Credential
/// helpers run only here, and only when a registry asked for authentication.
pub fn lookup(
    host: &str,
    repo: &str,
    given: Option<&GivenCreds>,
    authfile: Option<&Path>,
) -> Result<Found> {
    if let Some(g) = given.filter(|g| g.host.as_deref().is_none_or(|h| h == host)) {
        return Ok(Found {
            creds: Some(g.creds.clone()),
            origin: format!("given with {}", g.origin),
        });
    }
    let files = credential_files(authfile);
    let mut missing = Vec::new();
    let mut without = Vec::new();
    let mut namespaced = Vec::new();
    let mut unreadable = Vec::new();
    for f in &files {
        match lookup_in(host, repo, f)? {
            Lookup::Found(found) => return Ok(found),
            Lookup::Missing => missing.push(f.path.display().to_string()),
            Lookup::Unreadable(why) => unreadable.push(format!("{} ({why})", f.path.display())),
            Lookup::NoEntry(others) => {
                without.push(f.path.display().to_string());
                namespaced.extend(others);
            }
        }
    }
    let mut origin = match (without.len(), missing.len()) {
        (0, 0) if unreadable.is_empty() => "no file to look in: HOME is not set".to_string(),
        (0, 0) => "no credentials file could be read".to_string(),
        (0, 1) => format!("{} does not exist", missing[0]),
        (0, _) => format!("none of {} exists", missing.join(", ")),
        (1, _) => format!("{} has no entry for {host}", without[0]),
        _ => format!("none of {} has an entry for {host}", without.join(", ")),
    };
    if !unreadable.is_empty() {
        origin.push_str(&format!(
            "; passed over, unreadable: {}",
            unreadable.join(", ")
        ));
    }
    if !namespaced.is_empty() {
        origin.push_str(&format!(
            "; the entries for other repositories ({}) do not cover {host}/{repo}",
            namespaced.join(", ")
        ));
    }
    Ok(Found {
        creds: None,
        origin,
    })
}

/// What one credentials file holds for a registry.
enum Lookup {
    Found(Found),
    Missing,
    /// No entry covers the repository; an auth.json's entries for other repositories of
    /// the registry, for the message.
    NoEntry(Vec<String>),
    /// A usual place that cannot be read (permissions): the others are still read.
    Unreadable(String),
}

fn lookup_in(host: &str, repo: &str, file: &CredFile) -> Result<Lookup> {
    let path = &file.path;
    // Read once: the keys are chosen from it, and the crate reads the same bytes.
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::Missing),
        Err(e) if !file.named => return Ok(Lookup::Unreadable(e.to_string())),
        Err(e) => {
            return Err(Error::Registry(format!(
                "reading credentials from {}: {e}",
                path.display()
            )))
        }
    };
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    // Docker's config.json has one entry a registry. An auth.json may have one for a
    // namespace or repository, which then wins for it, unless a credential helper is
    // named for the registry, which comes first, as in skopeo. (A file that is no JSON
    // is the crate's to refuse, below.)
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let namespaced = match file.docker {
        true => Vec::new(),
        false => namespaced_keys(&doc, host),
    };
    let key = match doc["credHelpers"][auth_json_key(host)].is_string() || file.docker {
        true => own_key(file, host),
        false => covering_key(&namespaced, host, repo).unwrap_or_else(|| own_key(file, host)),
    };
    let shown = path.display();
    match docker_credential::get_credential_from_reader(bytes.as_slice(), &key) {
        Ok(DockerCredential::UsernamePassword(user, pass)) => Ok(Lookup::Found(Found {
            creds: Some(Creds::Basic {
                user,
                pass: Secret(pass),
            }),
            origin: format!("in {shown}{}", entry(&key, &own_key(file, host))),
        })),
        Ok(DockerCredential::IdentityToken(t)) => Ok(Lookup::Found(Found {
            creds: Some(Creds::IdentityToken(Secret(t))),
            origin: format!(
                "in {shown}{} (identity token)",
                entry(&key, &own_key(file, host))
            ),
        })),
        Err(E::NoCredentialConfigured) => Ok(Lookup::NoEntry(namespaced)),
        // The helper's own output is not repeated: a failing helper may print what
        // it was given.
        Err(E::HelperFailure { helper, .. }) => Err(Error::Registry(format!(
            "the credential helper {helper} named in {shown} failed for {key}; run `{helper} get` to see why"
        ))),
        Err(E::HelperCommunicationError) => {
            let helper = helper_named(path, &key).unwrap_or_else(|| "docker-credential-…".into());
            // The crate says the same whether the helper is missing or failed.
            Err(Error::Registry(match crate::fsutil::on_path(&helper) {
                Some(at) => format!(
                    "the credential helper {helper} ({}) named in {shown} gave no credentials for {key} (it failed, or answered something else); run `echo {key} | {helper} get` to see why",
                    at.display()
                ),
                None => format!(
                    "could not run the credential helper {helper} named in {shown} for {key}: it is not on PATH"
                ),
            }))
        }
        Err(E::ConfigReadError) => Err(Error::Registry(format!(
            "{shown} is not a valid credentials file (JSON with \"auths\", as docker login and skopeo login write)"
        ))),
        Err(e) => Err(Error::Registry(format!(
            "credentials for {key} in {shown}: {e}"
        ))),
    }
}

/// For a message: the entry credentials came from, when it is not the registry's own
/// (`own`).
fn entry(key: &str, own: &str) -> String {
    match key == own {
        true => String::new(),
        false => format!(" (the entry {key})"),
    }
}

/// The key `file` keeps the registry's own credentials under.
fn own_key(file: &CredFile, host: &str) -> String {
    match file.docker {
        true => config_key(host),
        false => auth_json_key(host),
    }
}

/// Token scopes for one series of requests: `repository:NAME:ACTIONS`, sorted and
/// deduplicated so equal sets share a cached token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Pull access to one repository.
    pub fn pull(repo: &str) -> Scopes {
        Scopes(vec![format!("repository:{repo}:pull")])
    }

    /// Push and pull access to `repo`, and pull access to each repository blobs may
    /// be mounted from (the registry checks both sides of a mount).
    pub fn push(repo: &str, mount_from: &[String]) -> Scopes {
        let mut s = Scopes(vec![format!("repository:{repo}:pull,push")]);
        for m in mount_from {
            if m != repo {
                s.add(&format!("repository:{m}:pull"));
            }
        }
        s
    }

    /// Adds a scope (as a registry's challenge names it).
    pub fn add(&mut self, scope: &str) {
        if !self.0.iter().any(|s| s == scope) {
            self.0.push(scope.to_string());
            self.0.sort();
        }
    }

    /// The scopes, for the token request.
    pub fn list(&self) -> &[String] {
        &self.0
    }

    /// A cache key.
    pub fn key(&self) -> String {
        self.0.join(" ")
    }
}

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// Credentials on every request.
    Basic,
    /// A token from `realm`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter.
        service: Option<String>,
        /// The scope the failed request needed, if the registry said.
        scope: Option<String>,
        /// `insufficient_scope`, `invalid_token`…
        error: Option<String>,
    },
}

/// Parses the `WWW-Authenticate` headers of a response; Bearer is preferred when a
/// registry offers both.
pub fn parse_challenges<'a>(headers: impl Iterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = false;
    for h in headers {
        let Ok(list) = http_auth::parse_challenges(h) else {
            continue;
        };
        for c in list {
            let param = |name: &str| {
                c.params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if c.scheme.eq_ignore_ascii_case("bearer") {
                if let Some(realm) = param("realm") {
                    return Some(Challenge::Bearer {
                        realm,
                        service: param("service"),
                        scope: param("scope"),
                        error: param("error"),
                    });
                }
            } else if c.scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

/// A token server's answer.
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    /// Docker's field.
    #[serde(default)]
    pub token: Option<String>,
    /// OAuth2's field (the same token).
    #[serde(default)]
    pub access_token: Option<String>,
    /// Lifetime in seconds (60 when absent, as the spec says).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token, whichever field carries it.
    pub fn token(self) -> Option<(String, u64)> {
        let t = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        Some((t, self.expires_in.unwrap_or(60).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let c = parse_challenges(
            [r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope""#]
                .into_iter(),
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull,push".into()),
                error: Some("insufficient_scope".into()),
            })
        );
        assert_eq!(
            parse_challenges([r#"Basic realm="Registry Realm""#].into_iter()),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenges(["garbage ,,"].into_iter()), None);
        assert_eq!(parse_challenges(std::iter::empty()), None);
    }

    #[test]
    fn user_pass_parses_without_echoing() {
        let g = parse_user_pass("u:p:w\n", "--creds").unwrap();
        assert_eq!(
            g.creds,
            Creds::Basic {
                user: "u".into(),
                pass: Secret("p:w".into())
            }
        );
        for bad in ["nopass", ":p", "u:"] {
            let e = parse_user_pass(bad, "--creds").unwrap_err().to_string();
            assert!(!e.contains(bad) || bad.len() < 3, "{e}");
        }
        assert!(!format!("{g:?}").contains("p:w"));
    }

    #[test]
    fn scopes_dedupe_and_sort() {
        let mut s = Scopes::push("b", &["a".into(), "b".into()]);
        s.add("repository:a:pull");
        assert_eq!(s.key(), "repository:a:pull repository:b:pull,push");
    }

    #[test]
    fn the_most_specific_auth_json_entry_covers_a_repository() {
        let keys: Vec<String> = ["r.example/team", "r.example/team/app", "r.example/teamx"]
            .map(String::from)
            .to_vec();
        let pick = |repo| covering_key(&keys, "r.example", repo);
        assert_eq!(pick("team/app").as_deref(), Some("r.example/team/app"));
        assert_eq!(pick("team/app2").as_deref(), Some("r.example/team"));
        assert_eq!(pick("team/app/x").as_deref(), Some("r.example/team/app"));
        // At a component boundary only: `teamx` does not cover `team`, nor `team` `teamy`.
        assert_eq!(pick("teamy/app"), None);
        assert_eq!(pick("other"), None);
        // Docker Hub's repositories are under docker.io in auth.json, whatever host.
        let hub = vec!["docker.io/library".to_string()];
        assert_eq!(
            covering_key(&hub, "registry-1.docker.io", "library/alpine").as_deref(),
            Some("docker.io/library")
        );
    }

    #[test]
    fn a_registrys_credential_helper_comes_before_a_namespace_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(
            &path,
            r#"{"auths":{"r.example/team":{"auth":"dTpw"}},"credHelpers":{"r.example":"nobase-test-absent"}}"#,
        )
        .unwrap();
        let file = CredFile {
            path,
            docker: false,
            named: true,
        };
        // As skopeo: the helper is asked (here it is not there), not the `auths` entry.
        let Err(e) = lookup_in("r.example", "team/app", &file) else {
            panic!("the namespace entry was used");
        };
        assert!(
            e.to_string()
                .contains("docker-credential-nobase-test-absent"),
            "{e}"
        );
        // The registry's own key is no "entry" in a message; another key is.
        assert_eq!(
            entry(&config_key("docker.io"), &config_key("docker.io")),
            ""
        );
        assert_eq!(
            entry("r.example/team", "r.example"),
            " (the entry r.example/team)"
        );
    }

    #[test]
    fn docker_config_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        // "u:secret" and an identity token for another host.
        std::fs::write(
            &cfg,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"dTpzZWNyZXQ="},"r.example":{"auth":"dTo=","identitytoken":"idt"}}}"#,
        )
        .unwrap();
        let read = |host: &str| {
            let f = std::fs::File::open(&cfg).unwrap();
            docker_credential::get_credential_from_reader(f, &config_key(host))
        };
        assert_eq!(
            read("127.0.0.1:5000").unwrap(),
            docker_credential::DockerCredential::UsernamePassword("u".into(), "secret".into())
        );
        assert_eq!(
            read("r.example").unwrap(),
            docker_credential::DockerCredential::IdentityToken("idt".into())
        );
        assert!(read("other").is_err());
    }
}
