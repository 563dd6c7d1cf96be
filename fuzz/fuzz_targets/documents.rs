//! Fuzz target: manifests, indexes and configs from untrusted JSON parse to a value or an
//! error; what parses re-serializes deterministically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nobase::image::{self, ImageConfig, Index, Manifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = image::from_bytes::<Manifest>(data, "fuzz") {
        let b = image::to_bytes(&m);
        let m2: Manifest = image::from_bytes(&b, "again").expect("round trip");
        assert_eq!(image::to_bytes(&m2), b);
    }
    if let Ok(i) = image::from_bytes::<Index>(data, "fuzz") {
        let _ = image::to_bytes(&i);
    }
    if let Ok(c) = image::from_bytes::<ImageConfig>(data, "fuzz") {
        let b = image::to_bytes(&c);
        let c2: ImageConfig = image::from_bytes(&b, "again").expect("round trip");
        assert_eq!(image::to_bytes(&c2), b);
    }
});
