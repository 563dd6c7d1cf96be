//! Where a built (or read) image goes. Every output is a [`Sink`]; a build never
//! branches on its destination, and one function maps references to sinks.

use crate::archive;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::oci::{Blobs, Layout};
use crate::refs::{ImageRef, NameTag};
use crate::registry;
use crate::store::Store;
use std::path::PathBuf;

/// A destination for an image.
pub trait Sink {
    /// The reference it writes, for messages (`oci:out:hello`).
    fn describe(&self) -> String;
    /// Writes the image, reading its blobs from `blobs`.
    fn publish(&self, image: &Image, blobs: &dyn Blobs) -> Result<()>;
}

struct StoreSink {
    store: Store,
    name: NameTag,
}

impl Sink for StoreSink {
    fn describe(&self) -> String {
        self.name.to_string()
    }
    fn publish(&self, image: &Image, blobs: &dyn Blobs) -> Result<()> {
        self.store
            .layout()
            .publish(image, blobs, Some(&self.name.to_string()))
    }
}

struct LayoutSink {
    dir: PathBuf,
    reference: Option<String>,
    shown: String,
}

impl Sink for LayoutSink {
    fn describe(&self) -> String {
        self.shown.clone()
    }
    fn publish(&self, image: &Image, blobs: &dyn Blobs) -> Result<()> {
        Layout::create(&self.dir)?.publish(image, blobs, self.reference.as_deref())
    }
}

struct OciArchiveSink {
    file: PathBuf,
    reference: Option<String>,
    shown: String,
}

impl Sink for OciArchiveSink {
    fn describe(&self) -> String {
        self.shown.clone()
    }
    fn publish(&self, image: &Image, blobs: &dyn Blobs) -> Result<()> {
        archive::write_oci(&self.file, image, blobs, self.reference.as_deref())
    }
}

struct DockerArchiveSink {
    file: PathBuf,
    name: Option<NameTag>,
    shown: String,
    /// A build's output replaces what the file held (as `docker save -o` does); a copy
    /// refuses to (as skopeo does).
    replace: bool,
}

impl Sink for DockerArchiveSink {
    fn describe(&self) -> String {
        self.shown.clone()
    }
    fn publish(&self, image: &Image, blobs: &dyn Blobs) -> Result<()> {
        archive::write_docker(&self.file, image, blobs, self.name.as_ref(), self.replace)
    }
}

/// The sink for a reference. `store` is opened only for store references; registries
/// are reached with default settings (credentials from Docker's config).
pub fn for_ref(r: &ImageRef, store: impl FnOnce() -> Result<Store>) -> Result<Box<dyn Sink>> {
    for_ref_with(r, store, &registry::Options::default())
}

/// [`for_ref`] with registry settings (credentials, certificates, retries, progress).
pub fn for_ref_with(
    r: &ImageRef,
    store: impl FnOnce() -> Result<Store>,
    registry: &registry::Options,
) -> Result<Box<dyn Sink>> {
    sink_for(r, store, registry, false)
}

/// [`for_ref_with`] for a build's `-o`: an existing docker-archive file is replaced by
/// the new build, as `docker save -o` and buildx's `--output dest=` replace theirs.
pub fn for_build_output(
    r: &ImageRef,
    store: impl FnOnce() -> Result<Store>,
    registry: &registry::Options,
) -> Result<Box<dyn Sink>> {
    sink_for(r, store, registry, true)
}

fn sink_for(
    r: &ImageRef,
    store: impl FnOnce() -> Result<Store>,
    registry: &registry::Options,
    replace: bool,
) -> Result<Box<dyn Sink>> {
    let shown = r.to_string();
    Ok(match r {
        ImageRef::Store(name) => Box::new(StoreSink {
            store: store()?,
            name: name.clone(),
        }),
        ImageRef::StoreDigest { .. } => {
            return Err(Error::Usage(format!(
                "{r} names an image the store has by its digest; to write one, give NAME[:TAG]"
            )))
        }
        ImageRef::Oci { dir, reference } => Box::new(LayoutSink {
            dir: dir.clone(),
            reference: reference.clone(),
            shown,
        }),
        ImageRef::OciArchive { file, reference } => Box::new(OciArchiveSink {
            file: file.clone(),
            reference: reference.clone(),
            shown,
        }),
        ImageRef::DockerArchive { file, name } => Box::new(DockerArchiveSink {
            file: file.clone(),
            name: name.clone(),
            shown,
            replace,
        }),
        // skopeo refuses it too: the manifest goes under one of them, and the other
        // would be reported but never made.
        ImageRef::Registry(rr) if rr.tag.is_some() && rr.digest.is_some() => {
            return Err(Error::Usage(format!(
                "{r}: a destination names a tag or a digest, not both; give docker://{}/{}:{}",
                rr.host,
                rr.repository,
                rr.tag.as_deref().unwrap_or_default()
            )))
        }
        ImageRef::Registry(rr) => {
            Box::new(registry::RegistrySink::new(rr.clone(), registry.clone()))
        }
    })
}
