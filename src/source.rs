//! Reading images: any reference opens to a [`Source`] — the image's manifests and
//! configs, and a [`Blobs`] to stream its layers from. Sinks take the same pair, so
//! `push` and `pull` are "open a source, publish to a sink".

use crate::archive;
use crate::error::Result;
use crate::image::{Image, Want};
use crate::oci::{read_image, Blobs, Layout};
use crate::refs::ImageRef;
use crate::registry;
use crate::store::Store;

/// An opened image.
pub struct Source {
    /// The reference it was opened from, for messages.
    pub reference: String,
    /// Manifests and configs.
    pub image: Image,
    /// Where its blobs are read from.
    pub blobs: Box<dyn Blobs>,
    /// For an image of the store, the shared lock a collection (`nobase rmi`) takes
    /// exclusively: held as long as the source lives, so no blob of the image is
    /// collected while it is read (a concurrent rmi defers its collection).
    pub guard: Option<std::fs::File>,
}

/// Opens the image a reference names. `store` is called only for store references;
/// registries are reached with default settings (credentials from Docker's config).
pub fn open(r: &ImageRef, store: impl FnOnce() -> Result<Store>) -> Result<Source> {
    open_with(r, store, &registry::Options::default())
}

/// [`open`] with registry settings (credentials, certificates, retries, progress).
pub fn open_with(
    r: &ImageRef,
    store: impl FnOnce() -> Result<Store>,
    registry: &registry::Options,
) -> Result<Source> {
    open_for(r, store, registry, Want::All)
}

/// [`open_with`] of the platforms `want` asks for; with [`Want::One`], the image is
/// narrowed to that platform (as [`Image::single`] narrows it), and a registry is
/// asked for that platform's manifest and config only.
pub fn open_for(
    r: &ImageRef,
    store: impl FnOnce() -> Result<Store>,
    registry: &registry::Options,
    want: Want,
) -> Result<Source> {
    if let ImageRef::Registry(rr) = r {
        let (image, blobs) = registry::open_for(rr, registry, want)?;
        return Ok(Source {
            reference: r.to_string(),
            image,
            blobs: Box::new(blobs),
            guard: None,
        });
    }
    let mut source = open_all(r, store, registry)?;
    if let Want::One(p) = want {
        source.image = source.image.single(p)?;
    }
    Ok(source)
}

fn open_all(
    r: &ImageRef,
    store: impl FnOnce() -> Result<Store>,
    registry: &registry::Options,
) -> Result<Source> {
    let reference = r.to_string();
    match r {
        ImageRef::Store(_) | ImageRef::StoreDigest { .. } => {
            let store = store()?;
            let guard = store.writer_guard()?;
            let top = match r {
                ImageRef::StoreDigest { name, prefix } => {
                    store.resolve_digest(name.as_deref(), prefix)?
                }
                ImageRef::Store(name) => store.resolve(name)?,
                _ => unreachable!("matched above"),
            };
            let image = read_image(&top, store.layout())?;
            Ok(Source {
                reference,
                image,
                blobs: Box::new(store.layout().clone()),
                guard: Some(guard),
            })
        }
        ImageRef::Oci { dir, reference: rn } => {
            let layout = Layout::open(dir)?;
            let top = layout.resolve(rn.as_deref())?;
            let image = read_image(&top, &layout)?;
            Ok(Source {
                reference,
                image,
                blobs: Box::new(layout),
                guard: None,
            })
        }
        ImageRef::OciArchive {
            file,
            reference: rn,
        } => {
            let (image, blobs) = archive::open_oci_archive(file, rn.as_deref())?;
            Ok(Source {
                reference,
                image,
                blobs: Box::new(blobs),
                guard: None,
            })
        }
        ImageRef::DockerArchive { file, name } => {
            let (image, blobs) = archive::open_docker_archive(file, name.as_ref())?;
            Ok(Source {
                reference,
                image,
                blobs: Box::new(blobs),
                guard: None,
            })
        }
        ImageRef::Registry(rr) => {
            let (image, blobs) = registry::open(rr, registry)?;
            Ok(Source {
                reference,
                image,
                blobs: Box::new(blobs),
                guard: None,
            })
        }
    }
}
