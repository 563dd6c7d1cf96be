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

/// The bytes of a file the kernel looks at for `#!` (BINPRM_BUF_SIZE).
pub const SHEBANG_BUF: usize = 256;

/// Parses a `#!` line exactly as Linux's binfmt_script does: only the first
/// [`SHEBANG_BUF`] bytes count; the line ends at `\n` (or a NUL); spaces and tabs
/// separate the interpreter from its one argument; `\r` is not special. `None` when the
/// kernel would refuse the file with ENOEXEC: no `#!`, no interpreter, or an interpreter
/// path cut off by the buffer's end.
pub fn parse_shebang(head: &[u8]) -> Option<Shebang> {
    let mut buf = [0u8; SHEBANG_BUF];
    let n = head.len().min(SHEBANG_BUF);
    buf[..n].copy_from_slice(&head[..n]);
    if !buf.starts_with(b"#!") {
        return None;
    }
    let sp = |c: u8| c == b' ' || c == b'\t';
    let last = SHEBANG_BUF - 1;
    // strnchr: the search for the newline stops at a NUL.
    let newline = buf
        .iter()
        .take_while(|&&c| c != 0)
        .position(|&c| c == b'\n');
    let mut end = match newline {
        Some(i) => i,
        None => {
            // No newline: accept only if the interpreter path visibly ends (a space, tab
            // or NUL follows it) within the buffer; otherwise it may be truncated.
            let first = (2..=last).find(|&i| !sp(buf[i]))?;
            (first..=last).find(|&i| sp(buf[i]) || buf[i] == 0)?;
            last
        }
    };
    while end > 2 && sp(buf[end - 1]) {
        end -= 1;
    }
    let name = (2..end).find(|&i| !sp(buf[i]))?;
    let sep = (name..=end).find(|&i| sp(buf[i]) || buf[i] == 0);
    let text = |a: usize, b: usize| {
        let b = (a..b).find(|&i| buf[i] == 0).unwrap_or(b);
        String::from_utf8_lossy(&buf[a..b]).into_owned()
    };
    let argument = match sep {
        Some(s) if buf[s] != 0 => (s..=end)
            .find(|&i| !sp(buf[i]))
            .filter(|&i| i < end)
            .map(|i| text(i, end)),
        _ => None,
    };
    Some(Shebang {
        interpreter: text(name, sep.unwrap_or(end).min(end)),
        argument: argument.filter(|a| !a.is_empty()),
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
    /// A FIFO, socket or device: its kind (`fifo`, `socket`, `character-device`,
    /// `block-device`). Not opened: opening a FIFO waits for a writer.
    Special(&'static str),
    /// An empty file.
    Empty,
    /// Text without `#!`.
    Text,
    /// An `ar` archive: a static library (`libc.a`) or a `.deb`.
    Archive,
    /// A program for another operating system: what it is (`a Mach-O program for
    /// macOS`) and its `inspect --json` format (`mach-o`, `pe`).
    Foreign(&'static str, &'static str),
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
            FileKind::Special(kind) => kind,
            FileKind::Empty => "empty",
            FileKind::Text => "text",
            FileKind::Archive => "ar-archive",
            FileKind::Foreign(_, format) => format,
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
    } else if head.starts_with(b"!<arch>\n") || head.starts_with(b"!<thin>\n") {
        FileKind::Archive
    } else if let Some(what) = foreign_program(head) {
        what
    } else if std::str::from_utf8(head).is_ok_and(|t| !t.contains('\0'))
        || std::str::from_utf8(&head[..head.len().saturating_sub(3)]).is_ok() && !head.contains(&0)
    {
        FileKind::Text
    } else {
        FileKind::Data
    }
}

/// A Mach-O (macOS) or PE (Windows) program, by its magic numbers: what `GOOS=darwin`
/// or `GOOS=windows` and other toolchains make.
fn foreign_program(head: &[u8]) -> Option<FileKind> {
    let be = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match be(0)? {
        0xfeed_face | 0xfeed_facf | 0xcefa_edfe | 0xcffa_edfe => {
            return Some(FileKind::Foreign("a Mach-O program for macOS", "mach-o"))
        }
        // A universal (fat) binary; a Java class file shares the magic but follows it
        // with its version (45 and up), never a count of architectures that small.
        0xcafe_babe if be(4).is_some_and(|n| (1..20).contains(&n)) => {
            return Some(FileKind::Foreign(
                "a universal Mach-O program for macOS",
                "mach-o",
            ))
        }
        _ => {}
    }
    if head.starts_with(b"MZ") {
        let pe = head
            .get(0x3c..0x40)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .and_then(|at| head.get(at..at + 4))
            .is_some_and(|sig| sig == b"PE\0\0");
        if pe {
            return Some(FileKind::Foreign("a PE program for Windows", "pe"));
        }
    }
    None
}

/// The first bytes of a file that say what it is: a `#!` line (the kernel reads 256),
/// and the headers of programs for other systems (a PE's signature lies within them).
pub fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)?
        .take(512)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// Inspects a host path. An ELF file that cannot be parsed is an error (it claims to
/// be a program and is broken); anything else gets a plain answer.
pub fn inspect_path(path: &Path) -> Result<FileKind> {
    let meta = std::fs::metadata(path)
        .map_err(|e| crate::error::input_error(path, "the file to inspect", e))?;
    if meta.is_dir() {
        return Ok(FileKind::Directory);
    }
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let special = [
            (t.is_fifo(), "fifo"),
            (t.is_socket(), "socket"),
            (t.is_char_device(), "character-device"),
            (t.is_block_device(), "block-device"),
        ];
        if let Some((_, kind)) = special.into_iter().find(|(is, _)| *is) {
            return Ok(FileKind::Special(kind));
        }
    }
    let head = read_head(path).io(|| format!("cannot read {}", path.display()))?;
    if elf::has_magic(&head) {
        return elf::parse_path(path)
            .map(|i| FileKind::Elf(Box::new(i)))
            .map_err(|error| Error::Elf {
                path: path.display().to_string(),
                error,
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
    // A library named by a relative path (`gcc … ./libx.so`) is opened from the
    // working directory: this one, as ldd does, when it lies in the tree.
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| std::fs::canonicalize(d).ok())
        .and_then(|d| {
            d.strip_prefix(&base)
                .ok()
                .and_then(|r| r.to_str())
                .map(|r| format!("/{r}"))
        });
    let opts = crate::loader::Options {
        cwd: cwd.unwrap_or_else(|| "/".to_string()),
        ..crate::loader::Options::default()
    };
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
    fn programs_of_other_systems_are_named() {
        let format = |b: &[u8]| classify_head(b).format();
        let mut macho = vec![0xcf, 0xfa, 0xed, 0xfe];
        macho.resize(64, 0);
        assert_eq!(format(&macho), "mach-o");
        let mut fat = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2];
        fat.resize(64, 0);
        assert_eq!(format(&fat), "mach-o");
        // A Java class file shares the magic, followed by its version.
        let mut class = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52];
        class.resize(64, 0);
        assert_eq!(format(&class), "data");
        let mut pe = b"MZ".to_vec();
        pe.resize(0x80, 0);
        pe[0x3c] = 0x40;
        pe[0x40..0x44].copy_from_slice(b"PE\0\0");
        assert_eq!(format(&pe), "pe");
        // MZ alone (a DOS program, or data starting so) is no PE.
        pe[0x40] = b'X';
        assert_eq!(format(&pe), "data");
    }

    #[test]
    fn shebangs_parse_like_the_kernel() {
        let s = |b: &[u8]| parse_shebang(b);
        assert_eq!(s(b"#!/bin/sh\necho").unwrap().interpreter, "/bin/sh");
        assert_eq!(s(b"#!/bin/sh\r\n").unwrap().interpreter, "/bin/sh\r");
        let e = s(b"#! /usr/bin/env  python3 -u\n").unwrap();
        assert_eq!(e.interpreter, "/usr/bin/env");
        assert_eq!(e.argument.as_deref(), Some("python3 -u"));
        assert!(s(b"#!\n").is_none());
        assert!(s(b"#!  \t\n").is_none());
        assert!(s(b"echo hi").is_none());
        // A NUL ends the line, and the interpreter path.
        assert_eq!(s(b"#!/bin/sh\0 -x\n").unwrap().interpreter, "/bin/sh");
        assert_eq!(
            s(b"#!/bin/sh -e\0x\n").unwrap().argument.as_deref(),
            Some("-e")
        );
        // No newline in the first 256 bytes: an interpreter path that runs to the end may
        // be truncated (ENOEXEC); one followed by a space is fine, its argument cut.
        let long = [b"#!/".as_slice(), &[b'a'; 300]].concat();
        assert!(s(&long).is_none());
        let cut = [b"#!/bin/sh ".as_slice(), &[b'x'; 300]].concat();
        let c = s(&cut).unwrap();
        assert_eq!(c.interpreter, "/bin/sh");
        assert_eq!(c.argument.unwrap().len(), 255 - 10);
        assert_eq!(s(b"#!/bin/sh").unwrap().interpreter, "/bin/sh");
    }

    #[test]
    fn heads_classify() {
        assert_eq!(classify_head(b"").format(), "empty");
        assert_eq!(classify_head(b"hello\n").format(), "text");
        assert_eq!(classify_head(b"#!/bin/sh\n").format(), "script");
        assert_eq!(
            classify_head(b"!<arch>\n/               0").format(),
            "ar-archive"
        );
        assert_eq!(classify_head(&[0, 159, 146, 150]).format(), "data");
    }
}
