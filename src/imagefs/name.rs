//! The one gate every name inside a layer or an image archive passes, for every reader
//! (`check`, `tree`, `unpack`/`run`, archives, `ADD`): names are cleaned lexically as
//! Docker does (`/abs` and `./a//b/` are relative to the root, `a/../b` is `b`), a `..`
//! that would climb above the root, a NUL byte or an over-long name is refused, and
//! whiteouts are recognized here only. An entry whose PAX and GNU names disagree is
//! refused here too ([`name_ambiguity`]), since readers would put it in different places.

/// Longest entry name accepted (Linux's PATH_MAX).
pub const MAX_NAME: usize = 4096;

/// Longest name of one file or directory (Linux's NAME_MAX).
pub const MAX_COMPONENT: usize = 255;

/// What a layer entry's name means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryName {
    /// A path under the root, as components (none: the root itself).
    Path(Vec<Vec<u8>>),
    /// `DIR/.wh.NAME`: remove `NAME` that lower layers put in `DIR`.
    Whiteout {
        /// The directory.
        dir: Vec<Vec<u8>>,
        /// The name removed (one component, never `.` or `..`).
        name: Vec<u8>,
    },
    /// `DIR/.wh..wh..opq`: hide everything lower layers put in `DIR`.
    Opaque {
        /// The directory.
        dir: Vec<Vec<u8>>,
    },
    /// Other aufs metadata (`.wh..wh.plnk`…), which carries nothing for a bundle.
    Ignored,
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Cleans a layer path (an entry name or a hard link target) into components relative
/// to the root: a leading `/` and `.` components are dropped, `..` removes the
/// component before it and may not climb above the root (as Docker does), NUL bytes and
/// over-long names are refused.
pub fn clean_path(raw: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if raw.len() > MAX_NAME {
        return Err(format!("is longer than {MAX_NAME} bytes"));
    }
    if raw.contains(&0) {
        return Err("contains a NUL byte".into());
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        if comp.len() > MAX_COMPONENT {
            return Err(format!(
                "has a component longer than {MAX_COMPONENT} bytes, which no Linux file system holds"
            ));
        }
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("climbs out of the root with '..'".into());
                }
            }
            _ => out.push(comp.to_vec()),
        }
    }
    Ok(out)
}

/// Validates and classifies an entry name: the single gate every layer entry passes.
pub fn classify(raw: &[u8]) -> Result<EntryName, String> {
    let mut comps = clean_path(raw)?;
    let Some(last) = comps.last() else {
        return Ok(EntryName::Path(comps));
    };
    if !last.starts_with(WHITEOUT) {
        return Ok(EntryName::Path(comps));
    }
    let last = comps.pop().unwrap_or_default();
    if last == OPAQUE {
        return Ok(EntryName::Opaque { dir: comps });
    }
    if last.starts_with(b".wh..wh.") {
        return Ok(EntryName::Ignored);
    }
    let name = last[WHITEOUT.len()..].to_vec();
    if name.is_empty() || name == b"." || name == b".." {
        return Err("is a whiteout that names nothing".into());
    }
    Ok(EntryName::Whiteout { dir: comps, name })
}

/// A cleaned name as one string (`a/b`; empty for the root), for readers that index by
/// name. Bytes that are not UTF-8 are written as `\xNN` ([`name_string`]).
pub fn normalize_name(raw: &[u8]) -> Result<String, String> {
    let comps = clean_path(raw)?;
    Ok(name_string(&comps.join(&b'/')))
}

/// A name's bytes as a string that keeps them apart: UTF-8 as it is, every other byte as
/// `\xNN`. A replacement character would make `caf\xe9` and `caf\xe8` one path (one
/// whiteout would remove both, and `tree` would count one file twice).
pub fn name_string(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Why readers would disagree on an entry's name or contents, if they would, and so
/// every nobase tar reader refuses it:
/// * its PAX records give a `path` (or `linkpath`) other than the one it is read with,
///   because a GNU long name overrode it. Go's archive/tar (which runtimes unpack with)
///   and the tar crate take the GNU name, GNU tar the PAX one;
/// * it is a sparse file in GNU tar's PAX format (`GNU.sparse.*` records, from `tar
///   --sparse --format=posix`). Go's archive/tar and GNU tar expand it under its real
///   name; the tar crate reads a file named `GNUSparseFile.N/NAME` holding the packed
///   chunks (and, in format 1.0, their map), so `check` said a program that runs was
///   missing and `unpack` wrote the wrong file.
pub fn name_ambiguity<R: std::io::Read>(entry: &mut tar::Entry<'_, R>) -> Option<String> {
    let mut pax: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut sparse = None;
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            match ext.key_bytes() {
                b"path" => pax.push(("path", ext.value_bytes().to_vec())),
                b"linkpath" => pax.push(("linkpath", ext.value_bytes().to_vec())),
                b"GNU.sparse.name" => sparse = Some(ext.value_bytes().to_vec()),
                k if k.starts_with(b"GNU.sparse.") => {
                    sparse.get_or_insert_with(Vec::new);
                }
                _ => {}
            }
        }
    }
    if let Some(real) = sparse {
        let real = match real.is_empty() {
            true => String::new(),
            false => format!(" {:?}", name_string(&real)),
        };
        return Some(format!(
            "is the sparse file{real} in GNU tar's PAX format (GNU.sparse.* records), which tar readers resolve differently: Go's archive/tar and GNU tar expand it under its real name, nobase does not read it; write the layer without --sparse, or in GNU format (tar --format=gnu), whose sparse files nobase reads"
        ));
    }
    for (key, value) in pax {
        let used = match key {
            "path" => Some(entry.path_bytes().into_owned()),
            _ => entry.link_name_bytes().map(|b| b.into_owned()),
        };
        if used.as_deref() != Some(value.as_slice()) {
            return Some(format!(
                "has a PAX {key} {:?} and a GNU long name {:?}, which tar readers resolve differently",
                String::from_utf8_lossy(&value),
                String::from_utf8_lossy(used.as_deref().unwrap_or_default())
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> Vec<Vec<u8>> {
        parts.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn bytes_that_are_not_utf8_are_escaped_one_by_one() {
        assert_eq!(name_string(b"caf\xc3\xa9"), "café");
        assert_eq!(name_string(b"caf\xe9"), "caf\\xe9");
        assert_ne!(name_string(b"caf\xe9"), name_string(b"caf\xe8"));
        assert_eq!(normalize_name(b"./a/\xff\xfe/b").unwrap(), "a/\\xff\\xfe/b");
    }

    #[test]
    fn names_normalize_or_are_refused() {
        let cases: &[(&str, Option<&str>)] = &[
            ("./usr/bin/env", Some("usr/bin/env")),
            ("/abs/x", Some("abs/x")),
            ("a//b/./c/", Some("a/b/c")),
            ("./", Some("")),
            ("a/..", Some("")),
            ("a/b/../c", Some("a/c")),
            ("../x", None),
            ("a/../../x", None),
            ("a\0b", None),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalize_name(raw.as_bytes()).ok().as_deref(),
                *want,
                "{raw:?}"
            );
        }
        assert_eq!(
            normalize_name(b"../x").unwrap_err(),
            "climbs out of the root with '..'"
        );
    }

    #[test]
    fn entry_names_are_cleaned_or_refused() {
        let table: &[(&str, Result<EntryName, ()>)] = &[
            ("app/hello", Ok(EntryName::Path(p(&["app", "hello"])))),
            ("./app//x/", Ok(EntryName::Path(p(&["app", "x"])))),
            ("/abs/x", Ok(EntryName::Path(p(&["abs", "x"])))),
            ("a/../b", Ok(EntryName::Path(p(&["b"])))),
            ("./", Ok(EntryName::Path(vec![]))),
            ("../../x", Err(())),
            ("/../x", Err(())),
            ("a/../../x", Err(())),
            (
                "a/.wh.b",
                Ok(EntryName::Whiteout {
                    dir: p(&["a"]),
                    name: b"b".to_vec(),
                }),
            ),
            (
                ".wh.x",
                Ok(EntryName::Whiteout {
                    dir: vec![],
                    name: b"x".to_vec(),
                }),
            ),
            ("a/.wh..wh..opq", Ok(EntryName::Opaque { dir: p(&["a"]) })),
            ("a/.wh..wh.plnk", Ok(EntryName::Ignored)),
            ("a/.wh.", Err(())),
            ("a/.wh..", Err(())),
            ("../.wh.x", Err(())),
            ("a\0b", Err(())),
        ];
        for (raw, want) in table {
            let got = classify(raw.as_bytes()).map_err(|_| ());
            assert_eq!(&got, want, "{raw:?}");
        }
        assert!(classify(&vec![b'a'; 5000]).is_err());
    }
}
