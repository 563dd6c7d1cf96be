//! `ADD` of a local tar archive: recognized as Docker does (plain, gzip or zstd tar;
//! bzip2 and xz are named and refused), and its entries turned into image entries under
//! the destination — never written to the host. Names with `..` are refused, absolute
//! names are taken relative to the destination, nothing is placed through a symlink, and
//! hard links must point at an earlier file of the same archive; caps on entries and
//! bytes stop decompression bombs.

use super::spool::Spool;
use crate::error::{Error, IoContext, Result};
use crate::imagefs::name::clean_path;
use crate::tree::{Entry, Node};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

/// Most entries one archive may have.
pub const MAX_ENTRIES: usize = 1 << 20;
/// Most bytes of file content one archive may unpack to.
pub const MAX_BYTES: u64 = 64 << 30;

/// How an archive is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// A plain tar.
    Plain,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

fn open_packed(path: &Path, p: Packing) -> Result<Box<dyn Read>> {
    let f = std::fs::File::open(path).io(|| format!("reading {}", path.display()))?;
    let r = io::BufReader::with_capacity(1 << 16, f);
    Ok(match p {
        Packing::Plain => Box::new(r),
        Packing::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Packing::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(r)
                .io(|| format!("reading {}", path.display()))?,
        ),
    })
}

/// True when `block` is a tar header with a valid checksum.
fn is_tar_header(block: &[u8; 512]) -> bool {
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| ('0'..='7').contains(c))
        .collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    stored == sum
}

/// Whether the host file at `path` is a tar archive `ADD` should extract, and how it is
/// packed. Anything else is copied as a file, as Docker does.
pub fn detect(path: &Path) -> Result<Option<Packing>> {
    let mut magic = [0u8; 6];
    let n = {
        let mut f = std::fs::File::open(path).io(|| format!("reading {}", path.display()))?;
        read_full(&mut f, &mut magic).io(|| format!("reading {}", path.display()))?
    };
    let m = &magic[..n];
    let packing = if m.starts_with(&[0x1f, 0x8b]) {
        Packing::Gzip
    } else if m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Packing::Zstd
    } else if m.starts_with(b"BZh") || m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(Error::Usage(format!(
            "{} is a bzip2 or xz archive, which nobase cannot unpack; recompress it with gzip or zstd, or unpack it and COPY the files",
            path.display()
        )));
    } else {
        Packing::Plain
    };
    let mut r = open_packed(path, packing)?;
    let mut block = [0u8; 512];
    // A compressed file that does not decompress is simply not an archive.
    let n = read_full(&mut r, &mut block).unwrap_or(0);
    Ok((n == 512 && is_tar_header(&block)).then_some(packing))
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A name inside the archive, relative and without `.`; `None` for the archive root.
/// Names pass the same gate as layer entries ([`crate::imagefs::name`]).
fn entry_name(raw: &[u8], archive: &str) -> Result<Option<String>> {
    let shown = String::from_utf8_lossy(raw);
    let comps = clean_path(raw).map_err(|why| {
        Error::Invalid(format!(
            "{archive}: entry {shown:?} {why}; nobase refuses such archives"
        ))
    })?;
    let name = String::from_utf8(comps.join(&b'/'))
        .map_err(|_| Error::Invalid(format!("{archive}: an entry name is not UTF-8")))?;
    Ok((!name.is_empty()).then_some(name))
}

/// Unpacks the archive at `path` into entries at `dest/<name>` (dest absolute,
/// normalized), in archive order; later entries replace earlier ones.
pub fn extract(
    path: &Path,
    packing: Packing,
    dest: &str,
    spool: &mut Spool,
) -> Result<Vec<(String, Entry)>> {
    let shown = path.display().to_string();
    let mut archive = tar::Archive::new(open_packed(path, packing)?);
    let mut out: Vec<(String, Entry)> = Vec::new();
    // name → index in `out`, to find hard link targets and parents already placed.
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    let mut bytes = 0u64;
    let join = |name: &str| {
        if dest == "/" {
            format!("/{name}")
        } else {
            format!("{dest}/{name}")
        }
    };
    let entries = archive.entries().io(|| format!("reading {shown}"))?;
    for (count, entry) in entries.enumerate() {
        if count >= MAX_ENTRIES {
            return Err(Error::Invalid(format!(
                "{shown} has more than {MAX_ENTRIES} entries; nobase stops there"
            )));
        }
        let mut entry = entry.io(|| format!("reading {shown}"))?;
        if let Some(why) = crate::imagefs::name::name_ambiguity(&mut entry) {
            return Err(Error::Invalid(format!(
                "{shown}: entry {:?} {why}; nobase refuses the archive",
                String::from_utf8_lossy(&entry.path_bytes())
            )));
        }
        let header = entry.header().clone();
        let Some(name) = entry_name(&entry.path_bytes(), &shown)? else {
            continue;
        };
        // Nothing may be placed below something that is not a directory in the archive:
        // `link -> /` followed by `link/x` would write through the link.
        for (i, _) in name.match_indices('/') {
            if let Some(&at) = placed.get(&name[..i]) {
                if !matches!(out[at].1.node, Node::Dir) {
                    return Err(Error::Invalid(format!(
                        "{shown}: entry {name:?} goes through {:?}, which is not a directory in the archive; nobase does not place files through links",
                        &name[..i]
                    )));
                }
            }
        }
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = u32::try_from(header.uid().unwrap_or(0)).unwrap_or(0);
        let gid = u32::try_from(header.gid().unwrap_or(0)).unwrap_or(0);
        let kind = header.entry_type();
        let node = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                bytes = bytes.saturating_add(size);
                if bytes > MAX_BYTES {
                    return Err(Error::Invalid(format!(
                        "{shown} unpacks to more than {MAX_BYTES} bytes; nobase stops there"
                    )));
                }
                let content = spool.keep_read(&mut entry, size, &format!("{name} in {shown}"))?;
                Node::File { content, size }
            }
            tar::EntryType::Directory => Node::Dir,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .filter(|t| !t.is_empty() && !t.contains('\0'))
                    .ok_or_else(|| {
                        Error::Invalid(format!("{shown}: symlink {name:?} has no usable target"))
                    })?;
                // The link is data in the image: nobase never follows it on the host, and
                // nothing later in the archive is placed through it (checked above).
                Node::Symlink(target)
            }
            tar::EntryType::Link => {
                let raw = entry.link_name_bytes().unwrap_or_default();
                let target = entry_name(&raw, &shown)?.unwrap_or_default();
                let linked = placed
                    .get(&target)
                    .map(|&i| &out[i].1)
                    .filter(|e| matches!(e.node, Node::File { .. }))
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "{shown}: hard link {name:?} points at {target:?}, which is not an earlier file of the archive; nobase refuses links out of it"
                        ))
                    })?;
                let e = linked.clone();
                placed.insert(name.clone(), out.len());
                out.push((join(&name), e));
                continue;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                return Err(Error::Invalid(format!(
                    "{shown}: entry {name:?} is a {other:?} (devices, FIFOs and sparse files cannot go into a nobase layer)"
                )))
            }
        };
        placed.insert(name.clone(), out.len());
        out.push((
            join(&name),
            Entry {
                node,
                mode,
                uid,
                gid,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o640);
            h.set_size(data.len() as u64);
            // Names are written raw so hostile ones (`../x`) survive.
            let nb = name.as_bytes();
            h.as_old_mut().name[..nb.len()].copy_from_slice(nb);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn unpack(bytes: &[u8]) -> Result<Vec<(String, Entry)>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar");
        std::fs::write(&p, bytes).unwrap();
        let mut spool = Spool::new(dir.path().to_path_buf());
        assert_eq!(detect(&p).unwrap(), Some(Packing::Plain));
        extract(&p, Packing::Plain, "/dst", &mut spool)
    }

    #[test]
    fn plain_archives_unpack_under_the_destination() {
        use tar::EntryType as T;
        let got = unpack(&tar_with(&[
            ("./", T::Directory, "", b""),
            ("d/", T::Directory, "", b""),
            ("d/f", T::Regular, "", b"hi"),
            ("/abs", T::Regular, "", b"x"),
            ("d/h", T::Link, "d/f", b""),
            ("l", T::Symlink, "../../etc", b""),
        ]))
        .unwrap();
        let names: Vec<_> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            ["/dst/d", "/dst/d/f", "/dst/abs", "/dst/d/h", "/dst/l"]
        );
        assert_eq!(got[1].1.mode, 0o640);
        assert!(matches!(&got[3].1.node, Node::File { size: 2, .. }));
    }

    #[test]
    fn hostile_archives_are_refused() {
        use tar::EntryType as T;
        for (entries, why) in [
            (vec![("../x", T::Regular, "", &b"x"[..])], "climbs out"),
            (vec![("a/../../x", T::Regular, "", &b"x"[..])], "climbs out"),
            (
                vec![
                    ("pwn", T::Symlink, "/", &b""[..]),
                    ("pwn/etc/x", T::Regular, "", &b"x"[..]),
                ],
                "not a directory",
            ),
            (
                vec![("h", T::Link, "/etc/shadow", &b""[..])],
                "not an earlier file",
            ),
            (vec![("h", T::Link, "../x", &b""[..])], "climbs out"),
            (vec![("dev", T::Char, "", &b""[..])], "devices"),
        ] {
            let e = unpack(&tar_with(&entries)).unwrap_err().to_string();
            assert!(e.contains(why), "{entries:?}: {e}");
        }
    }

    #[test]
    fn non_archives_are_not_detected() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("text", &b"just text, longer than nothing"[..]),
            ("empty", &b""[..]),
            ("zeros", &[0u8; 1024][..]),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(detect(&p).unwrap(), None, "{name}");
        }
        let p = dir.path().join("x.bz2");
        std::fs::write(&p, b"BZh91AY&SY").unwrap();
        assert!(detect(&p).is_err());
    }
}
