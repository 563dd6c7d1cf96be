//! Assembling an image from its parts: the config (with its diff_ids and history) and
//! the layer descriptors become a config blob and a manifest blob in a layout, and an
//! [`Image`] value that sinks can publish. Every builder ends here.

use crate::error::Result;
use crate::image::{self, Descriptor, Image, ImageConfig, Manifest};
use crate::oci::Layout;
use std::collections::BTreeMap;

/// The OCI media type of a layer: Docker's layer types name the same bytes, so they are
/// renamed to their OCI equivalents (an OCI manifest should list OCI layer types).
pub fn oci_layer(mut d: Descriptor) -> Descriptor {
    let oci = match d.media_type.as_str() {
        image::MT_DOCKER_LAYER_GZIP => Some(image::MT_OCI_LAYER_GZIP),
        image::MT_DOCKER_LAYER => Some(image::MT_OCI_LAYER),
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(image::MT_OCI_LAYER_ZSTD),
        _ => None,
    };
    if let Some(mt) = oci {
        d.media_type = mt.to_string();
    }
    d.platform = None;
    d
}

/// Writes `config` and a manifest listing `layers` (bottom first; their blobs must
/// already be in `layout`) and returns the single-platform image they make.
pub fn assemble(layout: &Layout, config: &ImageConfig, layers: &[Descriptor]) -> Result<Image> {
    let config_desc = layout.put_bytes(image::MT_OCI_CONFIG, &image::to_bytes(config))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(image::MT_OCI_MANIFEST.into()),
        config: config_desc,
        layers: layers.iter().cloned().map(oci_layer).collect(),
        annotations: BTreeMap::new(),
        artifact_type: None,
    };
    let mut top = layout.put_bytes(image::MT_OCI_MANIFEST, &image::to_bytes(&manifest))?;
    top.platform = Some(config.platform());
    Ok(Image::of_manifest(top, manifest, config.clone()))
}
