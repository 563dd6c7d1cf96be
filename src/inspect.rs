//! What a file is, the way `file` would say it, without running it: ELF facts, or a
//! script and its interpreter, or text, data, a directory.

use crate::elf::{self, ElfInfo};
use crate::error::{Error, IoContext, Result};
use std::io::Read;
use std::path::Path;

/// A `#!` line, split as the kernel splits it: the interpreter path, then at most one
/// argument (the rest of the line, untrimmed on the right except for the newline).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Shebang {
    /// The interpreter path, exactly as written (a trailing `\r` is part of it).
    pub interpreter: String,
    /// The optional argument.
    pub argument: Option<String>,
}

/// Parses a `#!` line the way Linux's binfmt_script does (spaces and tabs separate the
/// interpreter from its one argument; the line ends at `\n`; `\r` is not special).
pub fn parse_shebang(head: &[u8]) -> Option<Shebang> {
    let rest = head.strip_prefix(b"#!")?;
    let line = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => &rest[..i],
        None => rest,
    };
    let line = String::from_utf8_lossy(line);
    let line = line.trim_start_matches([' ', '\t']);
    let line = line.trim_end_matches([' ', '\t']);
    if line.is_empty() {
        return None;
    }
    let (interp, arg) = match line.find([' ', '\t']) {
        Some(i) => (
            &line[..i],
            Some(line[i..].trim_start_matches([' ', '\t']).to_string()),
        ),
        None => (line, None),
    };
    Some(Shebang {
        interpreter: interp.to_string(),
        argument: arg.filter(|a| !a.is_empty()),
    })
}

/// What a file is.
#[derive(Clone, Debug)]
pub enum FileKind {
    /// An ELF object.
    Elf(Box<ElfInfo>),
    /// A script with a `#!` line.
    Script(Shebang),
    /// A directory.
    Directory,
    /// An empty file.
    Empty,
    /// Text without `#!`.
    Text,
    /// Anything else.
    Data,
}

impl FileKind {
    /// The `format` field of `inspect --json`.
    pub fn format(&self) -> &'static str {
        match self {
            FileKind::Elf(_) => "elf",
            FileKind::Script(_) => "script",
            FileKind::Directory => "directory",
            FileKind::Empty => "empty",
            FileKind::Text => "text",
            FileKind::Data => "data",
        }
    }
}

/// Classifies the first bytes of a non-ELF file.
pub fn classify_head(head: &[u8]) -> FileKind {
    if head.is_empty() {
        FileKind::Empty
    } else if let Some(s) = parse_shebang(head) {
        FileKind::Script(s)
    } else if std::str::from_utf8(head).is_ok_and(|t| !t.contains('\0'))
        || std::str::from_utf8(&head[..head.len().saturating_sub(3)]).is_ok() && !head.contains(&0)
    {
        FileKind::Text
    } else {
        FileKind::Data
    }
}

/// Inspects a host path. An ELF file that cannot be parsed is an error (it claims to
/// be a program and is broken); anything else gets a plain answer.
pub fn inspect_path(path: &Path) -> Result<FileKind> {
    let meta = std::fs::metadata(path).io(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        return Ok(FileKind::Directory);
    }
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .io(|| format!("cannot read {}", path.display()))?
        .take(512)
        .read_to_end(&mut head)
        .io(|| format!("cannot read {}", path.display()))?;
    if elf::has_magic(&head) {
        return elf::parse_path(path)
            .map(|i| FileKind::Elf(Box::new(i)))
            .map_err(|source| Error::Elf {
                path: path.display().to_string(),
                source,
            });
    }
    Ok(classify_head(&head))
}

/// A host file's loader closure, resolved in a root, with its run-time blind spots.
pub struct Resolved {
    /// The closure.
    pub closure: crate::loader::Closure,
    /// What dlopen may need beyond it.
    pub blind_spots: Vec<crate::loader::dlopen::BlindSpot>,
}

/// Resolves the loader and libraries of the ELF file at host path `path` in the tree at
/// `root_dir` (`/` for the host). A file inside that tree is resolved where it is; a file
/// outside it is placed at its own absolute path on top of the tree, so its `$ORIGIN`
/// names directories of the tree.
pub fn resolve_in(path: &Path, root_dir: &Path, info: &ElfInfo) -> Result<Resolved> {
    use crate::root::{HostRoot, Root};
    let file = std::fs::canonicalize(path).io(|| format!("cannot read {}", path.display()))?;
    let base = std::fs::canonicalize(root_dir)
        .io(|| format!("cannot use {} as a root", root_dir.display()))?;
    let host = HostRoot::new(&base);
    let opts = crate::loader::Options::default();
    let in_root = file
        .strip_prefix(&base)
        .ok()
        .and_then(|r| r.to_str())
        .map(|r| format!("/{r}"));
    let done = |root: &dyn crate::root::Root, exe: &str| -> Result<Resolved> {
        let closure = crate::loader::resolve(root, exe, Some(info), &opts)?;
        let blind_spots = crate::loader::dlopen::blind_spots(root, &closure);
        Ok(Resolved {
            closure,
            blind_spots,
        })
    };
    match in_root {
        Some(p) => done(&host, &p),
        None => {
            let exe = file
                .to_str()
                .ok_or_else(|| Error::Invalid(format!("{}: path is not UTF-8", file.display())))?;
            let mut upper = crate::tree::ImageTree::new();
            upper.add_host(&file, exe)?;
            let overlay = crate::tree::Overlay {
                upper: &upper,
                lower: &host,
            };
            let mut r = done(&overlay, exe)?;
            r.closure.root = host.describe();
            Ok(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_parse_like_the_kernel() {
        let s = |b: &[u8]| parse_shebang(b);
        assert_eq!(s(b"#!/bin/sh\necho").unwrap().interpreter, "/bin/sh");
        assert_eq!(s(b"#!/bin/sh\r\n").unwrap().interpreter, "/bin/sh\r");
        let e = s(b"#! /usr/bin/env  python3 -u\n").unwrap();
        assert_eq!(e.interpreter, "/usr/bin/env");
        assert_eq!(e.argument.as_deref(), Some("python3 -u"));
        assert!(s(b"#!\n").is_none());
        assert!(s(b"echo hi").is_none());
    }

    #[test]
    fn heads_classify() {
        assert_eq!(classify_head(b"").format(), "empty");
        assert_eq!(classify_head(b"hello\n").format(), "text");
        assert_eq!(classify_head(b"#!/bin/sh\n").format(), "script");
        assert_eq!(classify_head(&[0, 159, 146, 150]).format(), "data");
    }
}
