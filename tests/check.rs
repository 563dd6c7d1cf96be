//! `nobase check` judged by runc: a corpus of images built with umoci (never with
//! nobase), one per way an image can fail to start and as many that start, each started
//! with `umoci unpack` + `runc run`; check's verdict must agree with runc every time.
//! Then the readers: the same image through oci-archive and docker-archive, hostile
//! layers that must be refused or contained, and a corrupted blob.

use crate::util::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Runs a command that must succeed.
#[track_caller]
fn sh(cmd: &mut Command) -> Run {
    let r = run(cmd);
    assert_eq!(r.code, 0, "{cmd:?} failed:\n{}{}", r.stdout, r.stderr);
    r
}

/// A directory tree that becomes one layer.
struct Stage {
    root: PathBuf,
}

impl Stage {
    fn new(root: PathBuf) -> Stage {
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        Stage { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    fn file(&self, rel: &str, bytes: &[u8], mode: u32) -> &Stage {
        let p = self.path(rel);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    /// Copies a host file (following symlinks) with the given mode.
    fn copy(&self, rel: &str, from: &Path, mode: u32) -> &Stage {
        self.file(rel, &std::fs::read(from).unwrap(), mode)
    }

    fn link(&self, rel: &str, target: &str) -> &Stage {
        std::os::unix::fs::symlink(target, self.path(rel)).unwrap();
        self
    }

    fn dir(&self, rel: &str, mode: u32) -> &Stage {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    fn chown(&self, rel: &str, uid: u32, gid: u32) -> &Stage {
        std::os::unix::fs::lchown(self.path(rel), Some(uid), Some(gid)).unwrap();
        self
    }
}

/// An image being built with umoci in `dir/oci`.
struct Image {
    dir: PathBuf,
    layers: usize,
}

impl Image {
    fn new(dir: &Path) -> Image {
        std::fs::create_dir_all(dir).unwrap();
        let img = Image {
            dir: dir.to_path_buf(),
            layers: 0,
        };
        sh(Command::new("umoci")
            .args(["init", "--layout"])
            .arg(img.dir.join("oci")));
        sh(Command::new("umoci").args(["new", "--image", &img.umoci_ref()]));
        img
    }

    fn umoci_ref(&self) -> String {
        format!("{}:latest", self.dir.join("oci").display())
    }

    fn nobase_ref(&self) -> String {
        format!("oci:{}", self.umoci_ref())
    }

    /// A fresh staging directory for the next layer.
    fn stage(&mut self) -> Stage {
        self.layers += 1;
        Stage::new(self.dir.join(format!("layer{}", self.layers)))
    }

    /// Adds `stage` as a layer at `/` (opaque: hiding what lower layers had under
    /// `dest`, when `dest` is given).
    fn insert(&self, stage: &Stage, opaque_dest: Option<&str>) -> &Image {
        let mut c = Command::new("umoci");
        c.args(["insert", "--no-history", "--image", &self.umoci_ref()]);
        match opaque_dest {
            Some(dest) => c
                .arg("--opaque")
                .arg(stage.root.join(dest.trim_start_matches('/')))
                .arg(dest),
            None => c.arg(&stage.root).arg("/"),
        };
        sh(&mut c);
        self
    }

    fn whiteout(&self, path: &str) -> &Image {
        sh(Command::new("umoci").args([
            "insert",
            "--no-history",
            "--whiteout",
            "--image",
            &self.umoci_ref(),
            path,
        ]));
        self
    }

    fn config(&self, args: &[&str]) -> &Image {
        sh(Command::new("umoci")
            .args(["config", "--no-history", "--image", &self.umoci_ref()])
            .args(args));
        self
    }
}

/// Programs and libraries the corpus is made of, compiled once.
struct Fixtures {
    dir: PathBuf,
    ld_linux: PathBuf,
    libc: PathBuf,
    musl_ld: PathBuf,
    arm64_ld: PathBuf,
    busybox: PathBuf,
    go: Option<PathBuf>,
}

const DEEP2_C: &str = "int deep2(void) { return 2; }\n";
const DEEP1_C: &str = "int deep2(void);\nint deep1(void) { return deep2() - 1; }\n";
const DEEP_MAIN_C: &str = "#include <stdio.h>\nint deep1(void);\nint main(void) { printf(\"deep %d\\n\", deep1()); return 0; }\n";
const ORIGIN_MAIN_C: &str = "#include <stdio.h>\nint deep2(void);\nint main(void) { printf(\"origin %d\\n\", deep2()); return 0; }\n";
const VER_V1_C: &str = "int vfoo(void) { return 1; }\n";
const VER_V2_C: &str = "int vfoo(void) { return 1; }\nint vbar(void) { return 2; }\n";
const VER_V1_MAP: &str = "VER_1 { global: vfoo; local: *; };\n";
const VER_V2_MAP: &str = "VER_1 { global: vfoo; local: *; };\nVER_2 { global: vbar; } VER_1;\n";
const VER_MAIN_C: &str = "#include <stdio.h>\nint vbar(void);\nint main(void) { printf(\"ver %d\\n\", vbar()); return 0; }\n";

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let sources = [
            ("deep2.c", DEEP2_C),
            ("deep1.c", DEEP1_C),
            ("deepmain.c", DEEP_MAIN_C),
            ("originmain.c", ORIGIN_MAIN_C),
            ("ver1.c", VER_V1_C),
            ("ver2.c", VER_V2_C),
            ("v1.map", VER_V1_MAP),
            ("v2.map", VER_V2_MAP),
            ("vermain.c", VER_MAIN_C),
        ];
        // Named after the sources, so later runs reuse it and a changed source rebuilds;
        // built under a private name and renamed, so parallel runs never see half of it.
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&sources, &mut h);
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let done = tmp.join(format!(
            "check-fixtures-{:016x}",
            std::hash::Hasher::finish(&h)
        ));
        let fx = |dir: PathBuf| Fixtures {
            ld_linux: canon("/lib64/ld-linux-x86-64.so.2"),
            libc: canon("/lib/x86_64-linux-gnu/libc.so.6"),
            musl_ld: canon("/lib/ld-musl-x86_64.so.1"),
            arm64_ld: canon("/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1"),
            busybox: canon("/bin/busybox"),
            go: hello_go(),
            dir,
        };
        if done.join("verapp").exists() {
            return fx(done);
        }
        let dir = tmp.join(format!("check-fixtures-{}.tmp", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in sources {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let gcc = |args: &[&str]| {
            sh(Command::new("gcc").args(args).current_dir(&dir));
        };
        gcc(&[
            "-shared",
            "-fPIC",
            "-o",
            "libdeep2.so",
            "-Wl,-soname,libdeep2.so",
            "deep2.c",
        ]);
        gcc(&[
            "-shared",
            "-fPIC",
            "-o",
            "libdeep1.so",
            "-Wl,-soname,libdeep1.so",
            "deep1.c",
            "-L.",
            "-ldeep2",
        ]);
        gcc(&[
            "-o",
            "deepapp",
            "deepmain.c",
            "-L.",
            "-ldeep1",
            "-Wl,-rpath-link,.",
        ]);
        gcc(&[
            "-o",
            "originapp",
            "originmain.c",
            "-L.",
            "-ldeep2",
            "-Wl,-rpath,$ORIGIN/../lib",
        ]);
        std::fs::create_dir_all(dir.join("v1")).unwrap();
        gcc(&[
            "-shared",
            "-fPIC",
            "-o",
            "v1/libver.so",
            "-Wl,-soname,libver.so",
            "-Wl,--version-script=v1.map",
            "ver1.c",
        ]);
        gcc(&[
            "-shared",
            "-fPIC",
            "-o",
            "libver.so",
            "-Wl,-soname,libver.so",
            "-Wl,--version-script=v2.map",
            "ver2.c",
        ]);
        gcc(&["-o", "verapp", "vermain.c", "-L.", "-lver"]);
        if std::fs::rename(&dir, &done).is_err() {
            // Another run finished first; its files are the same.
            let _ = std::fs::remove_dir_all(&dir);
        }
        fx(done)
    })
}

fn canon(p: &str) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

impl Fixtures {
    /// The glibc loader and libc at their usual paths.
    fn glibc(&self, s: &Stage) {
        s.copy(
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            &self.ld_linux,
            0o755,
        )
        .link(
            "/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        )
        .copy("/lib/x86_64-linux-gnu/libc.so.6", &self.libc, 0o755);
    }

    /// busybox as /bin/sh, /bin/env and /usr/bin/env.
    fn shell(&self, s: &Stage) {
        s.copy("/bin/busybox", &self.busybox, 0o755)
            .link("/bin/sh", "busybox")
            .link("/usr/bin/env", "/bin/busybox");
    }
}

/// A program or library of the corpus.
#[derive(Clone, Copy)]
enum Bin {
    Static,
    StaticPie,
    MuslStatic,
    Dynamic,
    Musl,
    Arm64,
    Go,
    /// The first N bytes of the static hello.
    Truncated(usize),
    /// A file compiled into the fixtures directory.
    Fixture(&'static str),
    LdLinux,
    Libc,
    MuslLd,
    Arm64Ld,
}

impl Bin {
    fn bytes(self, fx: &Fixtures) -> Vec<u8> {
        let path = match self {
            Bin::Static | Bin::Truncated(_) => hello_static(),
            Bin::StaticPie => hello_static_pie(),
            Bin::MuslStatic => hello_musl_static(),
            Bin::Dynamic => hello_dynamic(),
            Bin::Musl => hello_musl(),
            Bin::Arm64 => hello_arm64_static(),
            // Without Go, a C static binary keeps the case meaningful.
            Bin::Go => fx.go.clone().unwrap_or_else(hello_static),
            Bin::Fixture(name) => fx.dir.join(name),
            Bin::LdLinux => fx.ld_linux.clone(),
            Bin::Libc => fx.libc.clone(),
            Bin::MuslLd => fx.musl_ld.clone(),
            Bin::Arm64Ld => fx.arm64_ld.clone(),
        };
        let mut b = std::fs::read(path).unwrap();
        if let Bin::Truncated(n) = self {
            b.truncate(n);
        }
        b
    }
}

/// One thing put into a layer.
#[derive(Clone, Copy)]
enum Put {
    /// A program at a path, with a mode.
    Prog(&'static str, Bin, u32),
    /// Bytes at a path, with a mode.
    File(&'static str, &'static [u8], u32),
    /// A symlink and its target.
    Link(&'static str, &'static str),
    /// A hard link to a path put before it.
    Hard(&'static str, &'static str),
    /// A directory's mode.
    Dir(&'static str, u32),
    /// Owner and group of a path put before it.
    Own(&'static str, u32, u32),
    /// glibc's loader and libc at their usual paths.
    Glibc,
    /// busybox as /bin/sh and env.
    Shell,
    /// A host program and every library `ldd` says it loads, at their host paths.
    HostClosure(&'static str),
}

fn fill(fx: &Fixtures, s: &Stage, puts: &[Put]) {
    for p in puts {
        match *p {
            Put::Prog(path, bin, mode) => {
                s.file(path, &bin.bytes(fx), mode);
            }
            Put::File(path, bytes, mode) => {
                s.file(path, bytes, mode);
            }
            Put::Link(path, target) => {
                s.link(path, target);
            }
            Put::Hard(path, to) => std::fs::hard_link(s.path(to), s.path(path)).unwrap(),
            Put::Dir(path, mode) => {
                s.dir(path, mode);
            }
            Put::Own(path, uid, gid) => {
                s.chown(path, uid, gid);
            }
            Put::Glibc => fx.glibc(s),
            Put::Shell => fx.shell(s),
            Put::HostClosure(program) => {
                s.copy(program, Path::new(program), 0o755);
                let ldd = sh(Command::new("ldd").arg(program));
                for lib in ldd.stdout.split_whitespace().filter(|w| w.starts_with('/')) {
                    s.copy(lib, Path::new(lib), 0o755);
                }
            }
        }
    }
}

/// What happens after the first layer.
enum Then {
    /// A layer deleting a path.
    Whiteout(&'static str),
    /// A layer making a directory opaque, with new contents.
    Opaque(&'static str, &'static [Put]),
    /// A plain layer.
    Layer(&'static [Put]),
}

/// One image of the corpus.
struct Case {
    name: &'static str,
    /// What runc is expected to do with it (a sanity check on the corpus itself).
    starts: bool,
    /// The problem code `check` must report when it does not start.
    code: Option<&'static str>,
    layer: &'static [Put],
    config: &'static [&'static str],
    then: Option<Then>,
}

impl Case {
    fn build(&self, fx: &Fixtures, img: &mut Image) {
        let s = img.stage();
        fill(fx, &s, self.layer);
        img.insert(&s, None);
        if !self.config.is_empty() {
            img.config(self.config);
        }
        match &self.then {
            None => {}
            Some(Then::Whiteout(path)) => {
                img.whiteout(path);
            }
            Some(Then::Opaque(dest, puts)) => {
                let s = img.stage();
                fill(fx, &s, puts);
                img.insert(&s, Some(dest));
            }
            Some(Then::Layer(puts)) => {
                let s = img.stage();
                fill(fx, &s, puts);
                img.insert(&s, None);
            }
        }
    }
}

/// A case that starts.
const fn ok(name: &'static str, layer: &'static [Put], config: &'static [&'static str]) -> Case {
    Case {
        name,
        starts: true,
        code: None,
        layer,
        config,
        then: None,
    }
}

/// A case that does not start, for the reason `code`.
const fn fails(
    name: &'static str,
    code: &'static str,
    layer: &'static [Put],
    config: &'static [&'static str],
) -> Case {
    Case {
        name,
        starts: false,
        code: Some(code),
        layer,
        config,
        then: None,
    }
}

const SCRIPT: &[u8] = b"#!/bin/sh\necho hello from a script\n";
const EP: &[&str] = &["--config.entrypoint", "/app/hello"];
const HELLO: &[Put] = &[Put::Prog("/app/hello", Bin::Static, 0o755)];
const RUN: &[&str] = &["--config.entrypoint", "/app/run"];
const DEEP: &[&str] = &["--config.entrypoint", "/app/deep"];
const ORIGIN: &[&str] = &["--config.entrypoint", "/opt/app/bin/origin"];
const VER: &[&str] = &["--config.entrypoint", "/app/ver"];
const USR_BIN_HELLO: &[&str] = &["--config.entrypoint", "/usr/bin/hello"];
const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";

fn corpus() -> Vec<Case> {
    use Bin::*;
    use Put::*;
    vec![
        ok("static", HELLO, EP),
        ok("static-pie", &[Prog("/app/hello", StaticPie, 0o755)], EP),
        ok("musl-static", &[Prog("/app/hello", MuslStatic, 0o755)], EP),
        ok("go-static", &[Prog("/app/hello", Go, 0o755)], EP),
        ok(
            "node-with-its-closure",
            &[HostClosure("/usr/bin/node")],
            &[
                "--config.entrypoint",
                "/usr/bin/node",
                "--config.cmd",
                "--version",
            ],
        ),
        fails(
            "dynamic-without-loader",
            "missing-interpreter",
            &[Prog("/app/hello", Dynamic, 0o755)],
            EP,
        ),
        ok(
            "dynamic-with-loader-and-libc",
            &[Prog("/app/hello", Dynamic, 0o755), Glibc],
            EP,
        ),
        fails(
            "dynamic-loader-dangling-symlink",
            "missing-interpreter",
            &[
                Prog("/app/hello", Dynamic, 0o755),
                Link(
                    "/lib64/ld-linux-x86-64.so.2",
                    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                ),
                Prog("/lib/x86_64-linux-gnu/libc.so.6", Libc, 0o755),
            ],
            EP,
        ),
        fails(
            "dynamic-loader-wrong-architecture",
            "wrong-architecture",
            &[
                Prog("/app/hello", Dynamic, 0o755),
                Prog("/lib64/ld-linux-x86-64.so.2", Arm64Ld, 0o755),
                Prog("/lib/x86_64-linux-gnu/libc.so.6", Libc, 0o755),
            ],
            EP,
        ),
        fails(
            "dynamic-loader-not-elf",
            "exec-format",
            &[
                Prog("/app/hello", Dynamic, 0o755),
                File("/lib64/ld-linux-x86-64.so.2", b"not a loader\n", 0o755),
                Prog("/lib/x86_64-linux-gnu/libc.so.6", Libc, 0o755),
            ],
            EP,
        ),
        fails(
            "dynamic-without-libc",
            "missing-library",
            &[
                Prog("/app/hello", Dynamic, 0o755),
                Prog("/lib64/ld-linux-x86-64.so.2", LdLinux, 0o755),
            ],
            EP,
        ),
        fails(
            "dangling-library-symlink",
            "missing-library",
            &[
                Prog("/app/hello", Dynamic, 0o755),
                Prog("/lib64/ld-linux-x86-64.so.2", LdLinux, 0o755),
                Link("/lib/x86_64-linux-gnu/libc.so.6", "libc-2.99.so"),
            ],
            EP,
        ),
        fails(
            "library-missing-deep-in-the-tree",
            "missing-library",
            &[
                Prog("/app/deep", Fixture("deepapp"), 0o755),
                Prog("/usr/lib/libdeep1.so", Fixture("libdeep1.so"), 0o755),
                Glibc,
            ],
            DEEP,
        ),
        ok(
            "library-tree-complete",
            &[
                Prog("/app/deep", Fixture("deepapp"), 0o755),
                Prog("/usr/lib/libdeep1.so", Fixture("libdeep1.so"), 0o755),
                Prog("/lib/libdeep2.so", Fixture("libdeep2.so"), 0o755),
                Glibc,
            ],
            DEEP,
        ),
        ok(
            "origin-runpath",
            &[
                Prog("/opt/app/bin/origin", Fixture("originapp"), 0o755),
                Prog("/opt/app/lib/libdeep2.so", Fixture("libdeep2.so"), 0o755),
                Glibc,
            ],
            ORIGIN,
        ),
        fails(
            "origin-runpath-library-elsewhere",
            "missing-library",
            &[
                Prog("/opt/app/bin/origin", Fixture("originapp"), 0o755),
                Prog("/opt/app/libs/libdeep2.so", Fixture("libdeep2.so"), 0o755),
                Glibc,
            ],
            ORIGIN,
        ),
        fails(
            "symbol-version-missing",
            "missing-symbol-version",
            &[
                Prog("/app/ver", Fixture("verapp"), 0o755),
                Prog("/usr/lib/libver.so", Fixture("v1/libver.so"), 0o755),
                Glibc,
            ],
            VER,
        ),
        ok(
            "symbol-version-present",
            &[
                Prog("/app/ver", Fixture("verapp"), 0o755),
                Prog("/usr/lib/libver.so", Fixture("libver.so"), 0o755),
                Glibc,
            ],
            VER,
        ),
        ok(
            "musl-dynamic-with-loader",
            &[
                Prog("/app/hello", Musl, 0o755),
                Prog("/lib/ld-musl-x86_64.so.1", MuslLd, 0o755),
            ],
            EP,
        ),
        fails(
            "musl-dynamic-without-loader",
            "missing-interpreter",
            &[Prog("/app/hello", Musl, 0o755)],
            EP,
        ),
        fails(
            "wrong-architecture",
            "wrong-architecture",
            &[Prog("/app/hello", Arm64, 0o755)],
            EP,
        ),
        fails(
            "truncated-elf",
            "exec-format",
            &[Prog("/app/hello", Truncated(4096), 0o755)],
            EP,
        ),
        fails(
            "truncated-elf-header",
            "exec-format",
            &[Prog("/app/hello", Truncated(40), 0o755)],
            EP,
        ),
        fails(
            "empty-file",
            "exec-format",
            &[File("/app/hello", b"", 0o755)],
            EP,
        ),
        fails(
            "script-without-shebang",
            "exec-format",
            &[File("/app/run", b"echo hello\n", 0o755), Shell],
            RUN,
        ),
        ok(
            "script-with-shell",
            &[File("/app/run", SCRIPT, 0o755), Shell],
            RUN,
        ),
        fails(
            "script-without-shell",
            "missing-interpreter",
            &[File("/app/run", SCRIPT, 0o755)],
            RUN,
        ),
        fails(
            "script-with-crlf",
            "missing-interpreter",
            &[
                File("/app/run", b"#!/bin/sh\r\necho hello\r\n", 0o755),
                Shell,
            ],
            RUN,
        ),
        ok(
            "script-env-shebang",
            &[
                File("/app/run", b"#!/usr/bin/env sh\necho hello\n", 0o755),
                Shell,
            ],
            RUN,
        ),
        fails(
            "script-env-program-missing",
            "missing-interpreter",
            &[
                File("/app/run", b"#!/usr/bin/env python3\nprint(1)\n", 0o755),
                Shell,
            ],
            RUN,
        ),
        fails(
            "script-env-argument-not-split",
            "missing-interpreter",
            &[
                File("/app/run", b"#!/usr/bin/env sh -e\necho hello\n", 0o755),
                Shell,
            ],
            RUN,
        ),
        ok(
            "script-interpreter-is-a-script",
            &[
                File("/app/run", b"#!/app/wrapper\n", 0o755),
                File("/app/wrapper", b"#!/bin/sh\necho wrapped \"$@\"\n", 0o755),
                Shell,
            ],
            RUN,
        ),
        fails(
            "script-unreadable-by-user",
            "not-executable",
            &[File("/app/run", SCRIPT, 0o711), Shell],
            &["--config.entrypoint", "/app/run", "--config.user", "1000"],
        ),
        ok(
            "symlink-absolute",
            &[
                Prog("/app/hello", Static, 0o755),
                Link("/usr/bin/hello", "/app/hello"),
            ],
            USR_BIN_HELLO,
        ),
        ok(
            "symlink-relative",
            &[
                Prog("/app/hello", Static, 0o755),
                Link("/usr/bin/hello", "../../app/hello"),
            ],
            USR_BIN_HELLO,
        ),
        fails(
            "symlink-dangling",
            "not-found",
            &[
                Prog("/app/hello", Static, 0o755),
                Link("/usr/bin/hello", "/app/gone"),
            ],
            USR_BIN_HELLO,
        ),
        fails(
            "symlink-loop",
            "symlink-loop",
            &[Link("/app/a", "b"), Link("/app/b", "a")],
            &["--config.entrypoint", "/app/a"],
        ),
        ok(
            "symlinked-directory-in-path",
            &[
                Prog("/usr/bin/hello", Static, 0o755),
                Link("/bin", "usr/bin"),
            ],
            &["--config.entrypoint", "/bin/hello"],
        ),
        ok(
            "hard-linked-entrypoint",
            &[
                Prog("/app/hello", Static, 0o755),
                Hard("/app/hello2", "/app/hello"),
            ],
            &["--config.entrypoint", "/app/hello2"],
        ),
        ok(
            "path-lookup",
            &[Prog("/usr/local/bin/hello", Static, 0o755)],
            &["--config.entrypoint", "hello"],
        ),
        ok(
            "path-lookup-custom-path",
            HELLO,
            &[
                "--config.entrypoint",
                "hello",
                "--config.env",
                "PATH=/opt:/app",
            ],
        ),
        ok(
            "path-lookup-skips-non-executable",
            &[
                Prog("/usr/local/bin/hello", Static, 0o644),
                Prog("/usr/bin/hello", Static, 0o755),
            ],
            &["--config.entrypoint", "hello"],
        ),
        fails(
            "path-lookup-not-found",
            "not-found",
            HELLO,
            &["--config.entrypoint", "hello"],
        ),
        ok(
            "relative-entrypoint-in-workdir",
            HELLO,
            &[
                "--config.entrypoint",
                "./hello",
                "--config.workingdir",
                "/app",
            ],
        ),
        fails(
            "entrypoint-missing",
            "not-found",
            HELLO,
            &["--config.entrypoint", "/app/other"],
        ),
        Case {
            then: Some(Then::Whiteout("/app/hello")),
            ..fails(
                "whiteout-deleted-entrypoint",
                "not-found",
                &[
                    Prog("/app/hello", Static, 0o755),
                    Prog("/app/keep", Static, 0o755),
                ],
                EP,
            )
        },
        Case {
            then: Some(Then::Opaque("/app", &[Prog("/app/other", Static, 0o755)])),
            ..fails("opaque-directory-hides-entrypoint", "not-found", HELLO, EP)
        },
        Case {
            then: Some(Then::Layer(HELLO)),
            ..ok(
                "later-layer-replaces-entrypoint",
                &[File("/app/hello", b"", 0o755)],
                EP,
            )
        },
        fails(
            "entrypoint-is-a-directory",
            "not-regular-file",
            HELLO,
            &["--config.entrypoint", "/app"],
        ),
        fails(
            "entrypoint-without-execute-bit",
            "not-executable",
            &[Prog("/app/hello", Static, 0o644)],
            EP,
        ),
        fails(
            "numeric-user-without-execute-permission",
            "not-executable",
            &[Prog("/app/hello", Static, 0o744)],
            &["--config.entrypoint", "/app/hello", "--config.user", "1000"],
        ),
        ok(
            "numeric-user-with-execute-permission",
            HELLO,
            &[
                "--config.entrypoint",
                "/app/hello",
                "--config.user",
                "1000:1000",
            ],
        ),
        ok(
            "group-execute-permission",
            &[
                Prog("/app/hello", Static, 0o750),
                Own("/app/hello", 0, 1234),
            ],
            &[
                "--config.entrypoint",
                "/app/hello",
                "--config.user",
                "1000:1234",
            ],
        ),
        fails(
            "directory-not-searchable-by-user",
            "not-executable",
            &[Prog("/app/hello", Static, 0o755), Dir("/app", 0o700)],
            &["--config.entrypoint", "/app/hello", "--config.user", "1000"],
        ),
        ok(
            "named-user-in-passwd",
            &[
                Prog("/app/hello", Static, 0o755),
                File("/etc/passwd", PASSWD, 0o644),
                File("/etc/group", b"root:x:0:\napp:x:1000:\n", 0o644),
            ],
            &["--config.entrypoint", "/app/hello", "--config.user", "app"],
        ),
        fails(
            "unknown-user",
            "unknown-user",
            HELLO,
            &[
                "--config.entrypoint",
                "/app/hello",
                "--config.user",
                "nobody",
            ],
        ),
        fails(
            "unknown-group",
            "unknown-group",
            &[
                Prog("/app/hello", Static, 0o755),
                File("/etc/passwd", PASSWD, 0o644),
            ],
            &[
                "--config.entrypoint",
                "/app/hello",
                "--config.user",
                "app:staff",
            ],
        ),
        fails(
            "no-command",
            "no-command",
            HELLO,
            &["--clear=config.entrypoint", "--clear=config.cmd"],
        ),
        ok("cmd-only", HELLO, &["--config.cmd", "/app/hello"]),
        fails(
            "workdir-is-a-file",
            "bad-workdir",
            HELLO,
            &[
                "--config.entrypoint",
                "/app/hello",
                "--config.workingdir",
                "/app/hello",
            ],
        ),
        ok(
            "workdir-missing-is-created",
            HELLO,
            &[
                "--config.entrypoint",
                "/app/hello",
                "--config.workingdir",
                "/srv/data",
            ],
        ),
    ]
}

/// What happened to one case.
struct Outcome {
    name: &'static str,
    expected: bool,
    code: Option<&'static str>,
    check: serde_json::Value,
    started: bool,
    runc: String,
}

#[test]
fn check_agrees_with_runc_on_every_image_of_the_corpus() {
    if !(have("umoci") && have("runc") && is_root()) {
        return;
    }
    let arm_runs = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists();
    let env = Env::new();
    let fx = fixtures();
    let cases: Vec<Case> = corpus()
        .into_iter()
        .filter(|c| {
            // With qemu registered in binfmt_misc the kernel runs arm64 programs, and
            // the wrong-architecture image starts: nothing to compare there.
            let skip = arm_runs && c.name == "wrong-architecture";
            if skip {
                eprintln!(
                    "skipping {}: qemu-aarch64 is registered in binfmt_misc",
                    c.name
                );
            }
            !skip
        })
        .collect();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let dir = env.path(case.name);
                let mut img = Image::new(&dir);
                case.build(fx, &mut img);
                let r = env.nobase(&["check", "--json", &img.nobase_ref()]);
                assert!(
                    r.code == 0 || r.code == 1,
                    "{}: check could not check (exit {}): {}",
                    case.name,
                    r.code,
                    r.stderr
                );
                let check = r.json();
                assert_eq!(check["ok"].as_bool(), Some(r.code == 0), "{}", case.name);
                let runc = runc_start(&dir, &img.umoci_ref()).expect("tools checked above");
                outcomes.lock().unwrap().push(Outcome {
                    name: case.name,
                    expected: case.starts,
                    code: case.code,
                    check,
                    started: runc.code == 0,
                    runc: format!("exit {}: {}{}", runc.code, runc.stdout, runc.stderr),
                });
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    let mut failures = Vec::new();
    for o in &outcomes {
        let ok = o.check["ok"].as_bool().unwrap();
        let codes: Vec<&str> = o.check["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["code"].as_str())
            .collect();
        if ok != o.started {
            failures.push(format!(
                "{}: check says {}, runc {} ({})\n  check: {}",
                o.name,
                if ok { "it starts" } else { "it does not start" },
                if o.started { "started it" } else { "did not" },
                o.runc.trim(),
                o.check
            ));
        } else if o.started != o.expected {
            failures.push(format!(
                "{}: the corpus expects it to {}start, runc says {}",
                o.name,
                if o.expected { "" } else { "not " },
                o.runc.trim()
            ));
        } else if let Some(code) = o.code {
            if !codes.contains(&code) {
                failures.push(format!(
                    "{}: expected problem {code}, got {codes:?}: {}",
                    o.name, o.check
                ));
            }
        }
        // Every problem names the object and says what to do, and the runc error it
        // predicts (`stat …: …`, `runc: …`) is the one runc gave.
        for p in o.check["problems"].as_array().unwrap() {
            let m = p["message"].as_str().unwrap();
            assert!(
                m.len() > 40 && m.contains(';'),
                "{}: terse message {m:?}",
                o.name
            );
            let quoted = m
                .split_once("`stat ")
                .and_then(|(_, r)| r.split_once('`'))
                .map(|(q, _)| format!("stat {q}"))
                .or_else(|| {
                    m.split_once("(runc: ")
                        .and_then(|(_, r)| r.split_once(')'))
                        .map(|(q, _)| q.to_string())
                });
            if let (Some(q), false) = (quoted, o.started) {
                // runc logs through logrus, which escapes the quotes of its message.
                if !o.runc.replace("\\\"", "\"").contains(&q) {
                    failures.push(format!(
                        "{}: check predicts runc says {q:?}, runc said {}",
                        o.name,
                        o.runc.trim()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
}

/// Writes an OCI layout at `out` whose layers are tars made by Python's `tarfile` from
/// `spec` (entries with any name, hostile ones included), with no checks of ours.
const CRAFT_PY: &str = r#"
import sys, json, tarfile, io, hashlib, os
out, spec = sys.argv[1], json.loads(sys.argv[2])
os.makedirs(out + "/blobs/sha256", exist_ok=True)
def put(b, mt):
    d = hashlib.sha256(b).hexdigest()
    open(out + "/blobs/sha256/" + d, "wb").write(b)
    return {"mediaType": mt, "digest": "sha256:" + d, "size": len(b)}
layers, diffs = [], []
for l in spec["layers"]:
    buf = io.BytesIO()
    t = tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT)
    for e in l:
        ti = tarfile.TarInfo(e["name"])
        ti.mode = e.get("mode", 0o755)
        typ = e.get("type", "file")
        data = open(e["src"], "rb").read() if "src" in e else e.get("data", "").encode()
        if typ == "dir": ti.type = tarfile.DIRTYPE
        elif typ == "symlink": ti.type, ti.linkname = tarfile.SYMTYPE, e["link"]
        elif typ == "hardlink": ti.type, ti.linkname = tarfile.LNKTYPE, e["link"]
        else: ti.size = len(data)
        t.addfile(ti, io.BytesIO(data) if typ == "file" else None)
    t.close()
    d = put(buf.getvalue(), "application/vnd.oci.image.layer.v1.tar")
    layers.append(d)
    diffs.append(d["digest"])
cfg = {"architecture": "amd64", "os": spec.get("os", "linux"), "config": spec.get("config", {}),
       "rootfs": {"type": "layers", "diff_ids": diffs}}
c = put(json.dumps(cfg).encode(), "application/vnd.oci.image.config.v1+json")
m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c, "layers": layers}
md = put(json.dumps(m).encode(), m["mediaType"])
md["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
open(out + "/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [md]}))
open(out + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
"#;

/// Crafts a layout from `spec` (see [`CRAFT_PY`]) and returns its directory.
pub(crate) fn craft(env: &Env, name: &str, spec: serde_json::Value) -> PathBuf {
    let out = env.path(name);
    sh(Command::new("python3")
        .args(["-c", CRAFT_PY])
        .arg(&out)
        .arg(spec.to_string()));
    out
}

/// Layers whose names or links climb out of the root: `nobase COMMAND IMAGE` must refuse
/// each with exit 3, naming the cause. `v` is a host path the layers aim at.
pub(crate) fn refuses_hostile_layers(env: &Env, command: &str, v: &str) {
    let cases = [
        (
            "dotdot",
            serde_json::json!([[{"name": "../x", "data": "x"}]]),
            "'..'",
        ),
        (
            "dotdot-deep",
            serde_json::json!([[{"name": "app/../../../victim", "data": "x"}]]),
            "'..'",
        ),
        (
            "whiteout-dotdot",
            serde_json::json!([[{"name": "../.wh.x", "data": ""}]]),
            "'..'",
        ),
        (
            "whiteout-empty",
            serde_json::json!([[{"name": "app/.wh.", "data": ""}]]),
            "whiteout",
        ),
        (
            "hardlink-out",
            serde_json::json!([[{"name": "shadow", "type": "hardlink", "link": "../../etc/shadow"}]]),
            "hard link",
        ),
        (
            "hardlink-abs",
            serde_json::json!([[{"name": "victim", "type": "hardlink", "link": v}]]),
            "hard link",
        ),
    ];
    for (name, layers, why) in cases {
        let dir = craft(
            env,
            name,
            serde_json::json!({"layers": layers, "config": {"Entrypoint": ["/app/hello"]}}),
        );
        let r = env
            .nobase(&[command, &format!("oci:{}:latest", dir.display())])
            .code(3);
        assert!(
            r.stderr.contains(why) && r.stderr.contains("hostile"),
            "{name}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{name}: {}", r.stdout);
    }
}

#[test]
fn hostile_layers_are_refused_and_nothing_outside_is_touched() {
    if !have("python3") {
        return;
    }
    let env = Env::new();
    let victim = env.path("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let hello = hello_static();
    let hello = hello.to_str().unwrap();
    let v = victim.to_str().unwrap();
    refuses_hostile_layers(&env, "check", v);
    // Escapes through symlinks, absolute names and links to host paths are contained:
    // everything lands inside the image, where runc (through umoci) finds it too.
    let contained = craft(
        &env,
        "contained",
        serde_json::json!({
            "layers": [
                [{"name": "escape", "type": "symlink", "link": "../../../../../../"},
                 {"name": "abs", "type": "symlink", "link": "/"},
                 {"name": "hostvictim", "type": "symlink", "link": v}],
                [{"name": "escape/app/hello", "src": hello},
                 {"name": "/abs/bin/hello2", "src": hello},
                 {"name": "hostvictim", "data": "overwritten"},
                 {"name": format!("{v}"), "data": "overwritten too"},
                 {"name": "lib/../app/inner", "data": "dotdot inside"}],
            ],
            "config": {"Entrypoint": ["/app/hello"]},
        }),
    );
    let layout_ref = format!("{}:latest", contained.display());
    // A `..` that stays inside the root is cleaned the same way by every reader (the one
    // name gate, as Docker reads it): `lib/../app/inner` is `/app/inner` for tree and
    // for unpack alike.
    let tree = env
        .nobase(&["tree", "--json", &format!("oci:{layout_ref}")])
        .ok()
        .json();
    let merged: Vec<&str> = tree["merged"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(merged.contains(&"/app/inner"), "{merged:?}");
    assert!(!merged.iter().any(|p| p.contains("..")), "{merged:?}");
    let bundle = env.path("contained-bundle");
    env.nobase(&[
        "unpack",
        &format!("oci:{layout_ref}"),
        bundle.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/app/inner")).unwrap(),
        "dotdot inside"
    );
    let r = env
        .nobase(&["check", "--json", &format!("oci:{layout_ref}")])
        .ok();
    assert_eq!(r.json()["ok"], true, "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    if let Some(run) = runc_start(&env.path("contained-run"), &layout_ref) {
        assert_eq!(run.code, 0, "runc: {}", run.stderr);
        assert_eq!(run.stdout, "hello world\n");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
}

#[test]
fn a_corrupted_blob_is_a_digest_error() {
    if !have("umoci") {
        return;
    }
    let env = Env::new();
    let mut img = Image::new(&env.path("img"));
    ok("corrupt", HELLO, EP).build(fixtures(), &mut img);
    // The largest blob is the layer: flip one byte in its middle.
    let blobs = img.dir.join("oci/blobs/sha256");
    let layer = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&layer).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&layer, &bytes).unwrap();
    let r = env.nobase(&["check", &img.nobase_ref()]).code(3);
    assert!(r.stderr.contains("digest mismatch"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn archives_of_the_same_image_get_the_same_answer() {
    if !(have("umoci") && have("skopeo")) {
        return;
    }
    let env = Env::new();
    for (name, dynamic) in [("starts", false), ("does-not-start", true)] {
        let mut img = Image::new(&env.path(name));
        let bin = if dynamic { Bin::Dynamic } else { Bin::Static };
        let layer = [Put::Prog("/app/hello", bin, 0o755)];
        let s = img.stage();
        fill(fixtures(), &s, &layer);
        img.insert(&s, None);
        img.config(EP);
        let oci_archive = env.path(&format!("{name}-oci.tar"));
        let docker_archive = env.path(&format!("{name}-docker.tar"));
        let src = format!("oci:{}", img.umoci_ref());
        sh(Command::new("skopeo").args([
            "copy",
            "--quiet",
            &src,
            &format!("oci-archive:{}:v1", oci_archive.display()),
        ]));
        sh(Command::new("skopeo").args([
            "copy",
            "--quiet",
            &src,
            &format!("docker-archive:{}:hello:1", docker_archive.display()),
        ]));
        let answer = |reference: &str| {
            let r = env.nobase(&["check", "--json", reference]);
            assert_eq!(
                r.code,
                if dynamic { 1 } else { 0 },
                "{reference}: {}",
                r.stderr
            );
            let mut j = r.json();
            j["image"] = serde_json::Value::Null;
            j
        };
        let want = answer(&img.nobase_ref());
        for reference in [
            format!("oci-archive:{}", oci_archive.display()),
            format!("oci-archive:{}:v1", oci_archive.display()),
            format!("docker-archive:{}", docker_archive.display()),
            format!("docker-archive:{}:hello:1", docker_archive.display()),
        ] {
            assert_eq!(answer(&reference), want, "{reference}");
        }
        let r = env
            .nobase(&[
                "check",
                &format!("docker-archive:{}:other:2", docker_archive.display()),
            ])
            .code(3);
        assert!(r.stderr.contains("no image tagged other:2"), "{}", r.stderr);
    }
}

#[test]
fn docker_archive_layers_outside_the_archive_are_refused() {
    if !have("python3") {
        return;
    }
    let env = Env::new();
    let out = env.path("evil.tar");
    let script = r#"
import sys, tarfile, io, json
t = tarfile.open(sys.argv[1], "w")
def add(name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}).encode()
add("config.json", cfg)
add("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["evil:1"], "Layers": ["../../x"]}]).encode())
t.close()
"#;
    sh(Command::new("python3").args(["-c", script]).arg(&out));
    let r = env
        .nobase(&["check", &format!("docker-archive:{}", out.display())])
        .code(3);
    assert!(
        r.stderr.contains("../../x") && r.stderr.contains("'..'"),
        "{}",
        r.stderr
    );
}

#[test]
fn build_refuses_an_image_that_would_not_start_and_check_agrees() {
    let env = Env::new();
    let bin = hello_static();
    let bin = bin.to_str().unwrap();
    let r = env
        .nobase(&["build", bin, "-t", "h:1", "-u", "nobody"])
        .code(1);
    assert!(
        r.stderr.contains("self-check failed") && r.stderr.contains("nobody"),
        "{}",
        r.stderr
    );
    // Written anyway on request; `check` then gives the same answer, as JSON.
    env.nobase(&["build", bin, "-t", "h:1", "-u", "nobody", "--no-check"])
        .ok();
    let r = env.nobase(&["check", "--json", "h:1"]).code(1);
    let j = r.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["image"], "h:1");
    assert_eq!(j["command"], serde_json::json!(["/app/hello-static"]));
    assert_eq!(j["problems"][0]["code"], "unknown-user");
    assert_eq!(j["problems"][0]["path"], "/etc/passwd");
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["command", "image", "ok", "platform", "problems", "warnings"]
    );
    assert_eq!(j["platform"], "linux/amd64");
    // hello world makes no temporary files: no warning about /tmp.
    assert_eq!(j["warnings"], serde_json::json!([]));
    // A good build checks clean, in words too.
    env.nobase(&["build", bin, "-t", "h:2"]).ok();
    let r = env.nobase(&["check", "h:2"]).ok();
    assert!(r.stdout.starts_with("h:2: will start"), "{}", r.stdout);
    // An image that is not there could not be checked: exit 3, and on stdout the error
    // alone, never a report.
    let r = env.nobase(&["check", "--json", "nothere:1"]).code(3);
    assert_eq!(r.json()["error"]["exit_code"], 3, "{}", r.stdout);
    assert!(r.json()["problems"].is_null(), "{}", r.stdout);
}

const GO_TLS_TZ: &str = "package main\n\nimport (\n\t\"crypto/x509\"\n\t\"fmt\"\n\t\"time\"\n)\n\nfunc main() {\n\tp, err := x509.SystemCertPool()\n\tfmt.Println(p != nil, err)\n\tl, err := time.LoadLocation(\"Europe/Paris\")\n\tfmt.Println(l, err)\n}\n";

/// The warnings of one checked image, by code.
fn warning_codes(env: &Env, image: &str) -> Vec<String> {
    let r = env.nobase(&["check", "--json", image]).ok();
    r.json()["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn warnings_name_what_the_program_will_miss() {
    let env = Env::new();
    let certs = "/etc/ssl/certs/ca-certificates.crt";
    if have("go") && Path::new(certs).exists() && Path::new("/usr/share/zoneinfo").is_dir() {
        let src = env.path("gotls");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("main.go"), GO_TLS_TZ).unwrap();
        std::fs::write(src.join("go.mod"), "module example.com/gotls\n\ngo 1.19\n").unwrap();
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixtures/gocache");
        sh(Command::new("go")
            .args(["build", "-o", "gotls", "."])
            .current_dir(&src)
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", &cache)
            .env("HOME", &src));
        let bin = src.join("gotls");
        let bin = bin.to_str().unwrap();
        env.nobase(&["build", bin, "-t", "gotls:1"]).ok();
        let w = warning_codes(&env, "gotls:1");
        assert!(w.contains(&"no-ca-certificates".into()), "{w:?}");
        assert!(w.contains(&"no-zoneinfo".into()), "{w:?}");
        let add_certs = format!("{certs}:{certs}");
        let tmp = env.path("empty-tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let add_tmp = format!("{}:/tmp", tmp.display());
        env.nobase(&[
            "build",
            bin,
            "-t",
            "gotls:2",
            "--add",
            &add_certs,
            "--add",
            "/usr/share/zoneinfo:/usr/share/zoneinfo",
            "--add",
            &add_tmp,
        ])
        .ok();
        assert_eq!(warning_codes(&env, "gotls:2"), Vec::<String>::new());
    }
    // The hello-world Go program uses none of them, not even /tmp.
    if let Some(go) = hello_go() {
        env.nobase(&["build", go.to_str().unwrap(), "-t", "hello-go:1"])
            .ok();
        assert_eq!(warning_codes(&env, "hello-go:1"), Vec::<String>::new());
    }
    // A program that only tells the local time links time.LoadLocationFromTZData (every
    // Go program that reads time.Local does) but never loads a zone by name: no
    // no-zoneinfo warning (it had one, as nearly every Go service did).
    if let Some(go) = go_program(
        "go-local-time",
        "package main\n\nimport (\n\t\"fmt\"\n\t\"time\"\n)\n\nfunc main() { fmt.Println(time.Now().Format(time.RFC3339)) }\n",
        &[],
    ) {
        let bytes = std::fs::read(&go).unwrap();
        assert!(
            bytes
                .windows(27)
                .any(|w| w == b"time.LoadLocationFromTZData"),
            "the fixture links LoadLocationFromTZData"
        );
        env.nobase(&["build", go.to_str().unwrap(), "-t", "go-local:1"])
            .ok();
        assert_eq!(warning_codes(&env, "go-local:1"), Vec::<String>::new());
    }
    // A C program that makes a temporary file needs a writable /tmp, dynamic (it imports
    // mkstemp) or static and stripped (glibc's P_tmpdir is in it); --with tmp adds one.
    let src = "#include <stdio.h>\n#include <stdlib.h>\nint main(void){char t[]=\"/tmp/aXXXXXX\";printf(\"%d\\n\",mkstemp(t));return 0;}\n";
    for (name, flags) in [("mk-dyn", &[][..]), ("mk-static", &["-static", "-s"][..])] {
        let out = env.path(name);
        cc("gcc", src, &out, flags);
        let out = out.to_str().unwrap();
        let r = env.nobase(&["build", out, "-t", &format!("{name}:1")]).ok();
        assert!(
            r.stderr.contains("but the image has no /tmp") && r.stderr.contains("fix: --with tmp"),
            "{name}: {}",
            r.stderr
        );
        assert_eq!(
            warning_codes(&env, &format!("{name}:1")),
            ["no-writable-tmp"]
        );
        env.nobase(&["build", out, "-t", &format!("{name}:2"), "--with", "tmp"])
            .ok();
        assert_eq!(
            warning_codes(&env, &format!("{name}:2")),
            Vec::<String>::new()
        );
    }
    let r = env.nobase(&["check", "mk-dyn:1"]).ok();
    assert!(r.stdout.contains("calls mkstemp"), "{}", r.stdout);
    // Every NSS function a program calls is named: nginx breaks on getpwnam, and the
    // warning named only the getaddrinfo it found first.
    let nss = env.path("nss");
    cc(
        "gcc",
        "#include <netdb.h>\n#include <pwd.h>\nint main(void){struct addrinfo *r; getaddrinfo(\"x\", 0, 0, &r); return getpwnam(\"nobody\") != 0;}\n",
        &nss,
        &[],
    );
    env.nobase(&["build", nss.to_str().unwrap(), "-t", "nss:1"])
        .ok();
    let r = env.nobase(&["check", "nss:1"]).ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("no-nsswitch"))
        .unwrap_or_default();
    let called = line
        .split("/app/nss calls ")
        .nth(1)
        .and_then(|rest| rest.split(", which").next())
        .unwrap_or_default();
    let mut called: Vec<&str> = called.split(", ").collect();
    called.sort();
    assert_eq!(called, ["getaddrinfo", "getpwnam"], "{}", r.stdout);
    // curl links libcurl: CA certificates; it looks users up through NSS.
    if Path::new("/usr/bin/curl").exists() {
        env.nobase(&["build", "/usr/bin/curl", "-t", "curl:1"]).ok();
        let w = warning_codes(&env, "curl:1");
        assert!(w.contains(&"no-ca-certificates".into()), "{w:?}");
        assert!(w.contains(&"no-nsswitch".into()), "{w:?}");
        // Each names the --with that fixes it.
        let j = env.nobase(&["check", "--json", "curl:1"]).ok().json();
        let with = |code: &str| {
            j["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|w| w["code"] == code)
                .map(|w| w["with"].clone())
        };
        assert_eq!(with("no-nsswitch"), Some("passwd".into()), "{j}");
        assert_eq!(with("no-ca-certificates"), Some("certs".into()), "{j}");
    } else {
        eprintln!("skipping the curl case: /usr/bin/curl is not installed");
    }
}

/// An image's names are anyone's bytes: an entrypoint and a file name with escape
/// sequences are shown escaped by `check` (stdout and stderr), never sent to the
/// terminal; `--json` keeps them exact.
#[test]
fn control_characters_in_an_image_are_shown_escaped() {
    let env = Env::new();
    let dir = craft(
        &env,
        "ctl",
        serde_json::json!({
            "config": {"Entrypoint": ["/app/\u{1b}[2Jrun\u{7}\nfake: will start"]},
            "layers": [[{"name": "app/\u{1b}]0;title\u{7}", "data": "x"}]],
        }),
    );
    let reference = format!("oci:{}:latest", dir.display());
    let r = env.nobase(&["check", &reference]).code(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        !all.contains(['\u{1b}', '\u{7}']),
        "raw control characters:\n{all:?}"
    );
    assert!(all.contains("\\x1b[2Jrun\\x07\\nfake"), "{all}");
    // A newline in a name cannot forge a line of output either.
    assert!(!all.lines().any(|l| l.starts_with("fake")), "{all}");
    let j = env.nobase(&["check", "--json", &reference]).code(1).json();
    assert_eq!(j["command"][0], "/app/\u{1b}[2Jrun\u{7}\nfake: will start");
}

#[test]
fn a_go_program_that_looks_users_up_needs_etc_passwd() {
    // Go's os/user reads /etc/passwd (directly, or through glibc with cgo): a scratch
    // image fails `user.Current()` while `check` said nothing.
    static P: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let Some(bin) = P
        .get_or_init(|| {
            go_program(
                "go-user",
                "package main\n\nimport (\n\t\"fmt\"\n\t\"os/user\"\n)\n\nfunc main() {\n\tu, err := user.Current()\n\tif err != nil {\n\t\tfmt.Println(err)\n\t\treturn\n\t}\n\tfmt.Println(u.Username)\n}\n",
                &[],
            )
        })
        .clone()
    else {
        return;
    };
    let env = Env::new();
    let bin = bin.to_str().unwrap();
    env.nobase(&["build", bin, "-t", "u:1"]).ok();
    let r = env.nobase(&["check", "--json", "u:1"]).ok().json();
    let w = &r["warnings"];
    assert_eq!(w.as_array().unwrap().len(), 1, "{w}");
    assert_eq!(w[0]["code"], "no-passwd", "{w}");
    assert_eq!(w[0]["with"], "passwd", "{w}");
    env.nobase(&["build", bin, "-t", "u:2", "--with", "passwd"])
        .ok();
    assert_eq!(warning_codes(&env, "u:2"), Vec::<String>::new());
    if have("runc") && is_root() {
        assert_ne!(env.nobase(&["run", "u:1"]).ok().stdout, "root\n");
        assert_eq!(env.nobase(&["run", "u:2"]).ok().stdout, "root\n");
    }
}

#[test]
fn files_added_with_a_program_that_link_libssl_want_ca_certificates() {
    // python3 links no libssl; its `_ssl` module, added with the stdlib, does: an image
    // without CA certificates failed every HTTPS request, and nothing said so.
    let stdlib = "/usr/lib/python3.11";
    if !Path::new(stdlib).join("lib-dynload").is_dir() || !Path::new("/usr/bin/python3.11").exists()
    {
        return;
    }
    let env = Env::new();
    let add = format!("{stdlib}:{stdlib}");
    let j = env
        .nobase(&[
            "build",
            "--json",
            "/usr/bin/python3.11",
            "--add",
            &add,
            "-t",
            "py:1",
        ])
        .ok()
        .json();
    let w = warning(&j, "code", "no-ca-certificates");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .starts_with("the files added with the program link lib"),
        "{w}"
    );
    assert_eq!(w["with"], "certs");
}

/// A module or helper the entrypoint does not link, with a library the image has
/// nowhere, fails when the program loads or starts it: `check` of an image built
/// elsewhere names it (`unloadable-object`), and says nothing once the library is in the
/// image, even off the loader's path (a loaded object can satisfy the name).
#[test]
fn objects_beside_the_program_that_lack_a_library_are_named() {
    let fx = fixtures();
    let env = Env::new();
    let image = |name: &str, extra: serde_json::Value| {
        let mut files = vec![
            serde_json::json!({"name": "app", "type": "dir", "mode": 0o755}),
            serde_json::json!({"name": "app/hello", "src": hello_static(), "mode": 0o755}),
            serde_json::json!({"name": "app/plugins", "type": "dir", "mode": 0o755}),
            serde_json::json!({"name": "app/plugins/libdeep1.so", "src": fx.dir.join("libdeep1.so"), "mode": 0o644}),
            serde_json::json!({"name": "app/tool", "src": fx.dir.join("deepapp"), "mode": 0o755}),
        ];
        files.extend(extra.as_array().unwrap().iter().cloned());
        let dir = craft(
            &env,
            name,
            serde_json::json!({"config": {"Entrypoint": ["/app/hello"]}, "layers": [files]}),
        );
        format!("oci:{}:latest", dir.display())
    };
    // The command itself with its loader missing is the check's problem, not also a
    // helper that may fail; nor is its libc, beside it, "a module or plugin" then.
    let dir = craft(
        &env,
        "noloader",
        serde_json::json!({"config": {"Entrypoint": ["/app/tool"]}, "layers": [[
            {"name": "app", "type": "dir"},
            {"name": "app/tool", "src": fx.dir.join("deepapp")},
            {"name": "app/libdeep1.so", "src": fx.dir.join("libdeep1.so")},
        ]]}),
    );
    let j = env
        .nobase(&["check", "--json", &format!("oci:{}:latest", dir.display())])
        .code(1)
        .json();
    assert_eq!(j["problems"][0]["code"], "missing-interpreter", "{j:#}");
    assert!(
        !j["warnings"].to_string().contains("unloadable-object"),
        "{j:#}"
    );
    let broken = image("broken", serde_json::json!([]));
    let j = env.nobase(&["check", "--json", &broken]).ok().json();
    assert_eq!(j["ok"], true, "{j:#}");
    let messages: Vec<&str> = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "unloadable-object")
        .map(|w| w["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{j:#}");
    assert!(
        messages[0].starts_with("/app/plugins/libdeep1.so (a module or plugin the program may load) needs libdeep2.so, which the image has nowhere: if the program loads it, that fails; add it to the image"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("/app/tool (a helper the program may start) needs its loader /lib64/ld-linux-x86-64.so.2 and libc.so.6, which the image has nowhere: if the program starts it, that fails"),
        "{messages:?}"
    );
    // The human report says the same, after the verdict.
    let r = env.nobase(&["check", &broken]).ok();
    assert!(
        r.stdout
            .contains("warning unloadable-object: /app/plugins/libdeep1.so"),
        "{}",
        r.stdout
    );
    // The tool's libdeep1.so is in the image (in /app/plugins, where no search finds it):
    // not said. With the loader, libc and libdeep2.so there too, nothing is said.
    let whole = image(
        "whole",
        serde_json::json!([
            {"name": "lib64", "type": "dir", "mode": 0o755},
            {"name": "lib64/ld-linux-x86-64.so.2", "src": fx.ld_linux, "mode": 0o755},
            {"name": "lib", "type": "dir", "mode": 0o755},
            {"name": "lib/libc.so.6", "src": fx.libc, "mode": 0o755},
            {"name": "opt", "type": "dir", "mode": 0o755},
            {"name": "opt/libdeep2.so", "src": fx.dir.join("libdeep2.so"), "mode": 0o644},
        ]),
    );
    let j = env.nobase(&["check", "--json", &whole]).ok().json();
    assert!(
        !j["warnings"].to_string().contains("unloadable-object"),
        "{j:#}"
    );
    // A build beside a static program, which bundles nothing, says it too.
    let add = format!(
        "{}:/app/plugins/libdeep1.so",
        fx.dir.join("libdeep1.so").display()
    );
    let j = build_json(
        &env,
        &[
            hello_static().to_str().unwrap(),
            "--add",
            &add,
            "-t",
            "plug:1",
        ],
    );
    let w = warning(&j, "code", "unloadable-object");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .starts_with("/app/plugins/libdeep1.so (a module"),
        "{w}"
    );
}

/// The places a missing library was looked for are each named once: `RUNPATH /opt/priv`,
/// not `RUNPATH /opt/priv /opt/priv`.
#[test]
fn a_missing_library_names_each_searched_place_once() {
    let fx = fixtures();
    let env = Env::new();
    let exe = env.path("rp-bin");
    cc(
        "gcc",
        DEEP_MAIN_C.replace("deep1", "deep2").as_str(),
        &exe,
        &[
            &format!("-L{}", fx.dir.display()),
            "-ldeep2",
            "-Wl,-rpath,/opt/priv",
            "-Wl,--enable-new-dtags",
        ],
    );
    let dir = craft(
        &env,
        "rp-image",
        serde_json::json!({"config": {"Entrypoint": ["/app/rp"]}, "layers": [[
            {"name": "app", "type": "dir"},
            {"name": "app/rp", "src": exe},
            {"name": "lib64", "type": "dir"},
            {"name": "lib64/ld-linux-x86-64.so.2", "src": fx.ld_linux},
            {"name": "lib", "type": "dir"},
            {"name": "lib/x86_64-linux-gnu", "type": "dir"},
            {"name": "lib/x86_64-linux-gnu/libc.so.6", "src": fx.libc},
        ]]}),
    );
    let r = env
        .nobase(&["check", &format!("oci:{}:latest", dir.display())])
        .code(1);
    assert!(
        r.stdout
            .contains("(RUNPATH /opt/priv; default directories /lib/x86_64-linux-gnu,"),
        "{}",
        r.stdout
    );
}

/// A program linked to bind every symbol at start (`-z now`) beside a library of the
/// right name but another build, without the function it calls: the loader stops before
/// `main` (`symbol lookup error`, exit 127), so `check` says it will not start and
/// `run` refuses with 127. Bound lazily, the same program starts (the call is never
/// made), and `check` agrees.
#[test]
fn a_symbol_no_library_defines_stops_a_program_bound_at_start() {
    let fx = fixtures();
    let env = Env::new();
    let call = "#include <stdio.h>\nint deep2(void);\nint main(int c, char **v) { puts(\"started\"); return c > 5 ? deep2() : 0; }\n";
    let link = |name: &str, now: bool| {
        let out = env.path(name);
        let mut flags = vec![format!("-L{}", fx.dir.display()), "-ldeep2".to_string()];
        if now {
            flags.push("-Wl,-z,now".into());
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        cc("gcc", call, &out, &flags);
        out
    };
    let (now, lazy) = (link("app-now", true), link("app-lazy", false));
    // The same soname, another function.
    let other = env.path("libdeep2-other.so");
    cc(
        "gcc",
        "int deep3(void) { return 3; }\n",
        &other,
        &["-shared", "-fPIC", "-Wl,-soname,libdeep2.so"],
    );
    let image = |name: &str, app: &Path| {
        let dir = craft(
            &env,
            name,
            serde_json::json!({"config": {"Entrypoint": ["/app/run"]}, "layers": [[
                {"name": "app", "type": "dir"},
                {"name": "app/run", "src": app},
                {"name": "lib64", "type": "dir"},
                {"name": "lib64/ld-linux-x86-64.so.2", "src": fx.ld_linux},
                {"name": "lib", "type": "dir"},
                {"name": "lib/x86_64-linux-gnu", "type": "dir"},
                {"name": "lib/x86_64-linux-gnu/libc.so.6", "src": fx.libc},
                {"name": "lib/x86_64-linux-gnu/libdeep2.so", "src": other},
            ]]}),
        );
        format!("{}:latest", dir.display())
    };
    let bound = image("bound-now", &now);
    let j = env
        .nobase(&["check", "--json", &format!("oci:{bound}")])
        .code(1)
        .json();
    assert_eq!(j["problems"][0]["code"], "missing-symbol", "{j:#}");
    assert!(
        j["problems"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("/app/run requires the symbol deep2, which none of the objects loaded with it defines, and it is linked to bind every symbol at start (BIND_NOW)"),
        "{j:#}"
    );
    let lazily = image("bound-lazily", &lazy);
    env.nobase(&["check", &format!("oci:{lazily}")]).ok();
    // runc agrees on both.
    if let Some(r) = runc_run(&env, &bound, None) {
        assert_eq!(r.code, 127, "{}", r.stderr);
        assert!(r.stderr.contains("undefined symbol: deep2"), "{}", r.stderr);
    }
    if let Some(r) = runc_run(&env, &lazily, None) {
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "started\n"),
            "{}",
            r.stderr
        );
    }
    if have("runc") && is_root() {
        env.nobase(&["run", &format!("oci:{bound}")]).code(127);
    }

    // Data is bound at start however functions are: a program that copies a variable
    // from the library (a copy relocation) or takes its address stops there too.
    let uses_data = "extern int deep2_data;\nint main(void) { return deep2_data; }\n";
    let with_data = env.path("libdeep2-data.so");
    cc(
        "gcc",
        "int deep2_data = 7;\nint deep2(void) { return 2; }\n",
        &with_data,
        &["-shared", "-fPIC", "-Wl,-soname,libdeep2.so"],
    );
    let data_dir = format!("-L{}", env.path("data-lib").display());
    std::fs::create_dir_all(env.path("data-lib")).unwrap();
    std::fs::copy(&with_data, env.path("data-lib/libdeep2.so")).unwrap();
    for (name, flags) in [("copy", &["-no-pie"][..]), ("got", &["-fPIC"][..])] {
        let app = env.path(&format!("app-{name}"));
        let mut all = vec![data_dir.as_str(), "-ldeep2"];
        all.extend_from_slice(flags);
        cc("gcc", uses_data, &app, &all);
        let reference = image(&format!("data-{name}"), &app);
        let j = env
            .nobase(&["check", "--json", &format!("oci:{reference}")])
            .code(1)
            .json();
        assert!(
            j["problems"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("/app/run requires the symbol deep2_data, which none of the objects loaded with it defines, and it refers to it as data"),
            "{name}: {j:#}"
        );
        if let Some(r) = runc_run(&env, &reference, None) {
            assert_eq!(r.code, 127, "{name}: {}", r.stderr);
        }
    }

    // musl binds every symbol at start, `-z now` or not.
    let musl_dir = env.path("musl");
    std::fs::create_dir_all(&musl_dir).unwrap();
    let lib = musl_dir.join("libdeep2.so");
    cc(
        "musl-gcc",
        DEEP2_C,
        &lib,
        &["-shared", "-fPIC", "-Wl,-soname,libdeep2.so"],
    );
    let app = musl_dir.join("app");
    let dir_flag = format!("-L{}", musl_dir.display());
    cc("musl-gcc", call, &app, &[&dir_flag, "-ldeep2"]);
    let other = musl_dir.join("libdeep2-other.so");
    cc(
        "musl-gcc",
        "int deep3(void) { return 3; }\n",
        &other,
        &["-shared", "-fPIC", "-Wl,-soname,libdeep2.so"],
    );
    let dir = craft(
        &env,
        "musl-image",
        serde_json::json!({"config": {"Entrypoint": ["/app/run"]}, "layers": [[
            {"name": "app", "type": "dir"},
            {"name": "app/run", "src": app},
            {"name": "lib", "type": "dir"},
            {"name": "lib/ld-musl-x86_64.so.1", "src": fx.musl_ld},
            {"name": "lib/libdeep2.so", "src": other},
        ]]}),
    );
    let reference = format!("{}:latest", dir.display());
    let j = env
        .nobase(&["check", "--json", &format!("oci:{reference}")])
        .code(1)
        .json();
    assert_eq!(j["problems"][0]["code"], "missing-symbol", "{j:#}");
    assert!(
        j["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("musl's loader binds every symbol at start, so the loader stops with `Error relocating /app/run: deep2: symbol not found`"),
        "{j:#}"
    );
    if let Some(r) = runc_run(&env, &reference, None) {
        assert_eq!(r.code, 127, "{}", r.stderr);
        assert!(r.stderr.contains("symbol not found"), "{}", r.stderr);
    }
}

#[test]
fn a_locale_or_python_library_the_image_lacks_is_said_and_runc_agrees() {
    // `LANG=C.UTF-8` in an image without that compiled locale: glibc's setlocale fails
    // and the program runs in the C locale (Perl warns at every start).
    let env = Env::new();
    let prog = env.path("loc");
    cc(
        "gcc",
        "#include <locale.h>\n#include <stdio.h>\nint main(void){const char *l = setlocale(LC_ALL, \"\");\nputs(l ? l : \"fallback\");return 0;}\n",
        &prog,
        &[],
    );
    let prog = prog.to_str().unwrap();
    env.nobase(&["build", prog, "-t", "loc:1", "-e", "LANG=C.UTF-8"])
        .ok();
    let j = env.nobase(&["check", "--json", "loc:1"]).ok().json();
    let w = warning(&j, "code", "no-locale");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .starts_with("the image sets LANG=C.UTF-8 and /app/loc calls setlocale, but the image has no locale C.UTF-8"),
        "{w}"
    );
    if let Some(r) = runc_run(&env, &format!("{}:loc:1", env.store().display()), None) {
        assert_eq!(r.stdout, "fallback\n", "{}", r.stderr);
    }
    if Path::new("/usr/lib/locale/C.utf8/LC_CTYPE").exists() {
        let add = "/usr/lib/locale/C.utf8:/usr/lib/locale/C.utf8";
        env.nobase(&[
            "build",
            prog,
            "-t",
            "loc:2",
            "-e",
            "LANG=C.UTF-8",
            "--add",
            add,
        ])
        .ok();
        assert!(!warning_codes(&env, "loc:2").contains(&"no-locale".to_string()));
        if let Some(r) = runc_run(&env, &format!("{}:loc:2", env.store().display()), None) {
            assert_eq!(r.stdout, "C.UTF-8\n", "{}", r.stderr);
        }
    }
    // C needs no file.
    env.nobase(&["build", prog, "-t", "loc:3", "-e", "LC_ALL=C"])
        .ok();
    assert!(!warning_codes(&env, "loc:3").contains(&"no-locale".to_string()));

    // Python without its standard library starts and stops at once: it will not start,
    // so the build's self-check refuses it, and `check` says so with exit 1 (it said
    // "will start" beside a warning that it stops at start).
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        return;
    }
    let r = env
        .nobase(&["build", "/usr/bin/python3", "-t", "py:1"])
        .code(1);
    assert!(
        r.stderr.contains("self-check failed") && r.stderr.contains("No module named 'encodings'"),
        "{}",
        r.stderr
    );
    env.nobase(&["build", "/usr/bin/python3", "-t", "py:1", "--no-check"])
        .ok();
    let j = env.nobase(&["check", "--json", "py:1"]).code(1).json();
    assert_eq!(j["ok"], false, "{j}");
    let w = j["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "no-python-library")
        .unwrap_or_else(|| panic!("no no-python-library problem: {j:#}"));
    assert_eq!(w["path"], "/app/python3", "{w}");
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.starts_with("/app/python3 is Python 3.") && msg.contains("No module named 'encodings'"),
        "{w}"
    );
    if let Some(r) = runc_run(
        &env,
        &format!("{}:py:1", env.store().display()),
        Some(&["-c", "print(1)"]),
    ) {
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains("encodings"), "{}", r.stderr);
    }
    // Where it looks, the library is found (the check needs only its encodings/).
    let version = msg["/app/python3 is Python ".len()..]
        .split(',')
        .next()
        .unwrap();
    let enc = env.path("encodings");
    std::fs::create_dir_all(&enc).unwrap();
    std::fs::write(enc.join("__init__.py"), "").unwrap();
    let add = format!("{}:/usr/lib/python{version}/encodings", enc.display());
    env.nobase(&["build", "/usr/bin/python3", "-t", "py:2", "--add", &add])
        .ok();
    env.nobase(&["check", "py:2"]).ok();
    // It looks in its own directory and those above it but `/`, then under the prefix
    // it was built for (Debian's: /usr), never under /usr/local: the library there was
    // "will start" and Python stopped at start (its getpath.py).
    let at = |dir: &str| format!("{}:{dir}/lib/python{version}/encodings", enc.display());
    env.nobase(&[
        "build",
        "/usr/bin/python3",
        "-t",
        "py:4",
        "--add",
        &at("/app"),
    ])
    .ok();
    env.nobase(&[
        "build",
        "/usr/bin/python3",
        "-t",
        "py:5",
        "--add",
        &at("/usr/local"),
    ])
    .code(1);
    env.nobase(&[
        "build",
        "/usr/bin/python3",
        "-t",
        "py:5",
        "--add",
        &at("/usr/local"),
        "--no-check",
    ])
    .ok();
    let j = env.nobase(&["check", "--json", "py:5"]).code(1).json();
    assert!(
        j["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("where it looks (under /app, /usr)"),
        "{j:#}"
    );
    // Nor is it judged with a PYTHONPATH, which may hold the library.
    env.nobase(&[
        "build",
        "/usr/bin/python3",
        "-t",
        "py:3",
        "-e",
        "PYTHONPATH=/opt/lib",
    ])
    .ok();
}

#[test]
fn perl_without_its_modules_is_warned_and_the_run_agrees() {
    // Perl starts without its modules, and the first `use strict` stops the script:
    // `check` said nothing.
    let perl = Path::new("/usr/bin/perl");
    if !perl.exists() || !have("runc") || !is_root() {
        return;
    }
    let env = Env::new();
    env.nobase(&["build", "/usr/bin/perl", "-t", "perl:1"]).ok();
    let j = env.nobase(&["check", "--json", "perl:1"]).ok().json();
    let w = warning(&j, "code", "no-perl-library");
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.starts_with("/app/perl is Perl, whose modules (strict.pm and the rest) are in none of the directories its @INC names (")
            && msg.contains("--add "),
        "{w}"
    );
    let r = env.nobase(&["run", "perl:1", "-e", "use strict; print qq(ok)"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Can't locate strict.pm"), "{}", r.stderr);
    // The fix it names works, and the warning goes.
    let add = msg
        .split("--add ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    env.nobase(&["build", "/usr/bin/perl", "-t", "perl:2", "--add", add])
        .ok();
    assert!(!warning_codes(&env, "perl:2").contains(&"no-perl-library".to_string()));
    let r = env
        .nobase(&["run", "perl:2", "-e", "use strict; print qq(ok)"])
        .ok();
    assert_eq!(r.stdout, "ok");
}

#[test]
fn what_the_runtime_refuses_before_any_file_is_a_problem() {
    // `check` said "will start" for each; runc (or a Linux runtime) refuses them all.
    let env = Env::new();
    let hello = hello_static();
    let layer = serde_json::json!([[{"name": "app/hello", "src": hello.to_str().unwrap()}]]);
    let cases = [
        (
            "os-windows",
            serde_json::json!({"os": "windows"}),
            "wrong-architecture",
            "its OS is windows",
        ),
        (
            "uid-minus-one",
            serde_json::json!({"config": {"User": "4294967295:4294967295"}}),
            "unknown-user",
            "(uid_t)-1",
        ),
        (
            "env-no-name",
            serde_json::json!({"config": {"Env": ["=x"]}}),
            "bad-env",
            "\"=x\"",
        ),
        (
            "env-no-equals",
            serde_json::json!({"config": {"Env": ["NOEQ"]}}),
            "bad-env",
            "\"NOEQ\"",
        ),
        (
            "proc-a-file",
            serde_json::json!({"extra": {"name": "proc", "data": "x"}}),
            "bad-mountpoint",
            "/proc is a file",
        ),
        (
            "sys-a-file",
            serde_json::json!({"extra": {"name": "sys", "data": "x"}}),
            "bad-mountpoint",
            "/sys is a file",
        ),
    ];
    for (name, extra, code, why) in cases {
        let mut spec =
            serde_json::json!({"layers": layer, "config": {"Entrypoint": ["/app/hello"]}});
        if let Some(entry) = extra.get("extra") {
            spec["layers"][0]
                .as_array_mut()
                .unwrap()
                .push(entry.clone());
        }
        if let Some(os) = extra.get("os") {
            spec["os"] = os.clone();
        }
        if let Some(c) = extra.get("config") {
            for (k, v) in c.as_object().unwrap() {
                spec["config"][k] = v.clone();
            }
        }
        let dir = craft(&env, name, spec);
        let reference = format!("oci:{}:latest", dir.display());
        let j = env.nobase(&["check", "--json", &reference]).code(1).json();
        let p = &j["problems"][0];
        assert_eq!(p["code"], code, "{name}: {j}");
        assert!(p["message"].as_str().unwrap().contains(why), "{name}: {j}");
        // runc agrees where it can be asked (umoci unpacks only linux images).
        if name != "os-windows" {
            if let Some(r) = runc_run(&env, &format!("{}:latest", dir.display()), None) {
                assert_ne!(r.code, 0, "{name}: runc started it: {}", r.stdout);
            }
        }
    }
}

#[test]
fn a_layer_of_zeros_over_a_gib_is_read_with_max_size_and_build_says_so() {
    // 1.1 GB of zeros in one layer: built, then refused by check, tree, run and unpack as
    // a decompression bomb, with no way past it (run's --max-size did not lift the
    // per-layer cap).
    let env = Env::new();
    let zeros = env.path("zeros.img");
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(1100 << 20)
        .unwrap();
    let add = format!("{}:/data/zeros.img", zeros.display());
    let bin = hello_static();
    let r = env
        .nobase(&[
            "build",
            bin.to_str().unwrap(),
            "--add",
            &add,
            "--compression",
            "zstd",
            "-t",
            "zeros:1",
        ])
        .ok();
    assert!(
        r.stderr.contains("read it only with --max-size 3G"),
        "{}",
        r.stderr
    );
    let r = env.nobase(&["check", "zeros:1"]).code(3);
    assert!(
        r.stderr
            .contains("--max-size SIZE reads an image you trust"),
        "{}",
        r.stderr
    );
    let r = env.nobase(&["check", "--max-size", "3G", "zeros:1"]).ok();
    assert!(r.stdout.contains("will start"), "{}", r.stdout);
    let t = env
        .nobase(&["tree", "--json", "--max-size", "3G", "zeros:1"])
        .ok()
        .json();
    assert!(t["total_bytes"].as_u64().unwrap() > 1100 << 20, "{t}");
}
