//! Reading image archives in place: `oci-archive:` (a tar of an OCI layout) and
//! `docker-archive:` (`docker save`). The tar's headers are indexed once (seeking over
//! the data), then blobs are served by offset straight from the archive file and
//! verified as they are read — nothing is unpacked to disk.

use crate::digest::{Digest, HashReader};
use crate::error::{Error, IoContext, Result};
use crate::image::{self, Descriptor, Image, ImageConfig, Manifest};
use crate::imagefs::name::normalize_name;
use crate::oci::{io_to_error, read_image, select_ref, Blobs, VerifyReader};
use crate::refs::{docker_full_name, NameTag};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Most members an archive may have.
const MAX_MEMBERS: usize = 1 << 20;
/// Symlinks followed inside an archive while looking a member up.
const MAX_HOPS: usize = 40;

#[derive(Clone, Debug)]
enum Member {
    File { offset: u64, size: u64 },
    Symlink(String),
}

/// A tar file's members by normalized name, with where their data lies.
struct TarIndex {
    file: File,
    path: PathBuf,
    members: HashMap<String, Member>,
}

/// A byte range of a file, read with `pread` so several readers can share the file.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside one of its members (truncated?)",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl TarIndex {
    fn open(path: &Path) -> Result<TarIndex> {
        let file =
            File::open(path).map_err(|e| crate::error::input_error(path, "the archive", e))?;
        let meta = file
            .metadata()
            .io(|| format!("reading {}", path.display()))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!(
                "{} is not a regular file, so not an image archive",
                path.display()
            )));
        }
        // ustar (POSIX and GNU) at offset 257 of the first header: what docker save,
        // skopeo and nobase write. Anything else is named, not half-parsed.
        let mut head = [0u8; 262];
        let read = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0).unwrap_or(0);
        if read < head.len() || &head[257..262] != b"ustar" {
            return Err(Error::Invalid(format!(
                "{} is not a tar archive (no ustar header), so not an image archive; docker save, skopeo copy … docker-archive:/oci-archive: and nobase write them",
                path.display()
            )));
        }
        let ctx = || format!("reading the archive {}", path.display());
        let mut members = HashMap::new();
        {
            let mut archive = tar::Archive::new(&file);
            for entry in archive.entries_with_seek().io(ctx)? {
                let mut entry = entry.io(ctx)?;
                if let Some(why) = crate::imagefs::name::name_ambiguity(&mut entry) {
                    return Err(Error::Invalid(format!(
                        "{}: member {:?} {why}; nobase refuses the archive",
                        path.display(),
                        String::from_utf8_lossy(&entry.path_bytes())
                    )));
                }
                if members.len() >= MAX_MEMBERS {
                    return Err(Error::Invalid(format!(
                        "{} has more than {MAX_MEMBERS} members; it is not an image archive",
                        path.display()
                    )));
                }
                // Members whose names climb out (`../x`) can never be referenced by a
                // validated name below, so they are simply not indexed.
                // A member whose data runs past the file's end: the archive was cut
                // (an interrupted copy or download). Said here, not later as a member
                // that is missing or a blob that does not match.
                // (A GNU sparse member's size is what it expands to, not what is
                // stored: it is never indexed, so not judged.)
                let end = entry.raw_file_position().saturating_add(entry.size());
                let sparse = entry.header().entry_type() == tar::EntryType::GNUSparse;
                if end > meta.len() && !sparse {
                    return Err(Error::Invalid(format!(
                        "{} ends inside its member {:?} ({} of its {} bytes are there): the archive is truncated",
                        path.display(),
                        String::from_utf8_lossy(&entry.path_bytes()),
                        meta.len().saturating_sub(entry.raw_file_position()),
                        entry.size()
                    )));
                }
                let Ok(name) = normalize_name(&entry.path_bytes()) else {
                    continue;
                };
                let member = match entry.header().entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                    tar::EntryType::Symlink => match entry.link_name_bytes() {
                        Some(t) => Member::Symlink(crate::imagefs::name::name_string(&t)),
                        None => continue,
                    },
                    tar::EntryType::Link => match entry
                        .link_name_bytes()
                        .and_then(|t| normalize_name(&t).ok())
                        .and_then(|t| members.get(&t).cloned())
                    {
                        Some(m) => m,
                        None => continue,
                    },
                    _ => continue,
                };
                members.insert(name, member);
            }
        }
        Ok(TarIndex {
            file,
            path: path.to_path_buf(),
            members,
        })
    }

    /// The data range of the member a reference names. The reference is validated
    /// (no `..`, not absolute) and symlinks between members are followed inside the
    /// archive only.
    fn find(&self, reference: &str) -> Result<(u64, u64)> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "{} refers to {reference:?}, {why}; the archive is corrupt or hostile",
                self.path.display()
            ))
        };
        if reference.starts_with('/') {
            return Err(bad("an absolute path"));
        }
        let mut name = normalize_name(reference.as_bytes()).map_err(|why| bad(&why))?;
        for _ in 0..=MAX_HOPS {
            match self.members.get(&name) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Symlink(target)) => {
                    let base = match name.rfind('/') {
                        Some(i) => &name[..i],
                        None => "",
                    };
                    // A link's target is relative to its directory; `..` may climb
                    // within the archive but never above it.
                    let mut parts: Vec<&str> = if target.starts_with('/') {
                        Vec::new()
                    } else {
                        base.split('/').filter(|c| !c.is_empty()).collect()
                    };
                    for c in target.split('/') {
                        match c {
                            "" | "." => {}
                            ".." => {
                                if parts.pop().is_none() {
                                    return Err(bad("a symlink that climbs out of the archive"));
                                }
                            }
                            c => parts.push(c),
                        }
                    }
                    name = parts.join("/");
                }
                None => {
                    return Err(Error::Invalid(format!(
                        "{} has no member {reference:?}; the archive is incomplete",
                        self.path.display()
                    )))
                }
            }
        }
        Err(bad("a chain of symlinks that does not end"))
    }

    fn section(&self, offset: u64, size: u64) -> Section<'_> {
        Section {
            file: &self.file,
            pos: offset,
            end: offset.saturating_add(size),
        }
    }

    /// Reads a small member (a manifest or config) whole.
    fn read_small(&self, reference: &str) -> Result<Vec<u8>> {
        let (offset, size) = self.find(reference)?;
        if size > image::MAX_DOCUMENT {
            return Err(Error::Invalid(format!(
                "{reference:?} in {} is {size} bytes, more than the {}-byte limit for a manifest or config",
                self.path.display(),
                image::MAX_DOCUMENT
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.section(offset, size)
            .read_to_end(&mut buf)
            .io(|| format!("reading {reference:?} in {}", self.path.display()))?;
        Ok(buf)
    }
}

/// The blobs of an `oci-archive`, read from `blobs/sha256/<hex>` members.
pub struct OciArchive {
    tar: TarIndex,
}

impl Blobs for OciArchive {
    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let (offset, size) = self
            .tar
            .find(&format!("blobs/sha256/{}", desc.digest.hex()))?;
        Ok(Box::new(VerifyReader::new(
            io::BufReader::with_capacity(1 << 20, self.tar.section(offset, size)),
            desc.digest.clone(),
            desc.size,
        )))
    }
}

/// Opens the image `reference` names (or the only one) in the oci-archive `file`.
pub fn open_oci_archive(file: &Path, reference: Option<&str>) -> Result<(Image, OciArchive)> {
    let blobs = OciArchive {
        tar: TarIndex::open(file)?,
    };
    let place = file.display().to_string();
    let raw = blobs.tar.read_small("index.json").map_err(|e| match e {
        Error::Invalid(_) => Error::Invalid(format!(
            "{place} is not an OCI archive: it has no index.json"
        )),
        e => e,
    })?;
    let index =
        image::parse_document(&raw, image::MT_OCI_INDEX, &format!("index.json in {place}"))?;
    let top = select_ref(index, reference, &place, &format!("oci-archive:{place}"))?;
    let image = read_image(&top, &blobs)?;
    Ok((image, blobs))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

enum Location {
    Member(String),
    Memory(Vec<u8>),
}

/// The blobs of a `docker-archive`: layers from their members (checked against the
/// config's diff_ids, or their own digest when compressed), and the config and a
/// manifest made for it in memory.
pub struct DockerArchive {
    tar: TarIndex,
    blobs: HashMap<Digest, Location>,
}

impl Blobs for DockerArchive {
    fn layers_unnamed(&self) -> bool {
        true
    }

    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let r: Box<dyn Read + Send + '_> = match self.blobs.get(&desc.digest) {
            Some(Location::Member(name)) => {
                let (offset, size) = self.tar.find(name)?;
                Box::new(io::BufReader::with_capacity(
                    1 << 20,
                    self.tar.section(offset, size),
                ))
            }
            Some(Location::Memory(bytes)) => Box::new(io::Cursor::new(bytes.clone())),
            None => {
                return Err(Error::Invalid(format!(
                    "{} has no blob {}",
                    self.tar.path.display(),
                    desc.digest
                )))
            }
        };
        Ok(Box::new(VerifyReader::new(
            r,
            desc.digest.clone(),
            desc.size,
        )))
    }
}

/// The 64 hex digits a member's file name carries (`<hex>.json`, `blobs/sha256/<hex>`),
/// if it carries them.
fn hex_in_name(name: &str) -> Option<&str> {
    let base = name.rsplit('/').next()?;
    let stem = base.strip_suffix(".json").unwrap_or(base);
    (stem.len() == 64 && stem.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(stem)
}

/// The entries of a docker-archive's `manifest.json`.
fn docker_entries(tar: &TarIndex, place: &str) -> Result<Vec<DockerManifestEntry>> {
    let raw = tar.read_small("manifest.json").map_err(|e| match e {
        Error::Invalid(_) => Error::Invalid(format!(
            "{place} is not a docker archive: it has no manifest.json"
        )),
        e => e,
    })?;
    image::from_bytes(&raw, &format!("manifest.json in {place}"))
}

/// One image of a docker-archive's `manifest.json`: its config member, its `RepoTags`
/// and its layer members.
pub type DockerEntry = (String, Vec<String>, Vec<String>);

/// What a docker-archive's `manifest.json` says of each image it holds. For `docker
/// load`'s default names and for telling whether an archive already holds an image.
pub fn docker_archive_entries(file: &Path) -> Result<Vec<DockerEntry>> {
    let tar = TarIndex::open(file)?;
    let entries = docker_entries(&tar, &file.display().to_string())?;
    Ok(entries
        .into_iter()
        .map(|e| (e.config, e.repo_tags.unwrap_or_default(), e.layers))
        .collect())
}

/// Opens the image `name` names (or the only one) in the docker-archive `file`.
pub fn open_docker_archive(file: &Path, name: Option<&NameTag>) -> Result<(Image, DockerArchive)> {
    let tar = TarIndex::open(file)?;
    let place = file.display().to_string();
    let entries = docker_entries(&tar, &place)?;
    let tags = |e: &DockerManifestEntry| e.repo_tags.clone().unwrap_or_default();
    let entry = match name {
        Some(n) => entries
            .iter()
            .find(|e| {
                tags(e)
                    .iter()
                    .any(|t| docker_full_name(t) == docker_full_name(&n.to_string()))
            })
            .ok_or_else(|| Error::Invalid(format!("{place} has no image tagged {n}")))?,
        None => match entries.as_slice() {
            [one] => one,
            _ => {
                return Err(Error::Usage(format!(
                    "{place} holds {} images; name one as docker-archive:{place}:NAME:TAG",
                    entries.len()
                )))
            }
        },
    };
    let cfg_bytes = tar.read_small(&entry.config)?;
    let cfg_digest = Digest::of(&cfg_bytes);
    if let Some(hex) = hex_in_name(&entry.config) {
        if hex != cfg_digest.hex() {
            return Err(Error::DigestMismatch {
                what: format!("config {:?} in {place}", entry.config),
                expected: Digest::parse(&format!("sha256:{hex}"))?,
                found: cfg_digest,
            });
        }
    }
    let config: ImageConfig =
        image::from_bytes(&cfg_bytes, &format!("config {:?} in {place}", entry.config))?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(Error::Invalid(format!(
            "{place}: the config lists {} layers but manifest.json {}",
            config.rootfs.diff_ids.len(),
            entry.layers.len()
        )));
    }
    let mut blobs = HashMap::new();
    let mut layers = Vec::new();
    for (member, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
        let (offset, size) = tar.find(member)?;
        let mut magic = [0u8; 4];
        let n = tar
            .file
            .read_at(&mut magic, offset)
            .io(|| format!("reading {member:?} in {place}"))?;
        let media_type = match &magic[..n.min(4)] {
            [0x1f, 0x8b, ..] => Some(image::MT_DOCKER_LAYER_GZIP),
            [0x28, 0xb5, 0x2f, 0xfd] => Some("application/vnd.docker.image.rootfs.diff.tar.zstd"),
            _ => None,
        };
        let (media_type, digest) = match media_type {
            // `docker save` writes plain tars, whose digest is their diff_id; verified
            // as the layer is read.
            None => (image::MT_DOCKER_LAYER, diff_id.clone()),
            // A compressed layer (some tools write them) has no recorded digest: hash it
            // once so it can be named and verified like any blob.
            Some(mt) => {
                let mut h = HashReader::new(tar.section(offset, size));
                io::copy(&mut h, &mut io::sink())
                    .map_err(|e| io_to_error(e, || format!("reading {member:?} in {place}")))?;
                (mt, h.finish().0)
            }
        };
        blobs.insert(digest.clone(), Location::Member(member.clone()));
        layers.push(Descriptor::new(media_type, digest, size));
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(image::MT_DOCKER_MANIFEST.to_string()),
        config: Descriptor::new(
            image::MT_DOCKER_CONFIG,
            cfg_digest.clone(),
            cfg_bytes.len() as u64,
        ),
        layers,
        annotations: Default::default(),
        artifact_type: None,
    };
    let manifest_bytes = image::to_bytes(&manifest);
    let mut top = Descriptor::new(
        image::MT_DOCKER_MANIFEST,
        Digest::of(&manifest_bytes),
        manifest_bytes.len() as u64,
    );
    top.platform = Some(config.platform());
    blobs.insert(cfg_digest, Location::Memory(cfg_bytes));
    blobs.insert(top.digest.clone(), Location::Memory(manifest_bytes));
    let image = Image::of_manifest(top, manifest, config);
    Ok((image, DockerArchive { tar, blobs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_tags_normalize() {
        for (a, b) in [
            ("hello:1", "docker.io/library/hello:1"),
            ("team/hello:1", "docker.io/team/hello:1"),
            ("localhost:5000/hello:1", "localhost:5000/hello:1"),
        ] {
            assert_eq!(docker_full_name(a), docker_full_name(b));
        }
        assert_ne!(docker_full_name("hello:1"), docker_full_name("hello:2"));
    }

    #[test]
    fn member_names_carry_their_digest() {
        let hex = "a".repeat(64);
        assert_eq!(hex_in_name(&format!("{hex}.json")), Some(hex.as_str()));
        assert_eq!(
            hex_in_name(&format!("blobs/sha256/{hex}")),
            Some(hex.as_str())
        );
        assert_eq!(hex_in_name("config.json"), None);
    }
}
