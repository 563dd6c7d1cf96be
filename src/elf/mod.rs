//! Reading ELF executables without running them: class, machine, type, PT_INTERP,
//! DT_NEEDED, RPATH/RUNPATH, symbol versions, imports, stripped-ness and Go build info.
//!
//! Why our own reader rather than goblin (DESIGN.md's first choice): goblin parses a
//! `&[u8]` of the whole file, so reading a 700 MB Go plugin cost 692 MB of resident memory
//! (measured with `/usr/bin/time -v` on terraform-provider-aws); this reader fetches only
//! the headers and tables it needs with positioned reads, so memory is a few KiB whatever
//! the file's size, and every offset and count from the file is checked here before use.

pub mod arm;
pub mod go;
mod source;

pub use source::{FileSource, ReadAt};

use std::collections::BTreeMap;
use std::io;

/// Largest single table (string table, symbol table, section headers) we agree to read.
/// Real binaries stay far below; a header claiming more is corrupt or hostile.
const MAX_TABLE: u64 = 64 << 20;
/// Most entries walked in any linked list or table (dynamic entries, version records).
const MAX_ENTRIES: u64 = 1 << 20;

/// Why a file could not be read as ELF.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file does not start with `\x7fELF`.
    #[error("not an ELF file")]
    NotElf,
    /// A header points outside the file.
    #[error("{what} lies outside the file (bytes {offset}..{end} of {size}); the file is truncated or corrupt")]
    OutOfBounds {
        /// The structure being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// Where it ends.
        end: u128,
        /// The file's size.
        size: u64,
    },
    /// A header field holds an impossible value.
    #[error("corrupt ELF: {0}")]
    Invalid(String),
    /// The underlying read failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

type Result<T> = std::result::Result<T, ElfError>;

/// What kind of object a file is, in the words `file` would use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An executable with no loader: starts on its own in `FROM scratch`.
    Static,
    /// A position-independent static executable (`gcc -static-pie`): no loader either.
    StaticPie,
    /// An executable that needs a loader (PT_INTERP) and usually libraries.
    Dynamic,
    /// A shared library (`.so`).
    SharedLibrary,
    /// An object file (`.o`).
    Relocatable,
    /// A core dump.
    Core,
    /// Any other e_type.
    Other,
}

impl Kind {
    /// True for the kinds that can start without a loader.
    pub fn is_static(self) -> bool {
        matches!(self, Kind::Static | Kind::StaticPie)
    }

    /// True for the kinds the kernel can exec.
    pub fn is_executable(self) -> bool {
        matches!(self, Kind::Static | Kind::StaticPie | Kind::Dynamic)
    }

    /// A few words for human output.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Static => "statically linked executable",
            Kind::StaticPie => "static-pie executable",
            Kind::Dynamic => "dynamically linked executable",
            Kind::SharedLibrary => "shared library",
            Kind::Relocatable => "relocatable object",
            Kind::Core => "core dump",
            Kind::Other => "ELF object of unknown type",
        }
    }
}

/// The versions one library must provide (from DT_VERNEED).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VersionNeed {
    /// The library's name as written (`libc.so.6`).
    pub library: String,
    /// The version names (`GLIBC_2.34`), sorted.
    pub versions: Vec<String>,
}

/// Everything nobase reads from an ELF file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ElfInfo {
    /// 32 or 64.
    pub class: u8,
    /// True for little-endian.
    #[serde(skip)]
    pub little_endian: bool,
    /// The raw e_machine.
    #[serde(skip)]
    pub e_machine: u16,
    /// The raw e_flags.
    #[serde(skip)]
    pub e_flags: u32,
    /// Human machine name (`x86-64`).
    pub machine: String,
    /// OCI architecture (`amd64`), when the machine is one OCI names.
    pub architecture: Option<String>,
    /// OCI variant (`v7` for 32-bit ARM), when one applies.
    pub variant: Option<String>,
    /// The operating system it is for, as OCI names it: `linux` unless the ELF OS/ABI
    /// byte names another (FreeBSD, NetBSD, OpenBSD, Solaris) or Go's build settings say
    /// `GOOS` is another.
    pub os: String,
    /// Static, dynamic, shared library…
    #[serde(rename = "type")]
    pub kind: Kind,
    /// PT_INTERP: the loader the kernel starts.
    pub interpreter: Option<String>,
    /// DT_SONAME.
    pub soname: Option<String>,
    /// DT_NEEDED, in order.
    pub needed: Vec<String>,
    /// DT_RPATH entries, unexpanded.
    pub rpath: Vec<String>,
    /// DT_RUNPATH entries, unexpanded.
    pub runpath: Vec<String>,
    /// DT_VERNEED: versions required of each library.
    pub version_needs: Vec<VersionNeed>,
    /// DT_VERDEF: versions this object defines (for libraries), without the base entry.
    pub version_defs: Vec<String>,
    /// Undefined dynamic symbols (what the object imports), sorted.
    #[serde(skip)]
    pub imports: Vec<String>,
    /// The imports that are not weak: the loader must find each in the objects loaded,
    /// or stop ("symbol lookup error"). Sorted.
    #[serde(skip)]
    pub required: Vec<String>,
    /// Dynamic symbols the object defines for others (global or weak), sorted; read
    /// only by [`parse_with_symbols`].
    #[serde(skip)]
    pub defined: Vec<String>,
    /// Required imports that data relocations name (GLOB_DAT, absolute addresses,
    /// copies): bound at load time even when functions are bound lazily. Sorted.
    #[serde(skip)]
    pub bound_at_start: Vec<String>,
    /// Symbols the object copies from a library at load time (copy relocations of a
    /// non-PIC executable's data): defined in its own table, but a library must define
    /// them too. Sorted.
    #[serde(skip)]
    pub copied: Vec<String>,
    /// Every symbol is bound at load time (DT_BIND_NOW, DF_BIND_NOW or DF_1_NOW, as
    /// `-z now` and most hardened builds set): one the loader cannot find stops the
    /// program before `main`, not when it is first called.
    #[serde(skip)]
    pub bind_now: bool,
    /// No `.symtab` section.
    pub stripped: bool,
    /// The compiler named in `.comment` (`rustc version 1.95.0`, `GCC: (Debian) 12.2.0`).
    pub compiler: Option<String>,
    /// Go build information, for Go binaries.
    pub go: Option<go::GoInfo>,
    /// Where the file data of the last PT_LOAD segment ends: a file shorter than this is
    /// truncated, and the kernel cannot map it.
    #[serde(skip)]
    pub load_end: u64,
}

/// `a` or `an` before a machine or system name, as it is read aloud ("an ARM aarch64",
/// "an x86-64", "a freebsd", "a RISC-V").
pub fn article(word: &str) -> &'static str {
    let vowel = word
        .chars()
        .next()
        .is_some_and(|c| "AEIOUaeiou".contains(c));
    if vowel || word.starts_with("x86") {
        "an"
    } else {
        "a"
    }
}

impl ElfInfo {
    /// The OCI platform `os/arch[/variant]`, if the machine is known.
    pub fn platform(&self) -> Option<String> {
        let arch = self.architecture.as_deref()?;
        let os = &self.os;
        Some(match &self.variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        })
    }

    /// True when the binary is a Go program.
    pub fn is_go(&self) -> bool {
        self.go.is_some()
    }

    /// A one-line summary in the manner of `file`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "ELF {}-bit {} {}, {}",
            self.class,
            if self.little_endian { "LSB" } else { "MSB" },
            self.kind.describe(),
            self.machine
        );
        if let Some(p) = self.platform() {
            s.push_str(&format!(" ({p})"));
        }
        if let Some(i) = &self.interpreter {
            s.push_str(&format!(", interpreter {i}"));
        }
        if let Some(g) = &self.go {
            s.push_str(&format!(", Go {}", g.version));
        }
        s.push_str(if self.stripped {
            ", stripped"
        } else {
            ", not stripped"
        });
        s
    }
}

/// Maps an ELF machine to its name and OCI architecture/variant.
fn machine_names(
    machine: u16,
    is64: bool,
    le: bool,
) -> (&'static str, Option<&'static str>, Option<&'static str>) {
    match (machine, is64, le) {
        (62, true, true) => ("x86-64", Some("amd64"), None),
        (3, false, true) => ("Intel 80386", Some("386"), None),
        (183, true, true) => ("ARM aarch64", Some("arm64"), None),
        (40, false, true) => ("ARM", Some("arm"), Some(arm::DEFAULT_VARIANT)),
        (21, true, true) => ("64-bit PowerPC", Some("ppc64le"), None),
        (21, true, false) => ("64-bit PowerPC", Some("ppc64"), None),
        (22, true, false) => ("IBM S/390", Some("s390x"), None),
        (243, true, true) => ("RISC-V", Some("riscv64"), None),
        (8, false, true) => ("MIPS", Some("mipsle"), None),
        (8, false, false) => ("MIPS", Some("mips"), None),
        (8, true, true) => ("MIPS64", Some("mips64le"), None),
        (8, true, false) => ("MIPS64", Some("mips64"), None),
        (258, true, true) => ("LoongArch", Some("loong64"), None),
        (62, ..) => ("x86-64", None, None),
        (3, ..) => ("Intel 80386", None, None),
        (183, ..) => ("ARM aarch64", None, None),
        (40, ..) => ("ARM", None, None),
        _ => ("unknown machine", None, None),
    }
}

/// The OCI architecture that an ELF machine and class run as, for comparisons.
pub fn oci_arch(e_machine: u16, class: u8, little_endian: bool) -> Option<&'static str> {
    machine_names(e_machine, class == 64, little_endian).1
}

/// The human name of an ELF machine (`x86-64`, `ARM aarch64`).
pub fn machine_name(e_machine: u16, is64: bool, little_endian: bool) -> &'static str {
    machine_names(e_machine, is64, little_endian).0
}

/// True when `bytes` begins with the ELF magic.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Positioned, bounds-checked reads with the file's byte order and word size.
struct Reader<'a> {
    src: &'a dyn ReadAt,
    size: u64,
    le: bool,
    is64: bool,
}

impl Reader<'_> {
    fn bytes(&self, what: &'static str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let end = offset as u128 + len as u128;
        if end > self.size as u128 {
            return Err(ElfError::OutOfBounds {
                what,
                offset,
                end,
                size: self.size,
            });
        }
        if len > MAX_TABLE {
            return Err(ElfError::Invalid(format!(
                "{what} claims {len} bytes, more than any real binary has"
            )));
        }
        let mut buf = vec![0; len as usize];
        self.src.read_exact_at(offset, &mut buf)?;
        Ok(buf)
    }

    fn u16(&self, b: &[u8], at: usize) -> u16 {
        let a = [b[at], b[at + 1]];
        if self.le {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        }
    }

    fn u32(&self, b: &[u8], at: usize) -> u32 {
        let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    }

    fn u64(&self, b: &[u8], at: usize) -> u64 {
        let mut a = [0; 8];
        a.copy_from_slice(&b[at..at + 8]);
        if self.le {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        }
    }

    /// A word: 8 bytes in ELF64, 4 in ELF32.
    fn word(&self, b: &[u8], at: usize) -> u64 {
        if self.is64 {
            self.u64(b, at)
        } else {
            self.u32(b, at) as u64
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    p_type: u32,
    p_flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

#[derive(Clone, Debug)]
struct Section {
    name: String,
    sh_type: u32,
    offset: u64,
    size: u64,
    entsize: u64,
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const SHT_NOBITS: u32 = 8;
const DT_NEEDED: u64 = 1;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const DT_GNU_HASH: u64 = 0x6fff_fef5;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
const DT_VERNEED: u64 = 0x6fff_fffe;
const DT_VERNEEDNUM: u64 = 0x6fff_ffff;
const DF_1_PIE: u64 = 0x0800_0000;
const DF_1_NOW: u64 = 0x1;
const DT_BIND_NOW: u64 = 24;
const DT_RELA: u64 = 7;
const DT_RELASZ: u64 = 8;
const DT_REL: u64 = 17;
const DT_RELSZ: u64 = 18;
const DT_FLAGS: u64 = 30;
const DF_BIND_NOW: u64 = 0x8;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const STB_GNU_UNIQUE: u8 = 10;

/// Reads an ELF file from `src`. Every offset and count is checked against the file;
/// corrupt input yields an error, never a panic or an allocation beyond [`MAX_TABLE`].
pub fn parse(src: &dyn ReadAt) -> Result<ElfInfo> {
    parse_inner(src, None)
}

/// [`parse`], also reading which of the symbols `wanted` the object defines
/// ([`ElfInfo::defined`], left empty by `parse`: a large program defines tens of
/// thousands, and a symbol check needs only those some object requires).
pub fn parse_with_symbols(
    src: &dyn ReadAt,
    wanted: &std::collections::HashSet<&str>,
) -> Result<ElfInfo> {
    parse_inner(src, Some(wanted))
}

fn parse_inner(
    src: &dyn ReadAt,
    wanted: Option<&std::collections::HashSet<&str>>,
) -> Result<ElfInfo> {
    let size = src.size();
    if size < 16 {
        let mut head = vec![0; size as usize];
        src.read_exact_at(0, &mut head)?;
        return Err(if has_magic(&head) {
            ElfError::OutOfBounds {
                what: "the ELF header",
                offset: 0,
                end: 52,
                size,
            }
        } else {
            ElfError::NotElf
        });
    }
    let mut ident = [0u8; 16];
    src.read_exact_at(0, &mut ident)?;
    if !has_magic(&ident) {
        return Err(ElfError::NotElf);
    }
    let is64 = match ident[4] {
        1 => false,
        2 => true,
        c => return Err(ElfError::Invalid(format!("unknown ELF class {c}"))),
    };
    let le = match ident[5] {
        1 => true,
        2 => false,
        d => return Err(ElfError::Invalid(format!("unknown ELF byte order {d}"))),
    };
    let r = Reader {
        src,
        size,
        le,
        is64,
    };
    let ehsize = if is64 { 64 } else { 52 };
    let eh = r.bytes("the ELF header", 0, ehsize)?;
    let e_type = r.u16(&eh, 16);
    let e_machine = r.u16(&eh, 18);
    let (phoff, shoff, e_flags, phentsize, mut phnum, shentsize, mut shnum, mut shstrndx) = if is64
    {
        (
            r.u64(&eh, 32),
            r.u64(&eh, 40),
            r.u32(&eh, 48),
            r.u16(&eh, 54) as u64,
            r.u16(&eh, 56) as u64,
            r.u16(&eh, 58) as u64,
            r.u16(&eh, 60) as u64,
            r.u16(&eh, 62) as u32,
        )
    } else {
        (
            r.u32(&eh, 28) as u64,
            r.u32(&eh, 32) as u64,
            r.u32(&eh, 36),
            r.u16(&eh, 42) as u64,
            r.u16(&eh, 44) as u64,
            r.u16(&eh, 46) as u64,
            r.u16(&eh, 48) as u64,
            r.u16(&eh, 50) as u32,
        )
    };

    let want_ph = if is64 { 56 } else { 32 };
    let want_sh = if is64 { 64 } else { 40 };

    // Extended numbering: counts that do not fit the header live in section 0.
    let sec0 = if shoff != 0 && shentsize >= want_sh {
        r.bytes("section header 0", shoff, want_sh).ok()
    } else {
        None
    };
    if let Some(s0) = &sec0 {
        if phnum == 0xffff {
            phnum = r.u32(s0, if is64 { 44 } else { 28 }) as u64;
        }
        if shnum == 0 {
            shnum = r.word(s0, if is64 { 32 } else { 20 });
        }
        if shstrndx == 0xffff {
            shstrndx = r.u32(s0, if is64 { 40 } else { 24 });
        }
    }

    let mut segments = Vec::new();
    if phnum > 0 {
        // The kernel (load_elf_phdrs) and ld.so refuse any other entry size.
        if phentsize != want_ph {
            return Err(ElfError::Invalid(format!(
                "program header entries of {phentsize} bytes (the kernel and the loader need exactly {want_ph})"
            )));
        }
        let table = r.bytes(
            "the program header table",
            phoff,
            phnum.saturating_mul(phentsize),
        )?;
        for i in 0..phnum as usize {
            let b = &table[i * phentsize as usize..];
            segments.push(if is64 {
                Segment {
                    p_type: r.u32(b, 0),
                    p_flags: r.u32(b, 4),
                    offset: r.u64(b, 8),
                    vaddr: r.u64(b, 16),
                    filesz: r.u64(b, 32),
                }
            } else {
                Segment {
                    p_type: r.u32(b, 0),
                    offset: r.u32(b, 4) as u64,
                    vaddr: r.u32(b, 8) as u64,
                    filesz: r.u32(b, 16) as u64,
                    p_flags: r.u32(b, 24),
                }
            });
        }
    }

    // Section headers are optional (sstrip removes them); a corrupt table only costs us
    // the facts that come from it, since the loader never reads sections either.
    let sections = if shoff != 0 && shnum > 0 && shentsize >= want_sh {
        read_sections(&r, shoff, shnum, shentsize, shstrndx).unwrap_or_default()
    } else {
        Vec::new()
    };

    let interpreter = match segments.iter().find(|s| s.p_type == PT_INTERP) {
        Some(s) => {
            let raw = r.bytes("PT_INTERP", s.offset, s.filesz.min(4096))?;
            let end = raw.iter().position(|&b| b == 0).ok_or_else(|| {
                ElfError::Invalid("the PT_INTERP path is not NUL-terminated".into())
            })?;
            Some(String::from_utf8_lossy(&raw[..end]).into_owned())
        }
        None => None,
    };

    let dynamic = match segments.iter().find(|s| s.p_type == PT_DYNAMIC) {
        Some(s) => Some(read_dynamic(&r, s)?),
        None => None,
    };

    let (name, arch, variant) = machine_names(e_machine, is64, le);
    // EI_OSABI: Linux programs say SYSV (0) or GNU (3), ARM's may say ARM_AEABI (64).
    let os = match ident[7] {
        2 => "netbsd",
        6 => "solaris",
        9 => "freebsd",
        12 => "openbsd",
        _ => "linux",
    };
    let mut info = ElfInfo {
        class: if is64 { 64 } else { 32 },
        little_endian: le,
        e_machine,
        e_flags,
        machine: name.to_string(),
        architecture: arch.map(str::to_string),
        variant: variant.map(str::to_string),
        os: os.to_string(),
        kind: Kind::Other,
        interpreter,
        soname: None,
        needed: Vec::new(),
        rpath: Vec::new(),
        runpath: Vec::new(),
        version_needs: Vec::new(),
        version_defs: Vec::new(),
        imports: Vec::new(),
        required: Vec::new(),
        defined: Vec::new(),
        bound_at_start: Vec::new(),
        copied: Vec::new(),
        bind_now: false,
        stripped: !sections.iter().any(|s| s.sh_type == SHT_SYMTAB),
        compiler: read_compiler(&r, &sections),
        go: None,
        load_end: segments
            .iter()
            .filter(|s| s.p_type == PT_LOAD)
            .map(|s| s.offset.saturating_add(s.filesz))
            .max()
            .unwrap_or(0),
    };

    let mut flags_1 = 0;
    if let Some(d) = &dynamic {
        flags_1 = d.flags_1;
        let strtab = d
            .strtab
            .and_then(|a| vaddr_to_offset(&segments, a))
            .map(|off| r.bytes("the dynamic string table", off, d.strsz))
            .transpose()?;
        if let Some(strtab) = &strtab {
            // A name the loader would read from outside the string table: dropping it
            // would hide a dependency (or a search path) from the closure and the check.
            let s = |what: &str, off: u64| {
                cstr(strtab, off).ok_or_else(|| {
                    ElfError::Invalid(format!(
                        "{what} names offset {off}, outside the {}-byte dynamic string table",
                        strtab.len()
                    ))
                })
            };
            info.needed = d
                .needed
                .iter()
                .map(|&o| s("a DT_NEEDED entry", o))
                .collect::<Result<_>>()?;
            info.soname = d.soname.map(|o| s("DT_SONAME", o)).transpose()?;
            info.rpath = d
                .rpath
                .map(|o| s("DT_RPATH", o))
                .transpose()?
                .map(split_path)
                .unwrap_or_default();
            info.runpath = d
                .runpath
                .map(|o| s("DT_RUNPATH", o))
                .transpose()?
                .map(split_path)
                .unwrap_or_default();
            if let Some(off) = d.verneed.and_then(|a| vaddr_to_offset(&segments, a)) {
                info.version_needs = read_verneed(&r, off, d.verneednum, strtab)?;
            }
            if let Some(off) = d.verdef.and_then(|a| vaddr_to_offset(&segments, a)) {
                info.version_defs = read_verdef(&r, off, d.verdefnum, strtab)?;
            }
            // A table that cannot be read is no imports for `parse`; for a symbol check
            // it is an error (it would read as "defines nothing").
            let symbols =
                match read_symbols(&r, d, &segments, &sections, strtab, wanted).and_then(|mut s| {
                    read_relocations(&r, d, &segments, e_machine, strtab, &mut s)?;
                    Ok(s)
                }) {
                    Ok(s) => s,
                    Err(e) if wanted.is_some() => return Err(e),
                    Err(_) => Symbols::default(),
                };
            info.imports = symbols.imports;
            info.required = symbols.required;
            info.defined = symbols.defined;
            info.bound_at_start = symbols.bound_at_start;
            info.copied = symbols.copied;
            info.bind_now = d.bind_now || d.flags & DF_BIND_NOW != 0 || d.flags_1 & DF_1_NOW != 0;
        } else if !d.needed.is_empty() {
            return Err(ElfError::Invalid(
                "DT_NEEDED entries but no readable DT_STRTAB".into(),
            ));
        }
    }

    // An executable or shared object is nothing but its loadable segments: without one
    // the kernel and ld.so have nothing to map (a PN_XNUM count in a section 0 that
    // says 0 gets here too; the kernel refuses PN_XNUM outright).
    if matches!(e_type, 2 | 3) && !segments.iter().any(|s| s.p_type == PT_LOAD) {
        return Err(ElfError::Invalid(
            "no loadable segment (PT_LOAD), so neither the kernel nor the loader can map it".into(),
        ));
    }
    info.kind = match e_type {
        1 => Kind::Relocatable,
        2 if info.interpreter.is_some() => Kind::Dynamic,
        2 => Kind::Static,
        3 if flags_1 & DF_1_PIE != 0 && info.interpreter.is_some() => Kind::Dynamic,
        3 if flags_1 & DF_1_PIE != 0 => Kind::StaticPie,
        3 if info.soname.is_some() => Kind::SharedLibrary,
        3 if info.interpreter.is_some() => Kind::Dynamic,
        3 => Kind::SharedLibrary,
        4 => Kind::Core,
        _ => Kind::Other,
    };
    info.go = go::read(&r, &segments, &sections);
    // NetBSD's Go programs keep OS/ABI 0; Go says which system it built for.
    if let Some(goos) = info.go.as_ref().and_then(|g| g.settings.get("GOOS")) {
        if goos != "linux" && goos != "android" {
            info.os = goos.clone();
        }
    }
    if e_machine == 40 && info.architecture.is_some() {
        // Go records GOARM in its build info and writes no attributes section.
        let goarm = info.go.as_ref().and_then(|g| g.settings.get("GOARM"));
        if let Some(v) = goarm
            .and_then(|g| arm::variant_of_goarm(g))
            .or_else(|| arm::variant(&r, &sections))
        {
            info.variant = Some(v.to_string());
        }
    }
    Ok(info)
}

/// Reads an ELF file from a path on the host.
pub fn parse_path(path: &std::path::Path) -> Result<ElfInfo> {
    let f = std::fs::File::open(path)?;
    parse(&FileSource::new(f)?)
}

/// The most telling compiler string in `.comment`: rustc over clang over GCC (Rust and
/// clang binaries also carry the GCC line of the C runtime objects).
fn read_compiler(r: &Reader, sections: &[Section]) -> Option<String> {
    let s = sections
        .iter()
        .find(|s| s.name == ".comment" && s.sh_type != SHT_NOBITS)?;
    let raw = r.bytes(".comment", s.offset, s.size.min(8192)).ok()?;
    let strings: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    ["rustc", "clang", "GCC"]
        .iter()
        .find_map(|k| strings.iter().find(|s| s.contains(k)))
        .cloned()
}

fn read_sections(
    r: &Reader,
    shoff: u64,
    shnum: u64,
    shentsize: u64,
    shstrndx: u32,
) -> Result<Vec<Section>> {
    if shnum > MAX_ENTRIES {
        return Err(ElfError::Invalid(format!("{shnum} sections")));
    }
    let table = r.bytes(
        "the section header table",
        shoff,
        shnum.saturating_mul(shentsize),
    )?;
    let mut out = Vec::with_capacity(shnum as usize);
    let mut names = Vec::with_capacity(shnum as usize);
    for i in 0..shnum as usize {
        let b = &table[i * shentsize as usize..];
        names.push(r.u32(b, 0) as u64);
        out.push(if r.is64 {
            Section {
                name: String::new(),
                sh_type: r.u32(b, 4),
                offset: r.u64(b, 24),
                size: r.u64(b, 32),
                entsize: r.u64(b, 56),
            }
        } else {
            Section {
                name: String::new(),
                sh_type: r.u32(b, 4),
                offset: r.u32(b, 16) as u64,
                size: r.u32(b, 20) as u64,
                entsize: r.u32(b, 36) as u64,
            }
        });
    }
    if let Some(strsec) = out.get(shstrndx as usize).cloned() {
        if strsec.sh_type != SHT_NOBITS {
            let strtab = r.bytes("the section name table", strsec.offset, strsec.size)?;
            for (s, &n) in out.iter_mut().zip(&names) {
                s.name = cstr(&strtab, n).unwrap_or_default();
            }
        }
    }
    Ok(out)
}

#[derive(Default)]
struct Dynamic {
    needed: Vec<u64>,
    strtab: Option<u64>,
    strsz: u64,
    symtab: Option<u64>,
    hash: Option<u64>,
    gnu_hash: Option<u64>,
    soname: Option<u64>,
    rpath: Option<u64>,
    runpath: Option<u64>,
    flags: u64,
    flags_1: u64,
    bind_now: bool,
    rela: Option<u64>,
    relasz: u64,
    rel: Option<u64>,
    relsz: u64,
    verneed: Option<u64>,
    verneednum: u64,
    verdef: Option<u64>,
    verdefnum: u64,
}

fn read_dynamic(r: &Reader, seg: &Segment) -> Result<Dynamic> {
    let entsize = if r.is64 { 16 } else { 8 };
    let count = (seg.filesz / entsize).min(MAX_ENTRIES);
    let table = r.bytes("the dynamic section", seg.offset, count * entsize)?;
    let mut d = Dynamic::default();
    for i in 0..count as usize {
        let at = i * entsize as usize;
        let tag = r.word(&table, at);
        let val = r.word(&table, at + entsize as usize / 2);
        match tag {
            0 => break,
            DT_NEEDED => d.needed.push(val),
            DT_STRTAB => d.strtab = Some(val),
            DT_STRSZ => d.strsz = val,
            DT_SYMTAB => d.symtab = Some(val),
            DT_HASH => d.hash = Some(val),
            DT_GNU_HASH => d.gnu_hash = Some(val),
            DT_SONAME => d.soname = Some(val),
            DT_RPATH => d.rpath = Some(val),
            DT_RUNPATH => d.runpath = Some(val),
            DT_FLAGS_1 => d.flags_1 = val,
            DT_FLAGS => d.flags = val,
            DT_BIND_NOW => d.bind_now = true,
            DT_RELA => d.rela = Some(val),
            DT_RELASZ => d.relasz = val,
            DT_REL => d.rel = Some(val),
            DT_RELSZ => d.relsz = val,
            DT_VERNEED => d.verneed = Some(val),
            DT_VERNEEDNUM => d.verneednum = val,
            DT_VERDEF => d.verdef = Some(val),
            DT_VERDEFNUM => d.verdefnum = val,
            _ => {}
        }
    }
    Ok(d)
}

/// Maps a virtual address to a file offset through the PT_LOAD segments, as the loader
/// would find the bytes in memory.
fn vaddr_to_offset(segments: &[Segment], addr: u64) -> Option<u64> {
    segments
        .iter()
        .filter(|s| s.p_type == PT_LOAD)
        .find(|s| addr >= s.vaddr && addr - s.vaddr < s.filesz)
        // A segment claimed near the top of the file offsets maps nowhere.
        .and_then(|s| s.offset.checked_add(addr - s.vaddr))
}

/// A NUL-terminated string at `off` in a string table.
fn cstr(table: &[u8], off: u64) -> Option<String> {
    cstr_bytes(table, off).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The NUL-terminated bytes at `off` of a string table.
fn cstr_bytes(table: &[u8], off: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let rest = table.get(start..)?;
    let end = memchr::memchr(0, rest)?;
    Some(&rest[..end])
}

fn split_path(s: String) -> Vec<String> {
    s.split(':')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn read_verneed(r: &Reader, mut off: u64, num: u64, strtab: &[u8]) -> Result<Vec<VersionNeed>> {
    let mut by_lib: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order = Vec::new();
    let mut budget = MAX_ENTRIES;
    for _ in 0..num.min(MAX_ENTRIES) {
        let vn = r.bytes("a version-needed record", off, 16)?;
        let cnt = r.u16(&vn, 2) as u64;
        let file = cstr(strtab, r.u32(&vn, 4) as u64).unwrap_or_default();
        let mut aux = off + r.u32(&vn, 8) as u64;
        let entry = by_lib.entry(file.clone()).or_insert_with(|| {
            order.push(file.clone());
            Vec::new()
        });
        for _ in 0..cnt {
            budget = budget
                .checked_sub(1)
                .ok_or_else(|| ElfError::Invalid("too many symbol version records".into()))?;
            let va = r.bytes("a version-needed aux record", aux, 16)?;
            if let Some(name) = cstr(strtab, r.u32(&va, 8) as u64) {
                if !entry.contains(&name) {
                    entry.push(name);
                }
            }
            let next = r.u32(&va, 12) as u64;
            if next == 0 {
                break;
            }
            aux += next;
        }
        let next = r.u32(&vn, 12) as u64;
        if next == 0 {
            break;
        }
        off += next;
    }
    Ok(order
        .into_iter()
        .map(|lib| {
            let mut versions = by_lib.remove(&lib).unwrap_or_default();
            versions.sort_by(|a, b| version_order(a, b));
            VersionNeed {
                library: lib,
                versions,
            }
        })
        .collect())
}

/// Orders `GLIBC_2.9` before `GLIBC_2.10`: by prefix, then numerically by component.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(s: &str) -> (&str, Vec<u64>) {
        match s.rfind('_') {
            Some(i) => (
                &s[..i],
                s[i + 1..]
                    .split('.')
                    .map(|p| p.parse().unwrap_or(0))
                    .collect(),
            ),
            None => (s, Vec::new()),
        }
    }
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

fn read_verdef(r: &Reader, mut off: u64, num: u64, strtab: &[u8]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for _ in 0..num.min(MAX_ENTRIES) {
        let vd = r.bytes("a version-definition record", off, 20)?;
        let flags = r.u16(&vd, 2);
        let cnt = r.u16(&vd, 6);
        if flags & 1 == 0 && cnt > 0 {
            let aux = off + r.u32(&vd, 12) as u64;
            let va = r.bytes("a version-definition aux record", aux, 8)?;
            if let Some(name) = cstr(strtab, r.u32(&va, 0) as u64) {
                out.push(name);
            }
        }
        let next = r.u32(&vd, 16) as u64;
        if next == 0 {
            break;
        }
        off += next;
    }
    out.sort_by(|a, b| version_order(a, b));
    out.dedup();
    Ok(out)
}

/// The dynamic symbol table's names, by what the loader does with them.
#[derive(Default)]
struct Symbols {
    /// Undefined (imported), weak or not.
    imports: Vec<String>,
    /// Undefined and not weak.
    required: Vec<String>,
    /// Defined, global or weak.
    defined: Vec<String>,
    /// Required and named by a relocation outside the PLT.
    bound_at_start: Vec<String>,
    /// Named by a copy relocation.
    copied: Vec<String>,
    /// Every symbol's name (its offset in the string table; 0 for none) and whether
    /// it is a required import, by index, for the relocations: names are copied only
    /// for the symbols a relocation checked here names.
    by_index: Vec<(u32, bool)>,
}

/// Reads the dynamic symbol table.
fn read_symbols(
    r: &Reader,
    d: &Dynamic,
    segments: &[Segment],
    sections: &[Section],
    strtab: &[u8],
    wanted: Option<&std::collections::HashSet<&str>>,
) -> Result<Symbols> {
    let entsize: u64 = if r.is64 { 24 } else { 16 };
    let (off, count) = if let Some(s) = sections.iter().find(|s| s.sh_type == SHT_DYNSYM) {
        let es = if s.entsize >= entsize {
            s.entsize
        } else {
            entsize
        };
        (s.offset, s.size / es)
    } else {
        let Some(off) = d.symtab.and_then(|a| vaddr_to_offset(segments, a)) else {
            return Ok(Symbols::default());
        };
        let count = if let Some(h) = d.hash.and_then(|a| vaddr_to_offset(segments, a)) {
            let b = r.bytes("DT_HASH", h, 8)?;
            r.u32(&b, 4) as u64
        } else if let Some(h) = d.gnu_hash.and_then(|a| vaddr_to_offset(segments, a)) {
            gnu_hash_count(r, h)?
        } else {
            0
        };
        (off, count)
    };
    let count = count.min(MAX_TABLE / entsize);
    let table = r.bytes("the dynamic symbol table", off, count * entsize)?;
    // Index 0 is the null symbol; every other index gets its entry below.
    let mut out = Symbols {
        by_index: vec![(0, false)],
        ..Symbols::default()
    };
    for i in 1..count as usize {
        let b = &table[i * entsize as usize..];
        let (name, info, shndx) = if r.is64 {
            (r.u32(b, 0), b[4], r.u16(b, 6))
        } else {
            (r.u32(b, 0), b[12], r.u16(b, 14))
        };
        let bind = info >> 4;
        if name == 0 || !matches!(bind, STB_GLOBAL | STB_WEAK | STB_GNU_UNIQUE) {
            out.by_index.push((0, false));
            continue;
        }
        out.by_index.push((name, shndx == 0 && bind != STB_WEAK));
        if shndx != 0 {
            // Compared in place: only the wanted names are copied.
            let Some(wanted) = wanted else { continue };
            let Some(raw) = cstr_bytes(strtab, name as u64) else {
                continue;
            };
            if let Some(n) = std::str::from_utf8(raw).ok().filter(|n| wanted.contains(n)) {
                out.defined.push(n.to_string());
            }
            continue;
        }
        let Some(n) = cstr(strtab, name as u64) else {
            continue;
        };
        if bind != STB_WEAK {
            out.required.push(n.clone());
        }
        out.imports.push(n);
    }
    for v in [&mut out.imports, &mut out.required, &mut out.defined] {
        v.sort();
        v.dedup();
    }
    Ok(out)
}

/// The relocation type that copies a symbol's data into the executable, by machine.
fn copy_type(e_machine: u16) -> Option<u32> {
    match e_machine {
        62 | 3 => Some(5), // x86-64 R_X86_64_COPY, i386 R_386_COPY
        183 => Some(1024), // aarch64 R_AARCH64_COPY
        40 => Some(20),    // arm R_ARM_COPY
        243 => Some(4),    // riscv R_RISCV_COPY
        _ => None,
    }
}

/// The relocations outside the PLT (DT_RELA, DT_REL): the symbols they name are bound
/// when the object is loaded, however functions are bound; copy relocations among them
/// name data a library must define.
fn read_relocations(
    r: &Reader,
    d: &Dynamic,
    segments: &[Segment],
    e_machine: u16,
    strtab: &[u8],
    out: &mut Symbols,
) -> Result<()> {
    let copy = copy_type(e_machine);
    let tables = [
        (d.rela, d.relasz, if r.is64 { 24 } else { 12 }),
        (d.rel, d.relsz, if r.is64 { 16 } else { 8 }),
    ];
    for (addr, size, entsize) in tables {
        let Some(off) = addr.and_then(|a| vaddr_to_offset(segments, a)) else {
            continue;
        };
        let count = (size / entsize).min(MAX_TABLE / entsize);
        let table = r.bytes("the relocation table", off, count * entsize)?;
        for i in 0..count as usize {
            let at = i * entsize as usize;
            // r_offset, then r_info (symbol index and type), then (RELA) the addend.
            let info = r.word(&table, at + if r.is64 { 8 } else { 4 });
            let (sym, kind) = if r.is64 {
                ((info >> 32) as usize, (info & 0xffff_ffff) as u32)
            } else {
                ((info >> 8) as usize, (info & 0xff) as u32)
            };
            let Some(&(name, required)) = out.by_index.get(sym) else {
                continue;
            };
            let is_copy = copy == Some(kind);
            if name == 0 || !(is_copy || required) {
                continue;
            }
            let Some(name) = cstr(strtab, name as u64) else {
                continue;
            };
            if is_copy {
                out.copied.push(name);
            } else {
                out.bound_at_start.push(name);
            }
        }
    }
    for v in [&mut out.bound_at_start, &mut out.copied] {
        v.sort();
        v.dedup();
    }
    out.by_index = Vec::new();
    Ok(())
}

/// Counts the symbols that a DT_GNU_HASH table covers (it does not store the count).
fn gnu_hash_count(r: &Reader, off: u64) -> Result<u64> {
    let h = r.bytes("DT_GNU_HASH", off, 16)?;
    let nbuckets = r.u32(&h, 0) as u64;
    let symoffset = r.u32(&h, 4) as u64;
    let bloom = r.u32(&h, 8) as u64;
    let wordsize = if r.is64 { 8 } else { 4 };
    let buckets_off = off + 16 + bloom.saturating_mul(wordsize);
    let buckets = r.bytes(
        "DT_GNU_HASH buckets",
        buckets_off,
        nbuckets.saturating_mul(4),
    )?;
    let max = (0..nbuckets as usize)
        .map(|i| r.u32(&buckets, i * 4) as u64)
        .max()
        .unwrap_or(0);
    if max < symoffset {
        return Ok(symoffset);
    }
    let chain_off = buckets_off + nbuckets * 4;
    for idx in max..max.saturating_add(MAX_ENTRIES) {
        let c = r.bytes("DT_GNU_HASH chain", chain_off + (idx - symoffset) * 4, 4)?;
        if r.u32(&c, 0) & 1 == 1 {
            return Ok(idx + 1);
        }
    }
    Err(ElfError::Invalid("DT_GNU_HASH chain never ends".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_read_as_spoken() {
        for (word, want) in [
            ("ARM aarch64", "an"),
            ("x86-64", "an"),
            ("Intel 80386", "an"),
            ("freebsd", "a"),
            ("RISC-V", "a"),
            ("PowerPC64", "a"),
        ] {
            assert_eq!(article(word), want, "{word}");
        }
    }

    #[test]
    fn versions_sort_numerically() {
        let mut v = vec!["GLIBC_2.10", "GLIBC_2.9", "GLIBC_2.2.5", "GLIBC_2.34"];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(v, ["GLIBC_2.2.5", "GLIBC_2.9", "GLIBC_2.10", "GLIBC_2.34"]);
    }

    #[test]
    fn non_elf_and_tiny_inputs_are_errors() {
        for input in [&b""[..], b"\x7fEL", b"\x7fELF", b"#!/bin/sh\n", &[0u8; 100]] {
            assert!(parse(&input.to_vec()).is_err());
        }
    }

    #[test]
    fn absurd_offsets_are_errors_not_panics() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[16] = 2;
        h[18] = 62;
        h[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
        h[40..48].copy_from_slice(&u64::MAX.to_le_bytes()); // e_shoff
        h[54] = 56;
        h[56] = 0xff;
        h[57] = 0xff; // e_phnum = PN_XNUM
        h[58] = 64;
        h[60] = 3;
        assert!(parse(&h).is_err());
    }
}
