//! Per-architecture facts the loaders depend on: Debian multiarch triplets, the
//! ld.so.cache flags glibc accepts, glibc-hwcaps subdirectories, `$PLATFORM`, and which
//! ELF headers a loader of this architecture will map (class, byte order, machine).

use crate::elf::ElfInfo;

const EM_386: u16 = 3;
const EM_SPARCV9: u16 = 43;
const EM_MIPS: u16 = 8;
const EM_PPC: u16 = 20;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
const EM_LOONGARCH: u16 = 258;

/// glibc's `FLAG_ELF_LIBC6` (the low byte of every modern cache entry's flags).
const FLAG_ELF_LIBC6: i32 = 0x0003;

/// The identity of an ELF object as a loader sees it: what it must match to be loaded
/// into the same process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    /// e_machine.
    pub machine: u16,
    /// 32 or 64.
    pub class: u8,
    /// Byte order.
    pub little_endian: bool,
    /// e_flags (float ABI on ARM, RISC-V and LoongArch).
    pub flags: u32,
}

/// The first bytes of an ELF file: enough to decide whether a loader would map it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// 32 or 64.
    pub class: u8,
    /// Byte order.
    pub little_endian: bool,
    /// e_type.
    pub kind: u16,
    /// e_machine.
    pub machine: u16,
    /// e_flags, when the bytes given reach it (the float ABI of ARM and RISC-V).
    pub flags: Option<u32>,
}

/// Why a candidate file was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A loader of this architecture maps it.
    Usable,
    /// glibc passes over it and keeps searching (other ELF class or machine).
    Skip(String),
    /// The loader stops with an error (not ELF, truncated, other byte order…).
    Fatal(String),
}

impl Header {
    /// Reads the ELF identification and e_type/e_machine from the first 20 bytes.
    pub fn parse(head: &[u8]) -> Result<Header, String> {
        if head.len() < 20 {
            return Err(if head.starts_with(b"\x7fELF") || head.len() < 4 {
                "file too short".to_string()
            } else {
                "invalid ELF header".to_string()
            });
        }
        if !crate::elf::has_magic(head) {
            return Err("invalid ELF header".to_string());
        }
        let class = match head[4] {
            1 => 32,
            2 => 64,
            _ => return Err("invalid ELF class".to_string()),
        };
        let little_endian = match head[5] {
            1 => true,
            2 => false,
            _ => return Err("invalid ELF data encoding".to_string()),
        };
        let u16at = |i: usize| {
            if little_endian {
                u16::from_le_bytes([head[i], head[i + 1]])
            } else {
                u16::from_be_bytes([head[i], head[i + 1]])
            }
        };
        let at = if class == 64 { 48 } else { 36 };
        let flags = head.get(at..at + 4).map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            if little_endian {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        });
        Ok(Header {
            class,
            little_endian,
            kind: u16at(16),
            machine: u16at(18),
            flags,
        })
    }
}

impl Arch {
    /// The architecture of a parsed object.
    pub fn of(info: &ElfInfo) -> Arch {
        Arch {
            machine: info.e_machine,
            class: info.class,
            little_endian: info.little_endian,
            flags: info.e_flags,
        }
    }

    /// What glibc's `open_verify` decides for a file with this header: another class or
    /// machine is skipped (the search goes on), another byte order or a non-loadable type
    /// stops the load with an error.
    pub fn verdict(&self, h: &Header) -> Verdict {
        if h.class != self.class {
            return Verdict::Skip(format!("wrong ELF class: ELFCLASS{}", h.class));
        }
        if h.little_endian != self.little_endian {
            return Verdict::Fatal(format!(
                "ELF file data encoding not {}-endian",
                if self.little_endian { "little" } else { "big" }
            ));
        }
        if h.machine != self.machine {
            return Verdict::Skip(format!(
                "wrong machine: {} (e_machine {}), not {}",
                crate::elf::machine_name(h.machine, h.class == 64, h.little_endian),
                h.machine,
                crate::elf::machine_name(self.machine, self.class == 64, self.little_endian)
            ));
        }
        if let Some(why) = h.flags.and_then(|f| self.float_abi_mismatch(f)) {
            return Verdict::Skip(why);
        }
        if h.kind != 2 && h.kind != 3 {
            return Verdict::Fatal("only ET_DYN and ET_EXEC can be loaded".to_string());
        }
        Verdict::Usable
    }

    /// Why glibc passes over an object of another float ABI (its ARM header check, its
    /// RISC-V `elf_machine_matches_host`): an armel library on an armhf search path, an
    /// lp64 one where lp64d is wanted.
    fn float_abi_mismatch(&self, flags: u32) -> Option<String> {
        match self.machine {
            EM_ARM => {
                const EABI_VER5: u32 = 0x0500_0000;
                const FLOAT_SOFT: u32 = 0x200;
                const FLOAT_HARD: u32 = 0x400;
                if flags & 0xff00_0000 != EABI_VER5 {
                    return None;
                }
                match (
                    self.arm_hard_float(),
                    flags & FLOAT_SOFT != 0,
                    flags & FLOAT_HARD != 0,
                ) {
                    (true, true, _) => Some("soft-float ABI, not hard-float".to_string()),
                    (false, _, true) => Some("hard-float ABI, not soft-float".to_string()),
                    _ => None,
                }
            }
            EM_RISCV => {
                const FLOAT_ABI: u32 = 0x6;
                let name = |f: u32| match f & FLOAT_ABI {
                    0 => "soft-float",
                    2 => "single-float",
                    4 => "double-float",
                    _ => "quad-float",
                };
                (flags & FLOAT_ABI != self.flags & FLOAT_ABI)
                    .then(|| format!("{} ABI, not {}", name(flags), name(self.flags)))
            }
            _ => None,
        }
    }

    fn arm_hard_float(&self) -> bool {
        // EF_ARM_ABI_FLOAT_HARD
        self.flags & 0x400 != 0
    }

    /// The Debian/Ubuntu multiarch triplet (`x86_64-linux-gnu`), where one is defined.
    pub fn triplet(&self) -> Option<&'static str> {
        let is64 = self.class == 64;
        let le = self.little_endian;
        Some(match self.machine {
            EM_X86_64 if is64 => "x86_64-linux-gnu",
            EM_X86_64 => "x86_64-linux-gnux32",
            EM_386 => "i386-linux-gnu",
            EM_AARCH64 if le => "aarch64-linux-gnu",
            EM_AARCH64 => "aarch64_be-linux-gnu",
            EM_ARM if self.arm_hard_float() => "arm-linux-gnueabihf",
            EM_ARM => "arm-linux-gnueabi",
            EM_PPC64 if le => "powerpc64le-linux-gnu",
            EM_PPC64 => "powerpc64-linux-gnu",
            EM_PPC => "powerpc-linux-gnu",
            EM_S390 if is64 => "s390x-linux-gnu",
            EM_S390 => "s390-linux-gnu",
            EM_RISCV if is64 => "riscv64-linux-gnu",
            EM_LOONGARCH if is64 => "loongarch64-linux-gnu",
            EM_MIPS if is64 && le => "mips64el-linux-gnuabi64",
            EM_MIPS if is64 => "mips64-linux-gnuabi64",
            EM_MIPS if le => "mipsel-linux-gnu",
            EM_MIPS => "mips-linux-gnu",
            EM_SPARCV9 => "sparc64-linux-gnu",
            _ => return None,
        })
    }

    /// The flags glibc's loader for this architecture writes for, and looks up in,
    /// ld.so.cache (`_DL_CACHE_DEFAULT_ID`).
    pub fn cache_flags(&self) -> i32 {
        let is64 = self.class == 64;
        FLAG_ELF_LIBC6
            | match self.machine {
                EM_X86_64 if is64 => 0x0300,
                EM_X86_64 => 0x0800,
                EM_AARCH64 if is64 => 0x0a00,
                EM_ARM if self.arm_hard_float() => 0x0900,
                EM_ARM => 0x0b00,
                EM_PPC64 => 0x0500,
                EM_S390 if is64 => 0x0400,
                EM_SPARCV9 => 0x0100,
                // EF_RISCV_FLOAT_ABI_DOUBLE
                EM_RISCV if self.flags & 0x6 == 0x4 => 0x1000,
                EM_RISCV => 0x0f00,
                // EF_LOONGARCH_ABI_DOUBLE_FLOAT
                EM_LOONGARCH if self.flags & 0x7 == 0x3 => 0x1200,
                EM_LOONGARCH => 0x1100,
                EM_MIPS if is64 => 0x0700,
                _ => 0,
            }
    }

    /// `_dl_cache_check_flags`: whether a cache entry with `flags` is for this loader.
    /// Architectures with a specific id accept only it (ARM also the plain libc6 id);
    /// the rest accept plain ELF and libc6 entries.
    pub fn cache_flags_ok(&self, flags: i32) -> bool {
        let id = self.cache_flags();
        match self.machine {
            EM_ARM => flags == id || flags == FLAG_ELF_LIBC6,
            // MIPS has several ABIs whose flags we do not model; the ELF check after
            // the lookup rejects what does not fit.
            EM_MIPS => flags & 0xff == FLAG_ELF_LIBC6,
            _ if id != FLAG_ELF_LIBC6 => flags == id,
            _ => flags == 1 || flags == FLAG_ELF_LIBC6,
        }
    }

    /// glibc-hwcaps subdirectory names, best first (`_dl_hwcaps_subdirs`).
    pub fn hwcaps_subdirs(&self) -> &'static [&'static str] {
        match (self.machine, self.class, self.little_endian) {
            (EM_X86_64, 64, _) => &["x86-64-v4", "x86-64-v3", "x86-64-v2"],
            (EM_PPC64, 64, true) => &["power10", "power9"],
            (EM_S390, 64, _) => &["z17", "z16", "z15", "z14", "z13"],
            _ => &[],
        }
    }

    /// The value of `$PLATFORM` (the kernel's AT_PLATFORM) where it is fixed for the
    /// architecture; `None` where it depends on the CPU model (POWER, s390x).
    pub fn platform(&self) -> Option<&'static str> {
        Some(match self.machine {
            EM_X86_64 if self.class == 64 => "x86_64",
            EM_386 => "i686",
            EM_AARCH64 => "aarch64",
            EM_ARM => "v7l",
            EM_RISCV => "riscv64",
            EM_LOONGARCH => "loongarch",
            EM_MIPS if self.class == 64 => "mips64",
            EM_MIPS => "mips",
            _ => return None,
        })
    }

    /// glibc's built-in search directories when they cannot be read from the loader:
    /// the Debian multiarch pair, the `lib64` pair of 64-bit upstream builds, then
    /// `/lib` and `/usr/lib`. A superset of any one distribution's list, so a root that
    /// follows either convention resolves.
    pub fn fallback_dirs(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(t) = self.triplet() {
            v.push(format!("/lib/{t}"));
            v.push(format!("/usr/lib/{t}"));
        }
        if self.class == 64 {
            v.push("/lib64".to_string());
            v.push("/usr/lib64".to_string());
        }
        v.push("/lib".to_string());
        v.push("/usr/lib".to_string());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(machine: u16, class: u8, le: bool, flags: u32) -> Arch {
        Arch {
            machine,
            class,
            little_endian: le,
            flags,
        }
    }

    #[test]
    fn cache_flags_per_architecture() {
        for (a, id, also_ok, not_ok) in [
            (arch(62, 64, true, 0), 0x303, None, Some(0x003)),
            (arch(62, 32, true, 0), 0x803, None, Some(0x303)),
            (arch(3, 32, true, 0), 0x003, Some(0x001), Some(0x303)),
            (arch(183, 64, true, 0), 0xa03, None, Some(0x303)),
            (arch(40, 32, true, 0x400), 0x903, Some(0x003), Some(0xb03)),
            (arch(40, 32, true, 0x200), 0xb03, Some(0x003), Some(0x903)),
            (arch(21, 64, true, 0), 0x503, None, Some(0x003)),
            (arch(22, 64, false, 0), 0x403, None, Some(0x303)),
            (arch(243, 64, true, 0x4), 0x1003, None, Some(0xf03)),
            (arch(258, 64, true, 0x3), 0x1203, None, Some(0x1103)),
        ] {
            assert_eq!(a.cache_flags(), id, "{a:?}");
            assert!(a.cache_flags_ok(id), "{a:?}");
            if let Some(f) = also_ok {
                assert!(a.cache_flags_ok(f), "{a:?} {f:#x}");
            }
            if let Some(f) = not_ok {
                assert!(!a.cache_flags_ok(f), "{a:?} {f:#x}");
            }
        }
    }

    #[test]
    fn triplets_and_dirs() {
        assert_eq!(arch(62, 64, true, 0).triplet(), Some("x86_64-linux-gnu"));
        assert_eq!(arch(183, 64, true, 0).triplet(), Some("aarch64-linux-gnu"));
        assert_eq!(
            arch(40, 32, true, 0x400).triplet(),
            Some("arm-linux-gnueabihf")
        );
        assert_eq!(
            arch(21, 64, true, 0).triplet(),
            Some("powerpc64le-linux-gnu")
        );
        assert_eq!(arch(22, 64, false, 0).triplet(), Some("s390x-linux-gnu"));
        assert_eq!(arch(243, 64, true, 4).triplet(), Some("riscv64-linux-gnu"));
        assert_eq!(arch(3, 32, true, 0).triplet(), Some("i386-linux-gnu"));
        assert_eq!(
            arch(183, 64, true, 0).fallback_dirs(),
            [
                "/lib/aarch64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib"
            ]
        );
    }

    /// The first 64 bytes of a little-endian ET_DYN ELF file of `class` and `machine`,
    /// with `flags` as e_flags.
    fn head(class: u8, machine: u8, flags: u32) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = if class == 64 { 2 } else { 1 };
        h[5] = 1;
        h[16] = 3;
        h[18] = machine;
        let at = if class == 64 { 48 } else { 36 };
        h[at..at + 4].copy_from_slice(&flags.to_le_bytes());
        h
    }

    #[test]
    fn header_verdicts() {
        let x86 = arch(62, 64, true, 0);
        let mut h = [0u8; 20];
        h.copy_from_slice(&head(64, 62, 0)[..20]);
        assert_eq!(x86.verdict(&Header::parse(&h).unwrap()), Verdict::Usable);
        h[18] = 183;
        assert!(matches!(
            x86.verdict(&Header::parse(&h).unwrap()),
            Verdict::Skip(_)
        ));
        h[18] = 62;
        h[4] = 1;
        assert!(matches!(
            x86.verdict(&Header::parse(&h).unwrap()),
            Verdict::Skip(_)
        ));
        h[4] = 2;
        h[5] = 2;
        h[16] = 0;
        h[17] = 3;
        h[18] = 0;
        h[19] = 62;
        assert!(matches!(
            x86.verdict(&Header::parse(&h).unwrap()),
            Verdict::Fatal(_)
        ));
        assert!(Header::parse(b"/* GNU ld script */ GROUP ( libc.so.6 )").is_err());
        // ARM: an armel (soft-float) library on an armhf process's path is passed over,
        // as glibc does, and the other way round; one that says neither is usable.
        let armhf = arch(40, 32, true, 0x0500_0400);
        let armel = arch(40, 32, true, 0x0500_0200);
        let arm_header = |flags: u32| Header::parse(&head(32, 40, flags)).unwrap();
        assert!(matches!(
            armhf.verdict(&arm_header(0x0500_0200)),
            Verdict::Skip(_)
        ));
        assert_eq!(armhf.verdict(&arm_header(0x0500_0400)), Verdict::Usable);
        assert_eq!(armhf.verdict(&arm_header(0x0500_0000)), Verdict::Usable);
        assert!(matches!(
            armel.verdict(&arm_header(0x0500_0400)),
            Verdict::Skip(_)
        ));
        assert_eq!(armel.verdict(&arm_header(0x0500_0200)), Verdict::Usable);
        // RISC-V: lp64 (soft) where lp64d (double) is wanted.
        let rv = arch(243, 64, true, 0x5);
        let rv_header = |flags: u32| Header::parse(&head(64, 243, flags)).unwrap();
        assert!(matches!(rv.verdict(&rv_header(0x1)), Verdict::Skip(_)));
        assert_eq!(rv.verdict(&rv_header(0x5)), Verdict::Usable);
        assert!(Header::parse(b"\x7fELF\x02").is_err());
    }
}
