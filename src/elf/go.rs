//! Go build information (`go version -m`), read from the `.go.buildinfo` blob that every
//! Go ≥ 1.13 binary carries, without running the binary.

use super::{vaddr_to_offset, Reader, Section, Segment};
use std::collections::BTreeMap;

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// How far into a writable segment we look for the blob when sections are stripped.
const SCAN_LIMIT: u64 = 4 << 20;
/// Largest version or module-info string we accept.
const MAX_STRING: u64 = 4 << 20;

/// What a Go binary says about how it was built.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GoInfo {
    /// The toolchain (`go1.22.5`), or `unknown` when only Go's notes were found.
    pub version: String,
    /// The main package path (`github.com/hashicorp/terraform`).
    pub path: Option<String>,
    /// The main module and its version (`github.com/hashicorp/terraform (devel)`).
    pub main_module: Option<String>,
    /// Build settings (`CGO_ENABLED=0`, `GOARCH=amd64`…).
    pub settings: BTreeMap<String, String>,
    /// Number of dependency modules.
    pub deps: usize,
    /// Where in the file the names of its functions are (offset, length): the
    /// function-name table of `.gopclntab` (Go ≥ 1.16), else the whole section. None
    /// without section headers. Names of inlined functions are in it too.
    #[serde(skip)]
    pub names: Option<(u64, u64)>,
}

pub(super) fn read(r: &Reader, segments: &[Segment], sections: &[Section]) -> Option<GoInfo> {
    let found = if let Some(s) = sections.iter().find(|s| s.name == ".go.buildinfo") {
        r.bytes("Go build info", s.offset, 32.min(s.size))
            .ok()
            .filter(|b| b.starts_with(MAGIC))
            .map(|_| s.offset)
    } else {
        scan(r, segments)
    };
    let names = function_names(r, sections);
    match found {
        Some(off) => decode(r, segments, off).map(|g| GoInfo { names, ..g }),
        None if sections
            .iter()
            .any(|s| s.name == ".note.go.buildid" || s.name == ".gopclntab") =>
        {
            Some(GoInfo {
                version: "unknown".into(),
                path: None,
                main_module: None,
                settings: BTreeMap::new(),
                deps: 0,
                names,
            })
        }
        None => None,
    }
}

/// The file range of the function-name table. The pclntab header (Go 1.16: magic
/// 0xfffffffa; 1.18: 0xfffffff0; 1.20+: 0xfffffff1) is followed by pointer-sized words:
/// nfunc, nfiles, [textStart since 1.18,] funcnameOffset, cuOffset…, and the names run
/// from funcnameOffset to cuOffset. Anything unexpected falls back to the whole section.
fn function_names(r: &Reader, sections: &[Section]) -> Option<(u64, u64)> {
    let s = sections
        .iter()
        .find(|s| s.name == ".gopclntab" && s.sh_type != super::SHT_NOBITS)?;
    if s.offset.checked_add(s.size)? > r.size {
        return None;
    }
    let whole = Some((s.offset, s.size));
    let Ok(head) = r.bytes(".gopclntab", s.offset, 8.min(s.size)) else {
        return whole;
    };
    if head.len() < 8 {
        return whole;
    }
    let skip = match r.u32(&head, 0) {
        0xffff_fffa => 2,
        0xffff_fff0 | 0xffff_fff1 => 3,
        _ => return whole,
    };
    let ptr = head[7] as u64;
    if ptr != 4 && ptr != 8 {
        return whole;
    }
    let Ok(words) = r.bytes(
        ".gopclntab",
        s.offset + 8,
        ((skip + 2) * ptr).min(s.size - 8),
    ) else {
        return whole;
    };
    if words.len() as u64 != (skip + 2) * ptr {
        return whole;
    }
    let word = |i: u64| {
        if ptr == 8 {
            r.u64(&words, (i * 8) as usize)
        } else {
            r.u32(&words, (i * 4) as usize) as u64
        }
    };
    let (start, end) = (word(skip), word(skip + 1));
    if start >= end || end > s.size {
        return whole;
    }
    Some((s.offset + start, end - start))
}

/// Looks for the magic at 16-byte alignment in the first writable segments.
fn scan(r: &Reader, segments: &[Segment]) -> Option<u64> {
    for s in segments
        .iter()
        .filter(|s| s.p_type == 1 && s.p_flags & 2 != 0)
    {
        let len = s.filesz.min(SCAN_LIMIT);
        let data = r.bytes("a data segment", s.offset, len).ok()?;
        let mut at = 0;
        while at + 32 <= data.len() {
            if data[at..].starts_with(MAGIC) {
                return Some(s.offset + at as u64);
            }
            at += 16;
        }
    }
    None
}

fn decode(r: &Reader, segments: &[Segment], off: u64) -> Option<GoInfo> {
    let head = r.bytes("Go build info", off, 32).ok()?;
    let ptr_size = head[14] as u64;
    let flags = head[15];
    let (version, modinfo) = if flags & 2 != 0 {
        // Go 1.18+: two varint-prefixed strings follow the header.
        let (version, next) = varint_bytes(r, off + 32)?;
        let (modinfo, _) = varint_bytes(r, next).unwrap_or_default();
        (String::from_utf8_lossy(&version).into_owned(), modinfo)
    } else {
        // Older: two pointers to Go string headers (data pointer, length).
        if ptr_size != 4 && ptr_size != 8 {
            return None;
        }
        let be = flags & 1 != 0;
        let word = |b: &[u8]| -> u64 {
            let mut a = [0u8; 8];
            if be {
                a[8 - b.len()..].copy_from_slice(b);
                u64::from_be_bytes(a)
            } else {
                a[..b.len()].copy_from_slice(b);
                u64::from_le_bytes(a)
            }
        };
        let ps = ptr_size as usize;
        let read_gostring = |ptr: u64| -> Option<Vec<u8>> {
            let hdr_off = vaddr_to_offset(segments, ptr)?;
            let hdr = r.bytes("a Go string header", hdr_off, 2 * ptr_size).ok()?;
            let data = word(&hdr[..ps]);
            let len = word(&hdr[ps..2 * ps]);
            if len > MAX_STRING {
                return None;
            }
            let data_off = vaddr_to_offset(segments, data)?;
            r.bytes("a Go string", data_off, len).ok()
        };
        let version = read_gostring(word(&head[16..16 + ps]))?;
        let modinfo = read_gostring(word(&head[16 + ps..16 + 2 * ps])).unwrap_or_default();
        (String::from_utf8_lossy(&version).into_owned(), modinfo)
    };
    let mut info = GoInfo {
        version,
        path: None,
        main_module: None,
        settings: BTreeMap::new(),
        deps: 0,
        names: None,
    };
    // The module info is framed by 16-byte binary sentinels: strip them as bytes.
    let body = if modinfo.len() >= 33 {
        String::from_utf8_lossy(&modinfo[16..modinfo.len() - 16]).into_owned()
    } else {
        String::new()
    };
    for line in body.lines() {
        let mut f = line.split('\t');
        match f.next() {
            Some("path") => info.path = f.next().map(str::to_string),
            Some("mod") => {
                let p = f.next().unwrap_or("");
                let v = f.next().unwrap_or("");
                info.main_module = Some(format!("{p} {v}").trim().to_string());
            }
            Some("dep") => info.deps += 1,
            Some("build") => {
                if let Some((k, v)) = f.next().and_then(|kv| kv.split_once('=')) {
                    info.settings.insert(k.to_string(), v.to_string());
                }
            }
            _ => {}
        }
    }
    Some(info)
}

/// Reads a uvarint length and that many bytes at `off`; returns the bytes and the
/// offset after them.
fn varint_bytes(r: &Reader, off: u64) -> Option<(Vec<u8>, u64)> {
    let head = r
        .bytes("Go build info", off, 10.min(r.size.saturating_sub(off)))
        .ok()?;
    let mut len: u64 = 0;
    let mut used = 0;
    for (i, &b) in head.iter().enumerate() {
        len |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            used = i + 1;
            break;
        }
    }
    if used == 0 || len > MAX_STRING {
        return None;
    }
    let start = off + used as u64;
    let bytes = r.bytes("Go build info", start, len).ok()?;
    Some((bytes, start + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pclntab(offset: u64, size: u64) -> Section {
        Section {
            name: ".gopclntab".into(),
            sh_type: 1,
            offset,
            size,
            entsize: 0,
        }
    }

    /// A Go 1.20 header (64-bit, little-endian) at offset 64 of a file: nfunc, nfiles,
    /// textStart, funcnameOffset, cuOffset.
    fn file(magic: u32, funcname: u64, cu: u64) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f.extend(magic.to_le_bytes());
        f.extend([0, 0, 1, 8]);
        for w in [10u64, 2, 0x40_0000, funcname, cu] {
            f.extend(w.to_le_bytes());
        }
        f.resize(64 + 0x100, 0);
        f
    }

    #[test]
    fn function_names_come_from_the_pclntab_header_or_the_whole_section() {
        let names = |f: &Vec<u8>, sections: &[Section]| {
            let r = Reader {
                src: f,
                size: f.len() as u64,
                le: true,
                is64: true,
            };
            function_names(&r, sections)
        };
        let sec = [pclntab(64, 0x100)];
        let f = file(0xffff_fff1, 0x60, 0x90);
        assert_eq!(names(&f, &sec), Some((64 + 0x60, 0x30)));
        // Go 1.16 has no textStart: the words are one earlier.
        let mut old = file(0xffff_fffa, 0x60, 0x90);
        old[64 + 8 + 16..64 + 8 + 32]
            .copy_from_slice(&[0x60, 0, 0, 0, 0, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(names(&old, &sec), Some((64 + 0x60, 0x30)));
        // An unknown magic, offsets out of order or past the section: the whole section.
        for f in [
            file(0x1234_5678, 0x60, 0x90),
            file(0xffff_fff1, 0x90, 0x60),
            file(0xffff_fff1, 0x60, 0x1000),
        ] {
            assert_eq!(names(&f, &sec), Some((64, 0x100)));
        }
        // A section past the end of the file, or none: no range.
        assert_eq!(names(&f, &[pclntab(64, 0x1000)]), None);
        assert_eq!(names(&f, &[]), None);
    }
}
