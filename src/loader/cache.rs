//! glibc's binary `/etc/ld.so.cache`: reading both formats (the old `ld.so-1.7.0`, the
//! new `glibc-ld.so.cache1.1`, and the old one with the new one embedded), looking a name
//! up with the same binary search ld.so uses, and writing a new-format cache for an image.
//!
//! Layout (glibc `sysdeps/generic/dl-cache.h`): the new header is 48 bytes — magic and
//! version (20), `nlibs`, `len_strings`, a flags byte whose low bits give the byte order
//! (2 little, 3 big), 3 padding bytes, `extension_offset` and 12 unused bytes — followed by
//! `nlibs` 24-byte entries (`flags` i32, `key` u32, `value` u32, `osversion` u32, `hwcap`
//! u64) and the string table. Key and value are offsets from the start of the new header.
//! The old format is an 11-byte magic, `nlibs` at offset 12, 12-byte entries from offset 16,
//! and string offsets counted from the end of the entry array.

use std::cmp::Ordering;

const MAGIC_OLD: &[u8] = b"ld.so-1.7.0";
const MAGIC_NEW: &[u8] = b"glibc-ld.so.cache1.1";
const NEW_HEADER: usize = 48;
const NEW_ENTRY: usize = 24;
const OLD_HEADER: usize = 16;
const OLD_ENTRY: usize = 12;
/// `DL_CACHE_HWCAP_EXTENSION`: the entry is for a glibc-hwcaps subdirectory.
pub const HWCAP_EXTENSION: u64 = 1 << 62;

/// Which layout a cache file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `ld.so-1.7.0` only (libc5 / glibc ≤ 2.1 era).
    Old,
    /// `glibc-ld.so.cache1.1` only (glibc ≥ 2.32 writes this).
    New,
    /// Old entries with a new-format cache after them (what ldconfig wrote before 2.32).
    OldWithNew,
}

/// One cache entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64`…
    pub flags: i32,
    /// The name looked up (a SONAME).
    pub key: String,
    /// The path the loader opens.
    pub value: String,
    /// 0 for plain entries; [`HWCAP_EXTENSION`] set for glibc-hwcaps entries.
    pub hwcap: u64,
}

/// A parsed cache.
#[derive(Clone, Debug)]
pub struct LdCache {
    /// The layout found.
    pub format: Format,
    /// Byte order of the entries.
    pub little_endian: bool,
    /// Entries in file order (the order ld.so's binary search assumes).
    pub entries: Vec<Entry>,
}

/// What a lookup found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The plain entry ld.so opens on any CPU of the architecture.
    pub path: Option<String>,
    /// glibc-hwcaps entries for the same name (used instead on CPUs that support them).
    pub hwcaps: Vec<String>,
}

/// `_dl_cache_libcmp`: compares names with runs of digits compared as numbers, so
/// `libfoo.so.10` sorts after `libfoo.so.9`. ldconfig sorts the cache by it, descending.
pub fn libcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        let (ca, cb) = (a[i], b.get(j).copied().unwrap_or(0));
        if ca.is_ascii_digit() {
            if !cb.is_ascii_digit() {
                return Ordering::Greater;
            }
            let mut va: u64 = 0;
            while i < a.len() && a[i].is_ascii_digit() {
                va = va.saturating_mul(10).saturating_add(u64::from(a[i] - b'0'));
                i += 1;
            }
            let mut vb: u64 = 0;
            while j < b.len() && b[j].is_ascii_digit() {
                vb = vb.saturating_mul(10).saturating_add(u64::from(b[j] - b'0'));
                j += 1;
            }
            if va != vb {
                return va.cmp(&vb);
            }
        } else if cb.is_ascii_digit() {
            return Ordering::Less;
        } else if ca != cb {
            return ca.cmp(&cb);
        } else {
            i += 1;
            j += 1;
        }
    }
    0u8.cmp(&b.get(j).copied().unwrap_or(0))
}

/// `N` bytes at `at`, in big-endian order whatever the file's (so one `from_be_bytes`
/// reads both).
fn be_bytes<const N: usize>(b: &[u8], at: usize, le: bool) -> Option<[u8; N]> {
    let mut s: [u8; N] = b.get(at..at.checked_add(N)?)?.try_into().ok()?;
    if le {
        s.reverse();
    }
    Some(s)
}

fn u32_at(b: &[u8], at: usize, le: bool) -> Option<u32> {
    be_bytes(b, at, le).map(u32::from_be_bytes)
}

fn u64_at(b: &[u8], at: usize, le: bool) -> Option<u64> {
    be_bytes(b, at, le).map(u64::from_be_bytes)
}

fn cstr(b: &[u8], at: usize) -> Option<String> {
    let rest = b.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Parses a cache file. `native_little_endian` is the byte order of the loader that will
/// read it, used where the file does not say (old format, or new format with the
/// byte-order flag unset). Corrupt input is an error, never a panic.
pub fn parse(bytes: &[u8], native_little_endian: bool) -> Result<LdCache, String> {
    if bytes.starts_with(MAGIC_NEW) {
        return parse_new(bytes, native_little_endian).map(|(le, entries)| LdCache {
            format: Format::New,
            little_endian: le,
            entries,
        });
    }
    if !bytes.starts_with(MAGIC_OLD) {
        return Err("not an ld.so.cache file (unknown magic)".to_string());
    }
    let le = native_little_endian;
    let nlibs = u32_at(bytes, 12, le).ok_or("truncated header")? as usize;
    if (bytes.len().saturating_sub(OLD_HEADER)) / OLD_ENTRY < nlibs {
        return Err(format!("claims {nlibs} entries, more than the file holds"));
    }
    let end_of_entries = OLD_HEADER + nlibs * OLD_ENTRY;
    // The embedded new cache starts at the next 8-byte boundary.
    let new_at = end_of_entries.div_ceil(8) * 8;
    if let Some(rest) = bytes.get(new_at..) {
        if rest.starts_with(MAGIC_NEW) {
            let (le, entries) = parse_new(rest, native_little_endian)?;
            return Ok(LdCache {
                format: Format::OldWithNew,
                little_endian: le,
                entries,
            });
        }
    }
    let strings = &bytes[end_of_entries..];
    let entries = (0..nlibs)
        .map(|i| entry(bytes, OLD_HEADER + i * OLD_ENTRY, le, strings))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LdCache {
        format: Format::Old,
        little_endian: le,
        entries,
    })
}

fn parse_new(b: &[u8], native_le: bool) -> Result<(bool, Vec<Entry>), String> {
    if b.len() < NEW_HEADER {
        return Err("truncated header".to_string());
    }
    let le = match b[28] & 3 {
        0 => native_le,
        2 => true,
        3 => false,
        _ => return Err("invalid byte-order flag".to_string()),
    };
    let nlibs = u32_at(b, 20, le).ok_or("truncated header")? as usize;
    if (b.len() - NEW_HEADER) / NEW_ENTRY < nlibs {
        return Err(format!("claims {nlibs} entries, more than the file holds"));
    }
    let mut entries = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = NEW_HEADER + i * NEW_ENTRY;
        let mut e = entry(b, at, le, b)?;
        e.hwcap = u64_at(b, at + 16, le).ok_or("truncated entry")?;
        entries.push(e);
    }
    Ok((le, entries))
}

/// The `flags`, `key` and `value` fields every entry starts with; string offsets count
/// from `strings`.
fn entry(b: &[u8], at: usize, le: bool, strings: &[u8]) -> Result<Entry, String> {
    let field = |k: usize| u32_at(b, at + 4 * k, le).ok_or("truncated entry");
    Ok(Entry {
        flags: field(0)? as i32,
        key: cstr(strings, field(1)? as usize).ok_or("an entry's name lies outside the file")?,
        value: cstr(strings, field(2)? as usize).ok_or("an entry's path lies outside the file")?,
        hwcap: 0,
    })
}

impl LdCache {
    /// Looks `name` up as ld.so's `search_cache` does: a binary search over the entries
    /// (sorted by [`libcmp`], descending), back to the first entry with an equal key, then
    /// forward over the equal keys. `flags_ok` is the loader's `_dl_cache_check_flags`.
    ///
    /// One deliberate difference: ld.so prefers a glibc-hwcaps entry the running CPU
    /// supports; the CPU that will run an image is unknown, so the plain entry is the
    /// answer and the hwcaps entries are listed beside it.
    pub fn lookup(&self, name: &str, flags_ok: impl Fn(i32) -> bool) -> Lookup {
        let e = &self.entries;
        let (mut left, mut right) = (0isize, e.len() as isize - 1);
        let mut out = Lookup::default();
        while left <= right {
            let mut middle = ((left + right) / 2) as usize;
            match libcmp(name, &e[middle].key) {
                Ordering::Equal => {
                    while middle > 0 && libcmp(name, &e[middle - 1].key) == Ordering::Equal {
                        middle -= 1;
                    }
                    for entry in e[middle..]
                        .iter()
                        .take_while(|x| libcmp(name, &x.key) == Ordering::Equal)
                    {
                        if !flags_ok(entry.flags) {
                            continue;
                        }
                        if entry.hwcap & HWCAP_EXTENSION != 0 {
                            out.hwcaps.push(entry.value.clone());
                        } else if entry.hwcap == 0 && out.path.is_none() {
                            // (Nonzero legacy hwcap entries are ignored since glibc 2.37.)
                            out.path = Some(entry.value.clone());
                        }
                    }
                    return out;
                }
                // name < key: the entry sorts before (greater keys come first).
                Ordering::Less => left = middle as isize + 1,
                Ordering::Greater => right = middle as isize - 1,
            }
        }
        out
    }
}

/// Writes a new-format cache holding `entries` (name → path, all with `flags`), sorted
/// as ldconfig sorts them so ld.so's binary search finds every one. The byte order is
/// the target loader's; there is no extension section (offset 0 means none).
pub fn write(entries: &[(String, String)], flags: i32, little_endian: bool) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort_by(|a, b| libcmp(&b.0, &a.0).then_with(|| a.1.cmp(&b.1)));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let put32 = |out: &mut Vec<u8>, v: u32| {
        out.extend_from_slice(&if little_endian {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        })
    };
    let strings_at = NEW_HEADER + sorted.len() * NEW_ENTRY;
    let mut strings: Vec<u8> = Vec::new();
    let mut offsets = Vec::with_capacity(sorted.len());
    for (k, v) in &sorted {
        let ko = strings_at + strings.len();
        strings.extend_from_slice(k.as_bytes());
        strings.push(0);
        let vo = strings_at + strings.len();
        strings.extend_from_slice(v.as_bytes());
        strings.push(0);
        offsets.push((ko as u32, vo as u32));
    }
    let mut out = Vec::with_capacity(strings_at + strings.len());
    out.extend_from_slice(MAGIC_NEW);
    put32(&mut out, sorted.len() as u32);
    put32(&mut out, strings.len() as u32);
    out.push(if little_endian { 2 } else { 3 });
    out.extend_from_slice(&[0; 3]);
    put32(&mut out, 0); // extension_offset: none
    out.extend_from_slice(&[0; 12]);
    for (ko, vo) in offsets {
        put32(&mut out, flags as u32);
        put32(&mut out, ko);
        put32(&mut out, vo);
        put32(&mut out, 0); // osversion (unused)
        out.extend_from_slice(&[0; 8]); // hwcap
    }
    out.extend_from_slice(&strings);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libcmp_compares_numbers_as_numbers() {
        use Ordering::*;
        for (a, b, want) in [
            ("libfoo.so.10", "libfoo.so.9", Greater),
            ("libfoo.so.9", "libfoo.so.9", Equal),
            ("libfoo.so.09", "libfoo.so.9", Equal),
            ("libfoo.so", "libfoo.so.1", Less),
            ("libz.so.1", "liba.so.1", Greater),
            ("lib1", "liba", Greater),
            ("liba", "lib1", Less),
        ] {
            assert_eq!(libcmp(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn written_caches_read_back_and_every_name_is_found() {
        let names: Vec<(String, String)> = (0..40)
            .map(|i| {
                (
                    format!("lib{}.so.{}", ["a", "z", "m", "c"][i % 4], i),
                    format!("/opt/x{i}/lib.so"),
                )
            })
            .collect();
        for le in [true, false] {
            let bytes = write(&names, 0x303, le);
            let c = parse(&bytes, le).unwrap();
            assert_eq!(c.format, Format::New);
            assert_eq!(c.little_endian, le);
            assert_eq!(c.entries.len(), names.len());
            for w in c.entries.windows(2) {
                assert_ne!(libcmp(&w[0].key, &w[1].key), Ordering::Less);
            }
            for (k, v) in &names {
                let l = c.lookup(k, |f| f == 0x303);
                assert_eq!(l.path.as_deref(), Some(v.as_str()), "{k}");
                assert_eq!(c.lookup(k, |f| f == 0xa03).path, None);
            }
            assert_eq!(c.lookup("libnothere.so.1", |_| true), Lookup::default());
        }
    }

    #[test]
    fn old_format_and_old_with_new() {
        // Old format: header, two entries, strings.
        let mut old = MAGIC_OLD.to_vec();
        old.push(0);
        old.extend_from_slice(&2u32.to_le_bytes());
        let strings = b"libb.so.1\0/lib/libb.so.1\0liba.so.1\0/lib/liba.so.1\0";
        for (k, v) in [(0u32, 10u32), (25, 35)] {
            old.extend_from_slice(&3i32.to_le_bytes());
            old.extend_from_slice(&k.to_le_bytes());
            old.extend_from_slice(&v.to_le_bytes());
        }
        let end = old.len();
        old.extend_from_slice(strings);
        let c = parse(&old, true).unwrap();
        assert_eq!(c.format, Format::Old);
        assert_eq!(
            c.lookup("liba.so.1", |f| f == 3).path.as_deref(),
            Some("/lib/liba.so.1")
        );
        // Old entries followed (8-aligned) by a new cache: the new one is used.
        let mut both = old[..end].to_vec();
        while both.len() % 8 != 0 {
            both.push(0);
        }
        both.extend(write(
            &[("libn.so.1".into(), "/new/libn.so.1".into())],
            3,
            true,
        ));
        let c = parse(&both, true).unwrap();
        assert_eq!(c.format, Format::OldWithNew);
        assert_eq!(
            c.lookup("libn.so.1", |f| f == 3).path.as_deref(),
            Some("/new/libn.so.1")
        );
    }

    #[test]
    fn hwcaps_entries_are_listed_beside_the_plain_one() {
        let mut c = parse(
            &write(
                &[("libx.so.1".into(), "/lib/libx.so.1".into())],
                0x303,
                true,
            ),
            true,
        )
        .unwrap();
        c.entries.insert(
            0,
            Entry {
                flags: 0x303,
                key: "libx.so.1".into(),
                value: "/lib/glibc-hwcaps/x86-64-v3/libx.so.1".into(),
                hwcap: HWCAP_EXTENSION,
            },
        );
        let l = c.lookup("libx.so.1", |f| f == 0x303);
        assert_eq!(l.path.as_deref(), Some("/lib/libx.so.1"));
        assert_eq!(l.hwcaps, ["/lib/glibc-hwcaps/x86-64-v3/libx.so.1"]);
    }

    #[test]
    fn corrupt_caches_are_errors() {
        let good = write(&[("liba.so.1".into(), "/a".into())], 3, true);
        for cut in 0..good.len() {
            let _ = parse(&good[..cut], true);
        }
        let mut huge = good.clone();
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge, true).is_err());
        let mut bad_off = good.clone();
        bad_off[NEW_HEADER + 4..NEW_HEADER + 8].copy_from_slice(&9999u32.to_le_bytes());
        assert!(parse(&bad_off, true).is_err());
        assert!(parse(b"hello", true).is_err());
    }
}
