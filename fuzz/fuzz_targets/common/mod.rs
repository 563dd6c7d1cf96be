//! Shared by the layer fuzz targets: turns fuzz bytes into one to three uncompressed
//! layers and serves them as an in-memory image, so every reader sees the same input.

#![allow(dead_code)]

use nobase::digest::Digest;
use nobase::image::{self, ContainerConfig, Descriptor, ImageConfig, Manifest, PlatformImage};
use nobase::oci::{Blobs, VerifyReader};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory name under `$TMPDIR` no other input or process uses.
pub fn sandbox(target: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "nobase-fuzz-{target}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Splits fuzz input into layers. The first byte's low two bits give the number of
/// layers (0 and 1 both mean one); every layer but the last is prefixed with its length
/// in 512-byte blocks (two bytes, little-endian), so seeds keep tar alignment.
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let Some((&first, mut rest)) = data.split_first() else {
        return vec![data];
    };
    let n = ((first & 3) as usize).max(1);
    let mut out = Vec::new();
    for _ in 1..n {
        if rest.len() < 2 {
            break;
        }
        let blocks = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        let len = (blocks * 512).min(rest.len());
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    out.push(rest);
    out
}

/// Layers held in memory, served verified like a layout's blobs.
pub struct Mem {
    blobs: Vec<(Digest, Vec<u8>)>,
}

impl Blobs for Mem {
    fn open(&self, desc: &Descriptor) -> nobase::Result<Box<dyn Read + Send + '_>> {
        let (_, bytes) = self
            .blobs
            .iter()
            .find(|(d, _)| d == &desc.digest)
            .ok_or_else(|| nobase::Error::Invalid(format!("no blob {}", desc.digest)))?;
        Ok(Box::new(VerifyReader::new(
            &bytes[..],
            desc.digest.clone(),
            desc.size,
        )))
    }
}

/// An amd64 image of `layers` (uncompressed; diff_ids right) whose entrypoint is
/// `/app/x`, as `check` and `tree` would find it in a layout.
pub fn image(layers: &[&[u8]]) -> (PlatformImage, Mem) {
    let mut config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        config: ContainerConfig {
            entrypoint: Some(vec!["/app/x".into()]),
            cmd: Some(vec!["arg".into()]),
            env: Some(vec!["PATH=/usr/bin:/bin".into()]),
            ..ContainerConfig::default()
        },
        ..ImageConfig::default()
    };
    let mut descs = Vec::new();
    let mut blobs = Vec::new();
    for l in layers {
        let d = Digest::of(l);
        config.rootfs.diff_ids.push(d.clone());
        descs.push(Descriptor::new(
            image::MT_OCI_LAYER,
            d.clone(),
            l.len() as u64,
        ));
        blobs.push((d, l.to_vec()));
    }
    let pi = PlatformImage {
        descriptor: Descriptor::new(image::MT_OCI_MANIFEST, Digest::of(b"m"), 1),
        manifest: Manifest {
            schema_version: 2,
            media_type: None,
            artifact_type: None,
            config: Descriptor::new(image::MT_OCI_CONFIG, Digest::of(b"c"), 1),
            layers: descs,
            annotations: Default::default(),
        },
        config,
    };
    (pi, Mem { blobs })
}
