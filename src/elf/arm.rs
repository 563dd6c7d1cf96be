//! The 32-bit ARM architecture version of an executable, as an OCI variant (`v5`, `v6`,
//! `v7`, `v8`): from `Tag_CPU_arch` in the `.ARM.attributes` section that GCC and clang
//! write, or from `GOARM` in a Go binary's build information (Go writes no attributes).

use super::{Reader, Section, SHT_NOBITS};

/// `SHT_ARM_ATTRIBUTES`.
const SHT_ARM_ATTRIBUTES: u32 = 0x7000_0003;
/// Largest attributes section read (real ones are well under a kilobyte).
const MAX_ATTRIBUTES: u64 = 64 << 10;
/// `Tag_File`: the subsection of attributes that apply to the whole file.
const TAG_FILE: u64 = 1;
/// `Tag_CPU_arch`.
const TAG_CPU_ARCH: u64 = 6;

/// The variant for 32-bit ARM when nothing says otherwise: ARMv7 is what Debian's
/// armhf, Docker's `linux/arm` and most boards mean.
pub const DEFAULT_VARIANT: &str = "v7";

/// The OCI variant of an ARM executable, from its attributes section when it has one.
pub(super) fn variant(r: &Reader, sections: &[Section]) -> Option<&'static str> {
    let s = sections.iter().find(|s| {
        s.sh_type != SHT_NOBITS && (s.sh_type == SHT_ARM_ATTRIBUTES || s.name == ".ARM.attributes")
    })?;
    let bytes = r
        .bytes(".ARM.attributes", s.offset, s.size.min(MAX_ATTRIBUTES))
        .ok()?;
    cpu_arch(&bytes, r.le).and_then(variant_of_cpu_arch)
}

/// The OCI variant for a `GOARM` build setting (`6`, `7`, `7,softfloat`).
pub fn variant_of_goarm(goarm: &str) -> Option<&'static str> {
    match goarm.split(',').next()?.trim() {
        "5" => Some("v5"),
        "6" => Some("v6"),
        "7" => Some("v7"),
        _ => None,
    }
}

/// Maps `Tag_CPU_arch` (the ARM ABI addenda's table) to an OCI variant.
fn variant_of_cpu_arch(arch: u64) -> Option<&'static str> {
    match arch {
        // Pre-v4 … v5TEJ: Debian's armel baseline is v5TE.
        0..=5 => Some("v5"),
        // v6, v6KZ, v6T2, v6K, v6-M, v6S-M.
        6..=9 | 11 | 12 => Some("v6"),
        // v7, v7E-M.
        10 | 13 => Some("v7"),
        // v8-A, v8-R, v8-M, v8.1-A … v9-A: AArch32 code of an ARMv8 core.
        14..=22 => Some("v8"),
        _ => None,
    }
}

/// Reads an unsigned LEB128 number at `*at`, advancing it; None when it runs off the end
/// or does not fit 64 bits.
fn uleb(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Skips a NUL-terminated string at `*at`.
fn skip_ntbs(b: &[u8], at: &mut usize) -> Option<()> {
    let n = b.get(*at..)?.iter().position(|&c| c == 0)?;
    *at += n + 1;
    Some(())
}

fn u32_at(b: &[u8], at: usize, le: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    })
}

/// `Tag_CPU_arch` of the file-wide `aeabi` attributes: format `A`, then subsections
/// (length, vendor name, then tagged sub-subsections of tag/value pairs). Every length
/// is checked; anything malformed yields None.
pub fn cpu_arch(b: &[u8], le: bool) -> Option<u64> {
    if b.first() != Some(&b'A') {
        return None;
    }
    let mut at = 1;
    while at < b.len() {
        let len = u32_at(b, at, le)? as usize;
        let end = at.checked_add(len).filter(|&e| e <= b.len() && len >= 4)?;
        let mut p = at + 4;
        let vendor_start = p;
        skip_ntbs(&b[..end], &mut p)?;
        if &b[vendor_start..p - 1] == b"aeabi" {
            while p < end {
                let sub_start = p;
                let tag = uleb(&b[..end], &mut p)?;
                let size = u32_at(&b[..end], p, le)? as usize;
                let sub_end = sub_start
                    .checked_add(size)
                    .filter(|&e| e <= end && size >= 5)?;
                p += 4;
                if tag == TAG_FILE {
                    return file_attributes(&b[..sub_end], p);
                }
                p = sub_end;
            }
        }
        at = end;
    }
    None
}

/// Walks tag/value pairs until `Tag_CPU_arch`. Tags 4, 5, 67 and odd tags above 32 hold
/// strings; 32 (`Tag_compatibility`) a number then a string; the rest numbers.
fn file_attributes(b: &[u8], mut p: usize) -> Option<u64> {
    while p < b.len() {
        let tag = uleb(b, &mut p)?;
        match tag {
            TAG_CPU_ARCH => return uleb(b, &mut p),
            4 | 5 | 67 => skip_ntbs(b, &mut p)?,
            32 => {
                uleb(b, &mut p)?;
                skip_ntbs(b, &mut p)?;
            }
            t if t > 32 && t % 2 == 1 => skip_ntbs(b, &mut p)?,
            _ => {
                uleb(b, &mut p)?;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attributes section as GCC writes it, with `Tag_CPU_name` before the arch.
    fn section(cpu_arch: u8) -> Vec<u8> {
        let mut attrs = vec![5];
        attrs.extend_from_slice(b"7-A\0");
        attrs.extend_from_slice(&[TAG_CPU_ARCH as u8, cpu_arch, 10, 2, 32, 1, 0, 34, 1]);
        let mut file = vec![TAG_FILE as u8];
        file.extend_from_slice(&((attrs.len() + 5) as u32).to_le_bytes());
        file.extend_from_slice(&attrs);
        let mut sub = Vec::new();
        sub.extend_from_slice(&((file.len() + 4 + 6) as u32).to_le_bytes());
        sub.extend_from_slice(b"aeabi\0");
        sub.extend_from_slice(&file);
        // A vendor subsection nobase does not read, before the aeabi one.
        let mut out = vec![b'A'];
        out.extend_from_slice(&10u32.to_le_bytes());
        out.extend_from_slice(b"gnu\0\x01\x00");
        out.extend_from_slice(&sub);
        out
    }

    #[test]
    fn cpu_arch_to_variant() {
        for (arch, want) in [
            (1, Some("v5")),
            (4, Some("v5")),
            (6, Some("v6")),
            (9, Some("v6")),
            (10, Some("v7")),
            (14, Some("v8")),
            (22, Some("v8")),
            (99, None),
        ] {
            let s = section(arch);
            assert_eq!(cpu_arch(&s, true), Some(arch as u64));
            assert_eq!(
                cpu_arch(&s, true).and_then(variant_of_cpu_arch),
                want,
                "{arch}"
            );
        }
    }

    #[test]
    fn malformed_sections_are_none_not_panics() {
        let good = section(10);
        for cut in 0..good.len() {
            let _ = cpu_arch(&good[..cut], true);
        }
        for bad in [&b""[..], b"B", b"A\xff\xff\xff\xff", b"A\x02\x00\x00\x00"] {
            assert_eq!(cpu_arch(bad, true), None);
        }
        // An endless LEB128 stops at 64 bits.
        let mut s = section(10);
        let n = s.len();
        s[n - 3..].copy_from_slice(&[0xff, 0xff, 0xff]);
        let _ = cpu_arch(&s, true);
    }

    #[test]
    fn goarm() {
        for (g, want) in [
            ("5", Some("v5")),
            ("6", Some("v6")),
            ("7", Some("v7")),
            ("7,softfloat", Some("v7")),
            ("8", None),
        ] {
            assert_eq!(variant_of_goarm(g), want, "{g}");
        }
    }
}
