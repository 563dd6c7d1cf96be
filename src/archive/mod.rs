//! Image archives: `oci-archive:` (a tar of an OCI layout) and `docker-archive:` (the
//! `docker save` / `docker load` format). Written to a temp file beside the destination
//! and renamed at the end, so a failed write never leaves a half archive. Reading them
//! in place is in `read`.

mod read;

pub use read::{
    docker_archive_entries, open_docker_archive, open_oci_archive, DockerArchive, OciArchive,
};

use crate::digest::HashReader;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::image::{self, Descriptor, Image, Index};
use crate::layer;
use crate::oci::{io_to_error, Blobs};
use crate::refs::NameTag;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::Path;

/// Archive entries get fixed metadata: the archive is a container, not content.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

fn add_dir<W: Write>(t: &mut tar::Builder<W>, path: &str) -> io::Result<()> {
    t.append_data(
        &mut header(tar::EntryType::Directory, 0o755, 0),
        path,
        io::empty(),
    )
}

fn add_file<W: Write, R: Read>(
    t: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: R,
) -> io::Result<()> {
    t.append_data(
        &mut header(tar::EntryType::Regular, 0o644, size),
        path,
        data,
    )
}

/// Writes `dest` through a temp file in its directory; `fill` writes the tar.
fn write_atomically(
    dest: &Path,
    fill: impl FnOnce(&mut tar::Builder<BufWriter<File>>) -> Result<()>,
) -> Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // What an earlier, killed write left here goes now (only temp files whose writer is
    // gone: their lock is free).
    fsutil::clean_stale_temps(dir);
    let (file, tmp) = fsutil::create_temp(dir)?;
    let result = (|| {
        let mut t = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
        fill(&mut t)?;
        let w = t
            .into_inner()
            .io(|| format!("writing {}", dest.display()))?;
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .io(|| format!("writing {}", dest.display()))?;
        f.sync_all().io(|| format!("writing {}", dest.display()))?;
        fsutil::persist(&tmp, dest)
    })();
    if result.is_err() {
        fsutil::discard(&tmp);
    }
    result
}

fn copy_blob<W: Write>(
    t: &mut tar::Builder<W>,
    path: &str,
    d: &Descriptor,
    blobs: &dyn Blobs,
) -> Result<()> {
    let r = blobs.open(d)?;
    add_file(t, path, d.size, r)
        .map_err(|e| io_to_error(e, || format!("archiving blob {}", d.digest)))
}

/// Writes an `oci-archive`: `oci-layout`, `index.json` (naming the image `reference`),
/// and every blob.
pub fn write_oci(
    dest: &Path,
    image: &Image,
    blobs: &dyn Blobs,
    reference: Option<&str>,
) -> Result<()> {
    let mut top = image.top.clone();
    top.annotations.remove(image::REF_NAME);
    if let Some(r) = reference {
        top.annotations.insert(image::REF_NAME.into(), r.into());
    }
    let mut index = Index::empty();
    index.manifests.push(top);
    let index = image::to_bytes(&index);
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    write_atomically(dest, |t| {
        let ctx = || format!("writing {}", dest.display());
        add_file(t, "oci-layout", layout.len() as u64, &layout[..]).io(ctx)?;
        add_file(t, "index.json", index.len() as u64, &index[..]).io(ctx)?;
        add_dir(t, "blobs").io(ctx)?;
        add_dir(t, "blobs/sha256").io(ctx)?;
        for d in image.blobs() {
            copy_blob(t, &format!("blobs/sha256/{}", d.digest.hex()), &d, blobs)?;
        }
        Ok(())
    })
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// A docker-archive cannot be added to or changed in place (skopeo refuses it too:
/// "docker-archive doesn't support modifying existing images"): an existing `dest` is
/// written again only when it holds exactly this image under these tags (writing is
/// deterministic, so that changes nothing). Anything else there is refused, never
/// silently replaced.
fn refuse_other_image(dest: &Path, ours: &DockerManifestEntry) -> Result<()> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err::<(), _>(e).io(|| format!("reading {}", dest.display())),
        Ok(_) => {}
    }
    // An unreadable file is not ours to overwrite either.
    let held = docker_archive_entries(dest).unwrap_or_default();
    let same = matches!(held.as_slice(), [(config, tags, layers)]
        if *config == ours.config && *tags == ours.repo_tags && *layers == ours.layers);
    if same {
        return Ok(());
    }
    let what = match held.as_slice() {
        [] => "something that is not this image".to_string(),
        entries => {
            let tags: Vec<&str> = entries
                .iter()
                .flat_map(|(_, t, _)| t.iter().map(String::as_str))
                .collect();
            if tags.is_empty() {
                format!("{} untagged image(s)", entries.len())
            } else {
                format!("an image tagged {}", tags.join(", "))
            }
        }
    };
    Err(Error::Refused(format!(
        "{} already exists and holds {what}; a docker-archive cannot be added to or changed \
         (skopeo refuses it too): remove the file first, write another one, or use \
         oci:DIR:REF, which holds several images",
        dest.display()
    )))
}

/// Writes a `docker-archive` as `docker save` does: `manifest.json`, the config as
/// `<hex>.json`, each layer uncompressed as `<diff_id>/layer.tar`, and `repositories`.
/// An existing file is refused unless it holds this image, or `replace` is set.
/// Layers are decompressed from their blobs and checked against the config's diff_ids.
pub fn write_docker(
    dest: &Path,
    image: &Image,
    blobs: &dyn Blobs,
    name: Option<&NameTag>,
    replace: bool,
) -> Result<()> {
    let pi = match image.manifests.as_slice() {
        [one] => one,
        // The format has no index: it can hold only the image this machine would run.
        _ => image.select(None).map_err(|_| {
            Error::Refused(format!(
                "a docker-archive holds one platform's image (the format has no index), and \
                 this multi-platform image has none for this machine ({}; it has {}): write \
                 oci-archive:{} instead, or choose one with `nobase push IMAGE \
                 docker-archive:{} --platform P`",
                image::host_platform(),
                image.platform_names().join(", "),
                dest.display(),
                dest.display()
            ))
        })?,
    };
    let cfg = &pi.manifest.config;
    let config_name = format!("{}.json", cfg.digest.hex());
    let entry = DockerManifestEntry {
        config: config_name.clone(),
        repo_tags: name.map(|n| vec![n.to_string()]).unwrap_or_default(),
        layers: pi
            .config
            .rootfs
            .diff_ids
            .iter()
            .map(|id| format!("{}/layer.tar", id.hex()))
            .collect(),
    };
    if !replace {
        refuse_other_image(dest, &entry)?;
    }
    let manifest = serde_json::to_vec(&[entry]).expect("serializes");
    let repositories = name.map(|n| {
        let top = pi
            .config
            .rootfs
            .diff_ids
            .last()
            .map(|d| d.hex().to_string())
            .unwrap_or_default();
        let mut inner = BTreeMap::new();
        inner.insert(n.tag.clone(), top);
        let mut outer = BTreeMap::new();
        outer.insert(n.name.clone(), inner);
        serde_json::to_vec(&outer).expect("serializes")
    });
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => ".".into(),
    };
    write_atomically(dest, |t| {
        let ctx = || format!("writing {}", dest.display());
        let mut done = std::collections::BTreeSet::new();
        for (layer, id) in pi.manifest.layers.iter().zip(&pi.config.rootfs.diff_ids) {
            if !done.insert(id.clone()) {
                continue;
            }
            let compression = image::layer_compression(&layer.media_type).ok_or_else(|| {
                Error::Invalid(format!(
                    "layer {} has media type {:?}, which is not a layer nobase can read",
                    layer.digest, layer.media_type
                ))
            })?;
            // The tar header needs the size first: spool the uncompressed layer to a
            // temp file, hashing it on the way to prove it is the layer the config names.
            let (mut spool, spool_path) = fsutil::create_temp(&dir)?;
            let res = (|| {
                // The spool is capped as every layer reader is, so a small blob cannot
                // fill the disk beside the archive.
                let cap = crate::imagefs::walk::Limits::default().layer_cap(layer.size);
                let mut r = HashReader::new(
                    layer::decompress(blobs.open(layer)?, compression, &layer.digest)?
                        .take(cap + 1),
                );
                io::copy(&mut r, &mut spool).map_err(|e| {
                    io_to_error(e, || format!("decompressing layer {}", layer.digest))
                })?;
                let (found, size) = r.finish();
                if size > cap {
                    return Err(Error::Invalid(format!(
                        "layer {} expands to more than {cap} bytes, over {}× its compressed size: a decompression bomb, or a layer too sparse for a docker-archive",
                        layer.digest,
                        crate::imagefs::walk::Limits::default().max_ratio
                    )));
                }
                if &found != id {
                    return Err(Error::DigestMismatch {
                        what: format!("layer {} (uncompressed, its diff_id)", layer.digest),
                        expected: id.clone(),
                        found,
                    });
                }
                spool.rewind().io(ctx)?;
                add_dir(t, id.hex()).io(ctx)?;
                add_file(t, &format!("{}/layer.tar", id.hex()), size, &mut spool).io(ctx)
            })();
            fsutil::discard(&spool_path);
            res?;
        }
        let cfg_bytes = blobs.read_document(cfg)?;
        add_file(t, &config_name, cfg_bytes.len() as u64, &cfg_bytes[..]).io(ctx)?;
        add_file(t, "manifest.json", manifest.len() as u64, &manifest[..]).io(ctx)?;
        if let Some(r) = &repositories {
            add_file(t, "repositories", r.len() as u64, &r[..]).io(ctx)?;
        }
        Ok(())
    })
}
