//! Fuzz target: the ELF reader and file classification must never panic or allocate
//! beyond their caps, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let v = data.to_vec();
    if let Ok(info) = nobase::elf::parse(&v) {
        let _ = info.summary();
        let _ = info.platform();
    }
    let _ = nobase::inspect::classify_head(data);
});
