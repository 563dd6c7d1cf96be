//! Fuzz target: `/etc/ld.so.cache` from an image (old, new and combined formats, either
//! byte order) parses to entries or an error, lookups never panic, and what was read
//! writes back to a cache that parses with as many entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nobase::loader::cache;

fuzz_target!(|data: &[u8]| {
    for le in [true, false] {
        let Ok(c) = cache::parse(data, le) else {
            continue;
        };
        let _ = c.lookup("libc.so.6", |_| true);
        for e in c.entries.iter().take(32) {
            let _ = c.lookup(&e.key, |f| f & 1 == 1);
        }
        let pairs: Vec<(String, String)> = c
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();
        let w = cache::write(&pairs, 0x303, le);
        let back = cache::parse(&w, le).expect("a written cache parses");
        assert!(back.entries.len() <= pairs.len());
        assert_eq!(back.little_endian, le);
    }
});
