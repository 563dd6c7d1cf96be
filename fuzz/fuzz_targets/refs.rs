//! Fuzz target: image references, names and digests parse to a value or an error, and a
//! parsed reference prints back to something that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = nobase::refs::ImageRef::parse(s) {
        let again = nobase::refs::ImageRef::parse(&r.to_string()).expect("printed references parse");
        assert_eq!(again, r);
    }
    let _ = nobase::digest::Digest::parse(s);
    let _ = nobase::tree::normalize(s);
    let _ = nobase::image::Platform::parse(s);
});
