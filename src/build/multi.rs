//! Multi-platform builds: several executables, one per platform (read from each ELF
//! header, or given), each built into its own image, then an OCI image index that lists
//! them. Each platform's loader and libraries come from its own sysroot.

use super::{build, platform_of, read_executable, BuildPlan, Built};
use crate::error::{Error, Result};
use crate::image::{self, platform_matches, Image, Index, Platform};
use crate::oci::Layout;
use std::path::{Path, PathBuf};

/// One `--sysroot` value: a directory for the only executable, or for one platform
/// (`arm64=/usr/aarch64-linux-gnu`, `linux/arm/v7=DIR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysrootSpec {
    /// The platform it is for; None: the single executable's.
    pub platform: Option<Platform>,
    /// The tree.
    pub dir: PathBuf,
}

impl SysrootSpec {
    /// Parses `DIR` or `PLATFORM=DIR`. The part before `=` counts as a platform only when
    /// it is spelled like one (lowercase letters, digits and `/`), so a directory whose
    /// name holds `=` can still be given as `./a=b`.
    pub fn parse(s: &str) -> Result<SysrootSpec> {
        let platform_like = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '/')
        };
        match s.split_once('=') {
            Some((p, dir)) if platform_like(p) => {
                if dir.is_empty() {
                    return Err(Error::Usage(format!(
                        "--sysroot {s}: name the directory after '=' (e.g. arm64=/usr/aarch64-linux-gnu)"
                    )));
                }
                Ok(SysrootSpec {
                    platform: Some(Platform::parse(p)?),
                    dir: PathBuf::from(dir),
                })
            }
            _ if s.is_empty() => Err(Error::Usage("--sysroot needs a directory".into())),
            _ => Ok(SysrootSpec {
                platform: None,
                dir: PathBuf::from(s),
            }),
        }
    }
}

/// What a multi-platform build is asked.
#[derive(Clone, Debug)]
pub struct Request {
    /// Settings shared by every platform's image (its `binary`, `sysroot` and `platform`
    /// are replaced per executable).
    pub base: BuildPlan,
    /// The executables, one per platform.
    pub binaries: Vec<PathBuf>,
    /// `--platform`: none, one per executable in order, or one for a single executable.
    pub platforms: Vec<Platform>,
    /// `--sysroot` values.
    pub sysroots: Vec<SysrootSpec>,
}

/// A finished multi-platform build.
#[derive(Clone, Debug)]
pub struct MultiBuilt {
    /// The index (or, for one executable, its image as it is).
    pub image: Image,
    /// Each platform's build, in index order.
    pub builds: Vec<Built>,
}

/// Turns a request into one validated plan per executable: platforms read and checked
/// for duplicates, sysroots assigned, and a common image path chosen, before anything
/// is built.
pub fn plans(req: &Request) -> Result<Vec<BuildPlan>> {
    let n = req.binaries.len();
    if n == 0 {
        return Err(Error::Usage("name the executable to package".into()));
    }
    if !req.platforms.is_empty() && req.platforms.len() != n {
        return Err(Error::Usage(format!(
            "{} --platform values for {n} executables: give one per executable, in the same order",
            req.platforms.len()
        )));
    }
    let mut platforms = Vec::with_capacity(n);
    for (i, bin) in req.binaries.iter().enumerate() {
        let info = read_executable(bin)?;
        platforms.push(platform_of(bin, &info, req.platforms.get(i))?);
    }
    for i in 0..n {
        for j in 0..i {
            if platforms[i] == platforms[j] {
                return Err(Error::Usage(format!(
                    "{} and {} are both {} programs; several executables make an image \
                     index, one image per platform (tell ARM variants apart with --platform, \
                     one per executable). To put both in one image, build the first and \
                     --add the second (its libraries are bundled too), or write a Dockerfile \
                     with a COPY of each",
                    req.binaries[j].display(),
                    req.binaries[i].display(),
                    platforms[i]
                )));
            }
        }
    }
    let sysroots = assign_sysroots(&req.sysroots, &req.binaries, &platforms)?;
    let app_path = match (&req.base.app_path, n) {
        (Some(p), _) => Some(p.clone()),
        (None, 1) => None,
        (None, _) => Some(format!("/app/{}", common_name(&req.binaries, &platforms)?)),
    };
    Ok(req
        .binaries
        .iter()
        .zip(platforms)
        .zip(sysroots)
        .map(|((bin, platform), sysroot)| BuildPlan {
            binary: bin.clone(),
            app_path: app_path.clone(),
            sysroot,
            platform: Some(platform),
            ..req.base.clone()
        })
        .collect())
}

/// The sysroot of each executable: a bare `DIR` is the single executable's; a
/// `PLATFORM=DIR` goes to the executable of that platform, and must find one.
fn assign_sysroots(
    specs: &[SysrootSpec],
    binaries: &[PathBuf],
    platforms: &[Platform],
) -> Result<Vec<Option<PathBuf>>> {
    let mut out: Vec<Option<PathBuf>> = vec![None; binaries.len()];
    for spec in specs {
        let Some(want) = &spec.platform else {
            if binaries.len() > 1 {
                return Err(Error::Usage(format!(
                    "--sysroot {} with {} executables: say which platform it is for, \
                     e.g. --sysroot arm64={}",
                    spec.dir.display(),
                    binaries.len(),
                    spec.dir.display()
                )));
            }
            if out[0].replace(spec.dir.clone()).is_some() {
                return Err(Error::Usage("--sysroot given twice".into()));
            }
            continue;
        };
        let mut matched = false;
        for (i, p) in platforms.iter().enumerate() {
            // `arm64` names linux/arm64; `arm` any ARM variant; `arm/v6` only v6.
            if platform_matches(p, want) {
                matched = true;
                if out[i].replace(spec.dir.clone()).is_some() {
                    return Err(Error::Usage(format!(
                        "two --sysroot values apply to {} ({p})",
                        binaries[i].display()
                    )));
                }
            }
        }
        if !matched {
            return Err(Error::Usage(format!(
                "--sysroot {want}={}: no executable is for {want} (they are {})",
                spec.dir.display(),
                platforms
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(out)
}

/// Names an architecture goes by in file names (`hello-x86_64`, `hello_aarch64`).
fn arch_aliases(p: &Platform) -> Vec<String> {
    let mut v = vec![p.architecture.clone()];
    if let Some(variant) = &p.variant {
        v.insert(0, format!("{}{variant}", p.architecture));
        v.insert(0, format!("{}-{variant}", p.architecture));
        v.insert(0, format!("{}_{variant}", p.architecture));
    }
    let extra: &[&str] = match p.architecture.as_str() {
        "amd64" => &["x86_64", "x86-64", "x64"],
        "arm64" => &["aarch64", "armv8"],
        "arm" => &["armhf", "armel"],
        "386" => &["i386", "i686", "x86"],
        _ => &[],
    };
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The file name without its architecture (`hello-arm64` → `hello`), when one of the
/// platform's names is a separated part of it.
fn strip_arch(name: &str, p: &Platform) -> String {
    let lower = name.to_ascii_lowercase();
    for alias in arch_aliases(p) {
        for sep in ['-', '_', '.'] {
            if let Some(stem) = lower.strip_suffix(&format!("{sep}{alias}")) {
                return name[..stem.len()].to_string();
            }
            if lower.starts_with(&format!("{alias}{sep}")) {
                return name[alias.len() + 1..].to_string();
            }
            if let Some(i) = lower.find(&format!("{sep}{alias}{sep}")) {
                return format!("{}{}", &name[..i], &name[i + alias.len() + 1..]);
            }
        }
    }
    name.to_string()
}

/// The one name every platform's executable gets in the image (`/app/NAME`), so the
/// entrypoint is the same whatever platform a runtime picks: the common file name once
/// each name's architecture is taken out.
pub fn common_name(binaries: &[PathBuf], platforms: &[Platform]) -> Result<String> {
    let names: Vec<String> = binaries
        .iter()
        .zip(platforms)
        .map(|(b, p)| {
            let base = file_name(b)?;
            Ok(strip_arch(base, p))
        })
        .collect::<Result<_>>()?;
    match names.split_first() {
        Some((first, rest)) if !first.is_empty() && rest.iter().all(|n| n == first) => {
            Ok(first.clone())
        }
        _ => Err(Error::Usage(format!(
            "the executables have different names ({}): give the path they share in the \
             image with --path /app/NAME",
            binaries
                .iter()
                .map(|b| b.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn file_name(p: &Path) -> Result<&str> {
    p.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::Usage(format!(
            "{} has no usable file name; give the image path with --path",
            p.display()
        ))
    })
}

/// Builds every plan into `layout`, then (for more than one) an OCI image index that
/// lists each platform's manifest, sorted by platform so the index digest does not
/// depend on the order the executables were named in.
pub fn build_all(plans: &[BuildPlan], layout: &Layout) -> Result<MultiBuilt> {
    let mut builds = plans
        .iter()
        .map(|p| build(p, layout))
        .collect::<Result<Vec<_>>>()?;
    if builds.len() == 1 {
        return Ok(MultiBuilt {
            image: builds[0].image.clone(),
            builds,
        });
    }
    builds.sort_by_key(|b| b.image.manifests[0].config.platform());
    let image = index_of(builds.iter().map(|b| &b.image), layout)?;
    Ok(MultiBuilt { image, builds })
}

/// An OCI image index over single-platform `images` (already in `layout`, in the order
/// given: sort them by platform first, so the digest does not depend on the order they
/// were built in), written to `layout`.
pub fn index_of<'a>(images: impl Iterator<Item = &'a Image>, layout: &Layout) -> Result<Image> {
    let manifests: Vec<_> = images.flat_map(|i| i.manifests.iter().cloned()).collect();
    let index = Index {
        schema_version: 2,
        media_type: Some(image::MT_OCI_INDEX.into()),
        manifests: manifests.iter().map(|m| m.descriptor.clone()).collect(),
        annotations: Default::default(),
    };
    let top = layout.put_bytes(image::MT_OCI_INDEX, &image::to_bytes(&index))?;
    Ok(Image {
        top,
        index: Some(index),
        manifests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn sysroot_specs() {
        for (input, want) in [
            (
                "/usr/aarch64-linux-gnu",
                Some((None, "/usr/aarch64-linux-gnu")),
            ),
            (
                "arm64=/usr/aarch64-linux-gnu",
                Some((Some("linux/arm64"), "/usr/aarch64-linux-gnu")),
            ),
            ("linux/arm/v7=/r", Some((Some("linux/arm/v7"), "/r"))),
            ("./a=b", Some((None, "./a=b"))),
            ("arm64=", None),
            ("", None),
            ("a/b/c/d=/x", None),
        ] {
            let got = SysrootSpec::parse(input).ok().map(|s| {
                (
                    s.platform.map(|p| p.to_string()),
                    s.dir.display().to_string(),
                )
            });
            let want = want.map(|(p, d)| (p.map(str::to_string), d.to_string()));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn sysroots_go_to_their_platform() {
        let bins = [PathBuf::from("a"), PathBuf::from("b")];
        let plats = [p("linux/amd64"), p("linux/arm64")];
        let spec = |s: &str| SysrootSpec::parse(s).unwrap();
        assert_eq!(
            assign_sysroots(&[spec("arm64=/x")], &bins, &plats).unwrap(),
            [None, Some(PathBuf::from("/x"))]
        );
        for bad in [
            &[spec("/x")][..],
            &[spec("riscv64=/x")],
            &[spec("arm64=/x"), spec("linux/arm64=/y")],
        ] {
            let e = assign_sysroots(bad, &bins, &plats).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
        }
        assert_eq!(
            assign_sysroots(&[spec("/x")], &bins[..1], &plats[..1]).unwrap(),
            [Some(PathBuf::from("/x"))]
        );
    }

    #[test]
    fn names_lose_their_architecture() {
        for (names, plats, want) in [
            (
                &["hello-amd64", "hello-arm64"][..],
                &["amd64", "arm64"][..],
                Some("hello"),
            ),
            (
                &["out/x86_64/app", "out/aarch64/app"],
                &["amd64", "arm64"],
                Some("app"),
            ),
            (
                &["app_x86_64", "app_aarch64", "app-armv7"],
                &["amd64", "arm64", "linux/arm/v7"],
                Some("app"),
            ),
            (
                &["srv-linux-amd64", "srv-linux-arm64"],
                &["amd64", "arm64"],
                Some("srv-linux"),
            ),
            (
                &["amd64-tool", "arm64.tool"],
                &["amd64", "arm64"],
                Some("tool"),
            ),
            (
                &["Hello-AMD64", "Hello-arm64"],
                &["amd64", "arm64"],
                Some("Hello"),
            ),
            (&["one", "two"], &["amd64", "arm64"], None),
            (&["hello-arm64", "hello-amd64"], &["amd64", "arm64"], None),
        ] {
            let bins: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
            let plats: Vec<Platform> = plats.iter().map(|s| p(s)).collect();
            assert_eq!(
                common_name(&bins, &plats).ok().as_deref(),
                want,
                "{names:?}"
            );
        }
    }
}
