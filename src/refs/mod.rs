//! Image references, parsed once into a typed value (DESIGN.md's grammar):
//! `NAME[:TAG]` (local store), `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
//! `docker-archive:FILE[:NAME:TAG]`, `docker://HOST/REPO[:TAG|@DIGEST]`.

use crate::digest::Digest;
use crate::error::{Error, Result};
use std::fmt;
use std::path::PathBuf;

/// A name and tag in the local store (or a docker-archive's RepoTags).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NameTag {
    /// `hello`, `team/hello`, `registry.example.com/team/hello`.
    pub name: String,
    /// `latest` when not given.
    pub tag: String,
}

/// The transports nobase reads, written `TRANSPORT:PATH`.
const TRANSPORTS: [&str; 3] = ["oci", "oci-archive", "docker-archive"];

/// skopeo's other transports, named in a refusal rather than read.
const FOREIGN_TRANSPORTS: [&str; 6] = [
    "dir",
    "docker-daemon",
    "containers-storage",
    "ostree",
    "sif",
    "tarball",
];

impl NameTag {
    /// Parses `NAME[:TAG]`, validating both as Docker does (lowercase name components
    /// separated by `/`, tag of at most 128 characters).
    pub fn parse(s: &str) -> Result<NameTag> {
        let (name, tag) = match s.rfind(':') {
            Some(i) if !s[i..].contains('/') => (&s[..i], &s[i + 1..]),
            _ => (s, "latest"),
        };
        validate_name(name).map_err(|why| {
            Error::Usage(format!(
                "invalid image name {s:?}: {why} (names are lowercase letters, digits and . _ - separated by /, like team/hello:1)"
            ))
        })?;
        validate_tag(tag).map_err(|why| Error::Usage(format!("invalid tag in {s:?}: {why}")))?;
        // `oci:latest` means the layout directory `latest` (and `dir:latest` is refused as
        // skopeo's transport), so these names could never be referred to again.
        if TRANSPORTS.contains(&name) || FOREIGN_TRANSPORTS.contains(&name) {
            return Err(Error::Usage(format!(
                "invalid image name {s:?}: {name} is a transport name (as in {name}:PATH); choose another name"
            )));
        }
        // `sha256:HEX` names an image by its digest, so such a tag could never be
        // referred to again either.
        if name == "sha256" {
            return Err(Error::Usage(format!(
                "invalid image name {s:?}: sha256:… is a digest, which names an image the store has (`nobase tree {s}`); give NAME[:TAG] to name one"
            )));
        }
        Ok(NameTag {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl fmt::Display for NameTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

fn validate_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > 255 {
        return Err("the name is longer than 255 characters");
    }
    for (i, comp) in name.split('/').enumerate() {
        if comp.is_empty() {
            return Err("a path component is empty");
        }
        // The first component may be a registry host with a port.
        let host_ok = i == 0 && name.contains('/') && is_registry_host(comp);
        let ok = if host_ok {
            valid_host(comp)
        } else {
            valid_component(comp)
        };
        if !ok {
            return Err("it has characters that image names cannot have");
        }
    }
    Ok(())
}

/// Whether the first component of an image name is a registry host, as docker reads
/// it: it has a `.` or a `:`, or is `localhost`; otherwise the name is a Docker Hub path.
pub fn is_registry_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// An image name as docker expands it: `hello` is `docker.io/library/hello`, `team/app`
/// is `docker.io/team/app`, and a name starting with a registry host stays as it is.
pub fn docker_full_name(name: &str) -> String {
    match name.split_once('/') {
        Some((first, _)) if is_registry_host(first) => name.to_string(),
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    }
}

/// A path component as the distribution grammar has it: lowercase letters and digits,
/// runs of them joined by one `.`, one or two `_`, or any number of `-`
/// (`a___b` and `a..b` are not names, and registries refuse them).
fn valid_component(comp: &str) -> bool {
    let b = comp.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &comp[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// A registry host: DNS labels (letters, digits, `-`) joined by `.`, or `[IPv6]`, and an
/// optional port of digits.
fn valid_host(comp: &str) -> bool {
    let (host, port) = match comp.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || comp.starts_with('[') => (h, Some(p)),
        _ => (comp, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
    } else {
        !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    port_ok && host_ok
}

fn validate_tag(tag: &str) -> std::result::Result<(), &'static str> {
    if tag.is_empty() || tag.len() > 128 {
        return Err("a tag has 1 to 128 characters");
    }
    let b = tag.as_bytes();
    if !(b[0].is_ascii_alphanumeric() || b[0] == b'_')
        || !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
    {
        return Err("a tag is letters, digits, _ . - and does not start with . or -");
    }
    Ok(())
}

/// A registry reference: `docker://HOST/REPO[:TAG|@DIGEST]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    /// `registry.example.com`, `127.0.0.1:5000`.
    pub host: String,
    /// `team/hello`.
    pub repository: String,
    /// The tag, when no digest is given (`latest` by default).
    pub tag: Option<String>,
    /// A digest pin.
    pub digest: Option<Digest>,
}

impl RegistryRef {
    /// The tag or digest, as it appears in a manifest URL.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Any image reference nobase reads or writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// The local store.
    Store(NameTag),
    /// An image of the local store by its manifest digest, as `nobase images` shows it:
    /// `sha256:HEX` (a prefix of at least 4 digits, as Docker takes image IDs) or
    /// `NAME@sha256:HEX` (all 64, and NAME must be one of its names). Read only.
    StoreDigest {
        /// The repository name given before `@`, if any.
        name: Option<String>,
        /// Lowercase hex digits of the sha256 digest (all 64 with a name).
        prefix: String,
    },
    /// An OCI layout directory and optional ref name.
    Oci {
        /// The directory.
        dir: PathBuf,
        /// `org.opencontainers.image.ref.name`.
        reference: Option<String>,
    },
    /// A tar of an OCI layout.
    OciArchive {
        /// The tar file.
        file: PathBuf,
        /// `org.opencontainers.image.ref.name`.
        reference: Option<String>,
    },
    /// A `docker save` tarball.
    DockerArchive {
        /// The tar file.
        file: PathBuf,
        /// The RepoTag.
        name: Option<NameTag>,
    },
    /// A registry.
    Registry(RegistryRef),
}

impl ImageRef {
    /// The registry host of a `docker://` reference.
    pub fn registry_host(&self) -> Option<&str> {
        match self {
            ImageRef::Registry(r) => Some(&r.host),
            _ => None,
        }
    }

    /// Parses a reference in any of the forms above.
    pub fn parse(s: &str) -> Result<ImageRef> {
        let split = |rest: &str| -> (PathBuf, Option<String>) {
            match rest.split_once(':') {
                Some((p, r)) if !r.is_empty() => (PathBuf::from(p), Some(r.to_string())),
                Some((p, _)) => (PathBuf::from(p), None),
                None => (PathBuf::from(rest), None),
            }
        };
        let need_path = |p: &PathBuf, kind: &str| {
            if p.as_os_str().is_empty() {
                Err(Error::Usage(format!(
                    "{s:?}: {kind} needs a path, e.g. {kind}:./out"
                )))
            } else {
                Ok(())
            }
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, reference) = split(rest);
            need_path(&dir, "oci")?;
            Ok(ImageRef::Oci { dir, reference })
        } else if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, reference) = split(rest);
            need_path(&file, "oci-archive")?;
            Ok(ImageRef::OciArchive { file, reference })
        } else if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, name) = split(rest);
            need_path(&file, "docker-archive")?;
            let name = name.map(|n| NameTag::parse(&n)).transpose()?;
            Ok(ImageRef::DockerArchive { file, name })
        } else if let Some(rest) = s.strip_prefix("docker://") {
            parse_registry(rest).map(ImageRef::Registry)
        } else if s.starts_with('/') || s.starts_with("./") || s.starts_with("../") {
            Err(Error::Usage(format!(
                "{s} is a path, not an image reference: an OCI layout directory is oci:{s}, an archive oci-archive:{s} or docker-archive:{s}, and a program becomes an image with `nobase build {s}`"
            )))
        } else if let Some((t, _)) = s
            .split_once(':')
            .filter(|(t, _)| FOREIGN_TRANSPORTS.contains(t))
        {
            Err(Error::Usage(format!(
                "{s:?}: nobase does not read {t}: images; use NAME[:TAG], oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG] (skopeo copy turns the others into one of these)"
            )))
        } else if s.contains("://") {
            Err(Error::Usage(format!(
                "{s:?}: unknown transport; use NAME[:TAG], oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG]"
            )))
        } else if let Some(r) = store_digest(s) {
            r
        } else {
            NameTag::parse(s).map(ImageRef::Store)
        }
    }
}

/// `sha256:HEX…` or `NAME@sha256:HEX`, an image of the store by digest; `None` for
/// anything else (left to [`NameTag::parse`], whose errors then apply).
fn store_digest(s: &str) -> Option<Result<ImageRef>> {
    let (name, digest) = match s.split_once('@') {
        Some((n, d)) => (Some(n), d),
        None => (None, s),
    };
    let hex = digest.strip_prefix("sha256:")?;
    let hex_ok = !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    Some(match name {
        _ if !hex_ok => Err(Error::Usage(format!(
            "{s:?}: a digest is sha256: and up to 64 lowercase hex digits"
        ))),
        Some(n) => {
            if hex.len() != 64 {
                return Some(Err(Error::Usage(format!(
                    "{s:?}: NAME@sha256: takes all 64 digits of the digest (a prefix alone, sha256:{hex}, picks by digest without the name)"
                ))));
            }
            // `NAME:TAG@sha256:…` names the image by its digest; the tag, as in Docker,
            // is not checked.
            NameTag::parse(n).map(|t| ImageRef::StoreDigest {
                name: Some(t.name),
                prefix: hex.to_string(),
            })
        }
        None if hex.len() < 4 => Err(Error::Usage(format!(
            "{s:?}: give at least 4 digits of the digest"
        ))),
        None => Ok(ImageRef::StoreDigest {
            name: None,
            prefix: hex.to_string(),
        }),
    })
}

/// Whether text after an '@' reads as a digest (`ALGORITHM:…`, nothing after it
/// containing '/'): the digest is then checked as one, not taken for credentials.
fn starts_digest(after: &str) -> bool {
    match after.split_once(':') {
        Some((alg, rest)) => {
            !alg.is_empty()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'_' | b'-'))
                && !rest.contains('/')
        }
        None => false,
    }
}

fn parse_registry(rest: &str) -> Result<RegistryRef> {
    // Never echo credentials written into a reference (docker://user:pass@host/…, the
    // password perhaps holding '/' or '@'): every '@' that does not start a digest
    // (`@sha256:`) belongs to them, up to the last such one.
    let userinfo_end = rest
        .match_indices('@')
        .filter(|(i, _)| !starts_digest(&rest[i + 1..]))
        .map(|(i, _)| i)
        .next_back();
    let shown = match userinfo_end {
        Some(i) => format!("***@{}", &rest[i + 1..]),
        None => rest.to_string(),
    };
    let bad = |why: &str| {
        Error::Usage(format!(
            "invalid registry reference docker://{shown}: {why} (expected docker://HOST/REPO[:TAG|@sha256:…])"
        ))
    };
    if userinfo_end.is_some() {
        return Err(bad(
            "credentials do not go in a reference; give them with --creds USER:PASSWORD, \
             --creds-file or a docker config.json",
        ));
    }
    // As docker and skopeo read it (Docker Hub unless the first component is a host),
    // `docker.io/hello` included.
    let full = docker_full_name(rest);
    let (host, path) = full.split_once('/').expect("a full name has a host");
    let path = match path.contains('/') {
        false if host == "docker.io" => format!("library/{path}"),
        _ => path.to_string(),
    };
    let path = path.as_str();
    if !valid_host(host) {
        return Err(bad(
            "invalid host (a name or address, and a port of 1 to 65535)",
        ));
    }
    let (path, digest) = match path.split_once('@') {
        Some((p, d)) => (p, Some(Digest::parse(d).map_err(|e| bad(&e.to_string()))?)),
        None => (path, None),
    };
    let (repo, tag) = match path.rfind(':') {
        Some(i) if !path[i..].contains('/') => (&path[..i], Some(path[i + 1..].to_string())),
        _ => (path, None),
    };
    validate_name(repo).map_err(bad)?;
    if repo.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("repository names are lowercase"));
    }
    if let Some(t) = &tag {
        validate_tag(t).map_err(bad)?;
    }
    let tag = if tag.is_none() && digest.is_none() {
        Some("latest".to_string())
    } else {
        tag
    };
    Ok(RegistryRef {
        host: host.to_string(),
        repository: repo.to_string(),
        tag,
        digest,
    })
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |r: &Option<String>| r.as_ref().map(|r| format!(":{r}")).unwrap_or_default();
        match self {
            ImageRef::Store(n) => write!(f, "{n}"),
            ImageRef::StoreDigest { name, prefix } => match name {
                Some(n) => write!(f, "{n}@sha256:{prefix}"),
                None => write!(f, "sha256:{prefix}"),
            },
            ImageRef::Oci { dir, reference } => {
                write!(f, "oci:{}{}", dir.display(), opt(reference))
            }
            ImageRef::OciArchive { file, reference } => {
                write!(f, "oci-archive:{}{}", file.display(), opt(reference))
            }
            ImageRef::DockerArchive { file, name } => write!(
                f,
                "docker-archive:{}{}",
                file.display(),
                name.as_ref().map(|n| format!(":{n}")).unwrap_or_default()
            ),
            ImageRef::Registry(r) => write!(f, "docker://{r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let cases: &[(&str, Option<&str>)] = &[
            ("hello", Some("hello:latest")),
            ("hello:1", Some("hello:1")),
            ("team/hello:1.2-rc_3", Some("team/hello:1.2-rc_3")),
            ("localhost:5000/hello:1", Some("localhost:5000/hello:1")),
            ("oci:/tmp/out", Some("oci:/tmp/out")),
            ("oci:/tmp/out:hello:1", Some("oci:/tmp/out:hello:1")),
            ("oci-archive:x.tar:v1", Some("oci-archive:x.tar:v1")),
            (
                "docker-archive:x.tar:hello:1",
                Some("docker-archive:x.tar:hello:1"),
            ),
            (
                "docker://127.0.0.1:5000/team/hello",
                Some("docker://127.0.0.1:5000/team/hello:latest"),
            ),
            (
                "docker://r.example/hello:2",
                Some("docker://r.example/hello:2"),
            ),
            ("Hello", None),
            // Found by fuzzing: a store image named like a transport could not round-trip.
            ("oci", None),
            // And again for skopeo's transports that nobase refuses (`dir:latest`).
            ("dir", None),
            ("containers-storage", None),
            ("dir/x", Some("dir/x:latest")),
            ("docker", Some("docker:latest")),
            ("oci-archive:", None),
            ("hello:", None),
            ("hello:-x", None),
            ("/abs", None),
            ("a//b", None),
            ("oci:", None),
            // As docker and skopeo: a first component without '.', ':' or `localhost`
            // is a Docker Hub path, and one component is under library/.
            (
                "docker://host",
                Some("docker://docker.io/library/host:latest"),
            ),
            (
                "docker://library/hello",
                Some("docker://docker.io/library/hello:latest"),
            ),
            ("docker://team/app:2", Some("docker://docker.io/team/app:2")),
            ("docker://localhost/a", Some("docker://localhost/a:latest")),
            ("docker://host/Repo", None),
            ("docker://127.0.0.1:99999/x", None),
            ("docker://r.example:/x", None),
            ("docker://-r.example/x", None),
            // The distribution grammar's separators: one '.', one or two '_', '-'s.
            ("a__b-c--d.e:1", Some("a__b-c--d.e:1")),
            ("a___b:1", None),
            ("a..b", None),
            ("a._b", None),
            ("localhost:abc/a", None),
            ("dir:/tmp/x", None),
            ("docker://host/r@sha256:../../x", None),
            ("ftp://x/y", None),
        ];
        for (input, want) in cases {
            let got = ImageRef::parse(input).ok().map(|r| r.to_string());
            assert_eq!(got.as_deref(), *want, "{input}");
        }
    }

    #[test]
    fn digest_pins_parse() {
        let d = format!("sha256:{}", "0".repeat(64));
        let r = ImageRef::parse(&format!("docker://h:5000/a/b@{d}")).unwrap();
        let ImageRef::Registry(r) = r else { panic!() };
        assert_eq!(r.reference(), d);
        assert_eq!(r.tag, None);
    }

    #[test]
    fn credentials_in_a_reference_are_refused_without_being_echoed() {
        for input in [
            "docker://alice:s3cret@127.0.0.1:5000/r:1",
            "docker://alice:s3cret@host",
            "docker://a:b@c:s3cret@host/r",
            "docker://alice:se/cr3t@host/r:1",
            "docker://alice:s3cret@host/r@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let e = ImageRef::parse(input).unwrap_err().to_string();
            assert!(!e.contains("s3cret") && !e.contains("cr3t"), "{e}");
            assert!(e.contains("--creds"), "{e}");
        }
        assert_eq!(
            ImageRef::parse("docker://alpine:3").unwrap().to_string(),
            "docker://docker.io/library/alpine:3"
        );
        // A digest of another algorithm is a digest error, shown whole.
        let e = ImageRef::parse("docker://host/r@sha512:abc")
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("credentials") && e.contains("host/r@sha512"),
            "{e}"
        );
    }
}
