//! Test helpers: the built binary, per-test directories and stores, generated inputs,
//! and the real tools (umoci, runc, skopeo) that judge the images.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The nobase binary under test.
pub fn nobase_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nobase"))
}

/// A temporary directory with its own store; everything a test writes goes here.
pub struct Env {
    pub dir: tempfile::TempDir,
}

/// The result of running a command.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts the exit code and that nothing panicked.
    #[track_caller]
    pub fn code(self, want: i32) -> Run {
        assert_eq!(
            self.code, want,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("nobase-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// `nobase ARGS` with this env's store and no inherited SOURCE_DATE_EPOCH. The
    /// registry mount hints it records (`$XDG_CACHE_HOME/nobase`) and Docker's
    /// config.json it reads are this env's too, not the home directory's that every test
    /// (and every earlier run) shared: a hint left by another test's registry whose port
    /// this test's registry got later sent a push asking to mount blobs the registry
    /// never had, and the user's credentials reached the test registries.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(nobase_bin());
        c.args(args)
            .env("NOBASE_STORE", self.store())
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("SOURCE_DATE_EPOCH")
            .current_dir(self.dir.path());
        c
    }

    pub fn nobase(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("nobase runs"))
    }
}

/// `nobase build --json ARGS…`, asserted successful, its JSON summary.
pub fn build_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["build", "--json"];
    a.extend_from_slice(args);
    env.nobase(&a).ok().json()
}

/// Runs any command and captures it.
pub fn run(cmd: &mut Command) -> Run {
    Run::from(
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}")),
    )
}

/// True when `tool` is on PATH. In CI (`NOBASE_TEST_REQUIRE_TOOLS=1`) a missing tool
/// fails the test instead of skipping it, so a broken install cannot pass silently.
pub fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var_os("NOBASE_TEST_REQUIRE_TOOLS").is_some() {
            panic!("{tool} is required (NOBASE_TEST_REQUIRE_TOOLS is set) but not installed");
        }
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// True when running as root (runc without rootless needs it). In CI
/// (`NOBASE_TEST_REQUIRE_TOOLS=1`) not being root fails the test instead of skipping it.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc_geteuid() } == 0;
    if !root {
        if std::env::var_os("NOBASE_TEST_REQUIRE_TOOLS").is_some() {
            panic!("runc tests need root and NOBASE_TEST_REQUIRE_TOOLS is set (CI runs as root)");
        }
        eprintln!("skipping: runc tests need root");
    }
    root
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A TCP socket bound to a loopback port and not listening, which holds the port for as
/// long as it lives: the kernel gives it to no `bind(127.0.0.1:0)` elsewhere meanwhile.
/// A port found free and let go is not held: a server another test starts can be given
/// it before this test uses it.
pub struct BoundPort {
    _socket: std::os::fd::OwnedFd,
    pub port: u16,
}

/// A loopback port nothing listens on while the value lives: connections are refused.
/// Bound without SO_REUSEADDR, so no server can bind it either (Rust's and Go's set that
/// option, and it lets two sockets share a port only when both set it).
pub fn closed_port() -> BoundPort {
    bind_loopback(false)
}

/// A loopback port kept for a server about to start on it: bound with SO_REUSEADDR and
/// not listening, so the server's own bind (with SO_REUSEADDR, as Go's and Rust's
/// servers bind) succeeds while no `bind(…:0)` elsewhere is given the port. Drop it once
/// the server answers.
pub fn reserved_port() -> BoundPort {
    bind_loopback(true)
}

fn bind_loopback(reuse: bool) -> BoundPort {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let fail = |what: &str| panic!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: socket(2) has no memory preconditions; the descriptor is owned from here.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        fail("socket");
    }
    // SAFETY: a descriptor just opened and owned nowhere else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    if reuse {
        let one: libc::c_int = 1;
        // SAFETY: an int option of the right size on a live socket.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            fail("setsockopt SO_REUSEADDR");
        }
    }
    // SAFETY: sockaddr_in is plain data; all zeros is port 0, any address.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a sockaddr_in of the length given, on a live socket.
    if unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            len,
        )
    } != 0
    {
        fail("bind 127.0.0.1:0");
    }
    // SAFETY: getsockname fills at most `len` bytes of `addr`.
    if unsafe {
        libc::getsockname(
            socket.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    } != 0
    {
        fail("getsockname");
    }
    BoundPort {
        _socket: socket,
        port: u16::from_be(addr.sin_port),
    }
}

/// Shared directory for generated inputs (compiled once per test run).
fn fixtures_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
    std::fs::create_dir_all(&d).unwrap();
    d
}

const HELLO_C: &str = "#include <stdio.h>\nint main(int argc, char **argv) {\n  (void)argv;\n  puts(\"hello world\");\n  return argc > 1 ? 7 : 0;\n}\n";

fn compile(name: &str, compiler: &str, flags: &[&str]) -> PathBuf {
    let dir = fixtures_dir();
    let out = dir.join(name);
    // Unique names, then a rename: parallel test processes never see half a file.
    let tmp = dir.join(format!("{name}-{}.tmp", std::process::id()));
    cc(compiler, HELLO_C, &tmp, flags);
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// Compiles C source `src` to `out` with `compiler` and `flags` (after the source, so
/// `-l` options work); panics with the compiler's message on failure.
pub fn cc(compiler: &str, src: &str, out: &Path, flags: &[&str]) {
    let c = out.with_extension("src.c");
    std::fs::write(&c, src).unwrap();
    let r = run(Command::new(compiler)
        .arg("-O2")
        .arg("-o")
        .arg(out)
        .arg(&c)
        .args(flags));
    assert_eq!(r.code, 0, "{compiler} failed: {}", r.stderr);
    let _ = std::fs::remove_file(&c);
}

macro_rules! fixture {
    ($fn:ident, $name:expr, $cc:expr, $flags:expr) => {
        pub fn $fn() -> PathBuf {
            static P: OnceLock<PathBuf> = OnceLock::new();
            P.get_or_init(|| compile($name, $cc, $flags)).clone()
        }
    };
}

fixture!(hello_static, "hello-static", "gcc", &["-static"]);
fixture!(
    hello_static_pie,
    "hello-static-pie",
    "gcc",
    &["-static-pie"]
);
fixture!(hello_dynamic, "hello-dynamic", "gcc", &[]);
fixture!(hello_musl, "hello-musl", "musl-gcc", &[]);
fixture!(
    hello_arm64_static,
    "hello-arm64-static",
    "aarch64-linux-gnu-gcc",
    &["-static"]
);
fixture!(
    hello_musl_static,
    "hello-musl-static",
    "musl-gcc",
    &["-static"]
);

fixture!(
    hello_arm64_dynamic,
    "hello-arm64-dynamic",
    "aarch64-linux-gnu-gcc",
    &[]
);

/// A static Go program built with the Go toolchain (None, with a message, without Go).
pub fn hello_go() -> Option<PathBuf> {
    static P: OnceLock<Option<PathBuf>> = OnceLock::new();
    P.get_or_init(|| {
        go_program(
            "hello-go",
            "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello world\") }\n",
            &[],
        )
    })
    .clone()
}

/// Builds the Go source `main_go` as the fixture `name` with CGO_ENABLED=0 and the
/// extra environment `vars` (GOARCH, GOARM…). None (with a message) without Go. Callers
/// keep the result in a `OnceLock`, so each fixture is built once per test run.
pub fn go_program(name: &str, main_go: &str, vars: &[(&str, &str)]) -> Option<PathBuf> {
    if !have("go") {
        return None;
    }
    let dir = fixtures_dir().join(format!("go-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("go.mod"), "module example.com/hello\n\ngo 1.19\n").unwrap();
    std::fs::write(dir.join("main.go"), main_go).unwrap();
    let out = fixtures_dir().join(name);
    let tmp = dir.join(name);
    let r = run(Command::new("go")
        .args(["build", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&dir)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", fixtures_dir().join("gocache"))
        .env("GOPATH", fixtures_dir().join("gopath"))
        .env("HOME", &dir)
        .envs(vars.iter().copied()));
    assert_eq!(r.code, 0, "go build {name} failed: {}", r.stderr);
    std::fs::rename(&tmp, &out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Some(out)
}

/// Unpacks `image` (an `oci` layout ref `DIR:REF`) with umoci and runs it with runc.
/// Returns None (after saying why) when the tools or root are missing.
pub fn runc_run(env: &Env, layout_ref: &str, extra_args: Option<&[&str]>) -> Option<Run> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let work = env.path(&format!("run-{n}"));
    let r = start(&work, layout_ref, extra_args)?;
    assert!(
        work.join("bundle/config.json").exists(),
        "umoci unpack failed: {}",
        r.stderr
    );
    Some(r)
}

/// Starts the image `layout_ref` (`DIR:TAG`) as a user would: `umoci unpack` (as root,
/// not rootless) into `work/bundle`, then `runc run` with no terminal and a private state
/// directory. A failed unpack (an unknown user…) is returned as the result: the image did
/// not start. None (after saying why) when the tools or root are missing.
pub fn runc_start(work: &Path, layout_ref: &str) -> Option<Run> {
    start(work, layout_ref, None)
}

fn start(work: &Path, layout_ref: &str, extra_args: Option<&[&str]>) -> Option<Run> {
    if !(have("umoci") && have("runc") && is_root()) {
        return None;
    }
    let bundle = work.join("bundle");
    let unpack = run(Command::new("umoci")
        .args(["unpack", "--image", layout_ref])
        .arg(&bundle));
    if unpack.code != 0 {
        return Some(unpack);
    }
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = false.into();
    if let Some(args) = extra_args {
        let mut a: Vec<serde_json::Value> = cfg["process"]["args"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        a.extend(args.iter().map(|s| serde_json::Value::from(*s)));
        cfg["process"]["args"] = a.into();
    }
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "nobase-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let state = work.join("runc-state");
    let r = run(Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&name)
        .stdin(std::process::Stdio::null()));
    let _ = Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["delete", "-f", &name])
        .output();
    Some(r)
}

/// `umoci unpack` of a layout reference into `env`; returns the bundle directory (its
/// `rootfs` holds the image's files). None (after saying why) without umoci.
pub fn umoci_unpack(env: &Env, layout_ref: &str) -> Option<PathBuf> {
    if !have("umoci") {
        return None;
    }
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bundle = env.path(&format!("unpacked-{n}"));
    run(Command::new("umoci")
        .args(["unpack", "--image", layout_ref])
        .arg(&bundle))
    .ok();
    Some(bundle)
}

/// `skopeo inspect --raw` of a reference, hashed: the manifest digest skopeo sees.
pub fn skopeo_digest(reference: &str) -> Option<String> {
    if !have("skopeo") {
        return None;
    }
    let o = Command::new("skopeo")
        .args(["inspect", "--raw", reference])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "skopeo inspect --raw {reference}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(sha256_hex(&o.stdout))
}

/// `skopeo inspect` (config summary) as JSON.
pub fn skopeo_inspect(args: &[&str]) -> Option<serde_json::Value> {
    if !have("skopeo") {
        return None;
    }
    let r = run(Command::new("skopeo").arg("inspect").args(args));
    assert_eq!(r.code, 0, "skopeo inspect {args:?}: {}", r.stderr);
    Some(serde_json::from_str(&r.stdout).unwrap())
}

/// sha256 hex via the system's sha256sum (independent of nobase's hashing).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "sha256:{}",
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    )
}

/// Total bytes of regular files under `dir`.
pub fn du(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            n += du(&e.path());
        } else {
            n += m.len();
        }
    }
    n
}

/// Names of the blobs in a layout.
pub fn blob_count(layout: &Path) -> usize {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// Writes an image layout with Python's `tarfile` (independent of nobase's writer), for
/// hostile and hand-made images. `spec` is JSON: `{"ref": "NAME", "config": {...the
/// config's "config" object...}, "gzip": bool, "layers": [[entry, …], …]}` with entries
/// `{"name", "type": file|dir|symlink|link|fifo|char, "data", "from" (host file),
/// "zeros" (size), "mode", "uid", "gid", "target"}`. Returns `oci:DIR:REF`.
pub fn craft_image(dir: &Path, spec: &serde_json::Value) -> String {
    let script = dir.with_extension("craft.py");
    let input = dir.with_extension("craft.json");
    std::fs::write(&script, CRAFT_PY).unwrap();
    let mut spec = spec.clone();
    spec["dir"] = dir.display().to_string().into();
    std::fs::write(&input, serde_json::to_vec(&spec).unwrap()).unwrap();
    let r = run(Command::new("python3").arg(&script).arg(&input));
    assert_eq!(r.code, 0, "crafting {}: {}", dir.display(), r.stderr);
    format!(
        "oci:{}:{}",
        dir.display(),
        spec["ref"].as_str().unwrap_or("latest")
    )
}

const CRAFT_PY: &str = r#"
import gzip, hashlib, json, os, sys, tarfile
spec = json.load(open(sys.argv[1]))
out = spec["dir"]
os.makedirs(out + "/blobs/sha256", exist_ok=True)

def store(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    os.replace(path, out + "/blobs/sha256/" + h.hexdigest())
    return "sha256:" + h.hexdigest(), os.path.getsize(out + "/blobs/sha256/" + h.hexdigest())

def put(data):
    tmp = out + "/tmp-doc"
    open(tmp, "wb").write(data)
    return store(tmp)

class Hashing:
    def __init__(self, inner):
        self.inner, self.h = inner, hashlib.sha256()
    def write(self, b):
        self.h.update(b)
        return self.inner.write(b)
    def tell(self):
        return 0

class Zeros:
    def __init__(self, n):
        self.n = n
    def read(self, k=-1):
        k = self.n if k < 0 else min(k, self.n)
        self.n -= k
        return b"\0" * k

layers, diff_ids = [], []
for entries in spec["layers"]:
    tmp = out + "/tmp-layer"
    raw = open(tmp, "wb")
    sink = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) if spec.get("gzip") else raw
    hw = Hashing(sink)
    t = tarfile.open(fileobj=hw, mode="w", format=tarfile.PAX_FORMAT)
    for e in entries:
        ti = tarfile.TarInfo(e["name"])
        ti.mode = e.get("mode", 0o644)
        ti.uid, ti.gid, ti.mtime = e.get("uid", 0), e.get("gid", 0), 0
        kind, fobj = e.get("type", "file"), None
        if kind == "file":
            if "from" in e:
                data = open(e["from"], "rb").read()
                ti.size, fobj = len(data), __import__("io").BytesIO(data)
            elif "zeros" in e:
                ti.size, fobj = e["zeros"], Zeros(e["zeros"])
            else:
                data = e.get("data", "").encode()
                ti.size, fobj = len(data), __import__("io").BytesIO(data)
        elif kind == "dir":
            ti.type = tarfile.DIRTYPE
        elif kind == "symlink":
            ti.type, ti.linkname = tarfile.SYMTYPE, e["target"]
        elif kind == "link":
            ti.type, ti.linkname = tarfile.LNKTYPE, e["target"]
        elif kind == "fifo":
            ti.type = tarfile.FIFOTYPE
        elif kind == "char":
            ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
        t.addfile(ti, fobj)
    t.close()
    if sink is not raw:
        sink.close()
    raw.close()
    diff_ids.append("sha256:" + hw.h.hexdigest())
    digest, size = store(tmp)
    mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if spec.get("gzip") else "")
    layers.append({"mediaType": mt, "digest": digest, "size": size})

config = {"architecture": "amd64", "os": "linux", "config": spec.get("config", {}),
          "rootfs": {"type": "layers", "diff_ids": diff_ids}}
cd, cs = put(json.dumps(config).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": layers}
md, ms = put(json.dumps(manifest).encode())
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": spec.get("ref", "latest")}}]}
open(out + "/index.json", "w").write(json.dumps(index))
open(out + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
"#;

/// busybox (static) from busybox-static, or None with a message.
pub fn busybox() -> Option<PathBuf> {
    let p = PathBuf::from("/bin/busybox");
    if p.is_file() {
        Some(p)
    } else {
        if std::env::var_os("NOBASE_TEST_REQUIRE_TOOLS").is_some() {
            panic!("/bin/busybox is required (NOBASE_TEST_REQUIRE_TOOLS is set); install busybox-static");
        }
        eprintln!("skipping: /bin/busybox is not installed (busybox-static)");
        None
    }
}

/// The entry at `path` of the merged tree `nobase tree --json IMAGE` reports (panics
/// when there is none).
pub fn merged_entry(env: &Env, image: &str, path: &str) -> serde_json::Value {
    let t = env.nobase(&["tree", "--json", image]).ok().json();
    t["merged"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{image} has no {path}: {t}"))
        .clone()
}

/// The warning of a `--json` report (`build`'s or `check`'s) whose `field` (`kind` or
/// `code`) is `value`; panics, showing the report, when there is none.
pub fn warning<'a>(j: &'a serde_json::Value, field: &str, value: &str) -> &'a serde_json::Value {
    j["warnings"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w[field] == value))
        .unwrap_or_else(|| panic!("no {value} warning: {j:#}"))
}
