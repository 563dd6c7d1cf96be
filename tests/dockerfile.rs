//! Dockerfiles without an engine: `nobase build -f`, judged by umoci + runc (does it
//! start?), skopeo (what is in the config and manifest?) and python's tarfile (hostile
//! archives).

use crate::util::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A build context `ctx/` in the env with a static hello world as `a.out`, the given
/// Dockerfile and extra files.
fn context(env: &Env, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(hello_static(), ctx.join("a.out")).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    for (name, content) in files {
        let p = ctx.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    ctx
}

/// `nobase build --json -f CTX/Dockerfile CTX ARGS…`, asserted successful.
fn build_df(env: &Env, ctx: &Path, args: &[&str]) -> serde_json::Value {
    let df = ctx.join("Dockerfile");
    let mut a = vec!["-f", df.to_str().unwrap(), ctx.to_str().unwrap()];
    a.extend_from_slice(args);
    build_json(env, &a)
}

fn store_ref(env: &Env, name: &str) -> String {
    format!("{}:{name}", env.store().display())
}

/// The image's config as skopeo reads it (raw, so Docker-only fields such as
/// Healthcheck are there too).
fn raw_config(env: &Env, name: &str) -> Option<serde_json::Value> {
    if !have("skopeo") {
        return None;
    }
    let r = run(Command::new("skopeo").args([
        "inspect",
        "--config",
        "--raw",
        &format!("oci:{}", store_ref(env, name)),
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    Some(serde_json::from_str(&r.stdout).unwrap())
}

/// The layer digests skopeo sees in the manifest.
fn layer_digests(reference: &str) -> Option<Vec<String>> {
    let m = skopeo_inspect(&["--raw", reference])?;
    Some(
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect(),
    )
}

/// The image's files unpacked by umoci (as root, so owners are kept); None (after
/// saying why) without umoci or root.
fn unpack(env: &Env, name: &str) -> Option<PathBuf> {
    if !is_root() {
        return None;
    }
    umoci_unpack(env, &store_ref(env, name)).map(|b| b.join("rootfs"))
}

#[test]
fn the_seed_dockerfile_builds_and_runs_hello_world() {
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nWORKDIR /app\nCOPY a.out .\nCMD [\"/app/a.out\"]\n",
        &[],
    );
    // The context defaults to the Dockerfile's directory.
    let df = ctx.join("Dockerfile");
    let j = build_json(&env, &["-f", df.to_str().unwrap(), "-t", "hello:1"]);
    assert_eq!(j["platform"], "linux/amd64");
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "WORKDIR and COPY each make a layer: {j}");
    assert_eq!(layers[1]["created_by"], "COPY a.out .");
    if let Some(r) = runc_run(&env, &store_ref(&env, "hello:1"), None) {
        assert_eq!(r.code, 0, "runc: {}", r.stderr);
        assert_eq!(r.stdout, "hello world\n");
    }
    if let Some(c) = raw_config(&env, "hello:1") {
        assert_eq!(c["config"]["Cmd"], json!(["/app/a.out"]));
        assert_eq!(c["config"]["WorkingDir"], "/app");
        let history: Vec<_> = c["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["created_by"].as_str().unwrap(), h["empty_layer"] == true))
            .collect();
        assert_eq!(
            history,
            [
                ("WORKDIR /app", false),
                ("COPY a.out .", false),
                ("CMD [\"/app/a.out\"]", true)
            ]
        );
    }
}

#[test]
fn config_instructions_land_in_the_config() {
    let env = Env::new();
    let ctx = context(
        &env,
        r#"ARG BASE_VERSION=0.9
FROM scratch
ARG VERSION=1.0
ARG NAME
LABEL org.opencontainers.image.version=$VERSION \
      "com.example.name"="${NAME:-unnamed}" \
      description="two words"
ENV APP_HOME=/srv/app \
    GREETING="hello there" \
    MODE=${MODE:-prod}
ENV LEGACY some  value
COPY --chmod=0555 a.out $APP_HOME/bin/hello
WORKDIR $APP_HOME
USER 1000:1000
EXPOSE 8080 9000-9001/udp
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD ["/srv/app/bin/hello", "-h"]
ENTRYPOINT ["/srv/app/bin/hello"]
CMD ["--serve"]
"#,
        &[],
    );
    let j = build_df(
        &env,
        &ctx,
        &[
            "-t",
            "cfg:1",
            "--build-arg",
            "VERSION=2.0",
            "--build-arg",
            "UNUSED=1",
            "--label",
            "extra=yes",
        ],
    );
    assert_eq!(j["warnings"][0]["kind"], "unused-build-arg", "{j}");
    assert!(j["warnings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("UNUSED"));
    let Some(c) = raw_config(&env, "cfg:1") else {
        return;
    };
    let cfg = &c["config"];
    assert_eq!(cfg["Labels"]["org.opencontainers.image.version"], "2.0");
    assert_eq!(cfg["Labels"]["com.example.name"], "unnamed");
    assert_eq!(cfg["Labels"]["description"], "two words");
    assert_eq!(cfg["Labels"]["extra"], "yes");
    let envs: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "APP_HOME=/srv/app",
        "GREETING=hello there",
        "MODE=prod",
        "LEGACY=some  value",
    ] {
        assert!(envs.contains(&want), "{want} not in {envs:?}");
    }
    assert!(envs.iter().any(|e| e.starts_with("PATH=")));
    assert_eq!(cfg["User"], "1000:1000");
    assert_eq!(cfg["WorkingDir"], "/srv/app");
    assert_eq!(
        cfg["ExposedPorts"],
        json!({"8080/tcp": {}, "9000/udp": {}, "9001/udp": {}})
    );
    assert_eq!(cfg["Volumes"], json!({"/data": {}}));
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(cfg["Entrypoint"], json!(["/srv/app/bin/hello"]));
    assert_eq!(cfg["Cmd"], json!(["--serve"]));
    assert_eq!(
        cfg["Healthcheck"],
        json!({"Test": ["CMD", "/srv/app/bin/hello", "-h"], "Interval": 30_000_000_000u64,
               "Timeout": 5_000_000_000u64, "Retries": 2})
    );
    // --chmod reached the file, and the program runs as uid 1000 from there.
    if let Some(rootfs) = unpack(&env, "cfg:1") {
        let m = std::fs::metadata(rootfs.join("srv/app/bin/hello")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o555);
    }
}

#[test]
fn a_multi_stage_build_copies_a_binary_between_scratch_stages() {
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch AS build\nCOPY a.out /out/hello\n\nFROM scratch\nCOPY --from=build /out/hello /hello\nENTRYPOINT [\"/hello\"]\n",
        &[],
    );
    let j = build_df(&env, &ctx, &["-t", "multi:1"]);
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        1,
        "only the final stage's layer is in it: {j}"
    );
    if let Some(r) = runc_run(&env, &store_ref(&env, "multi:1"), None) {
        assert_eq!(r.stdout, "hello world\n", "{}", r.stderr);
    }
    if let Some(rootfs) = unpack(&env, "multi:1") {
        assert!(rootfs.join("hello").is_file());
        assert!(
            !rootfs.join("out").exists(),
            "the build stage's files stay out"
        );
    }
    // --target builds the named stage, and COPY --from works by index too.
    let t = build_df(&env, &ctx, &["-t", "stage:1", "--target", "build"]);
    assert_eq!(t["layers"][0]["created_by"], "COPY a.out /out/hello");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch AS build\nCOPY a.out /out/hello\nFROM scratch\nCOPY --from=0 /out/* /bin/\nENTRYPOINT [\"/bin/hello\"]\n",
    )
    .unwrap();
    build_df(&env, &ctx, &["-t", "multi:2"]);
    if let Some(r) = runc_run(&env, &store_ref(&env, "multi:2"), None) {
        assert_eq!(r.stdout, "hello world\n", "{}", r.stderr);
    }
    let bad = env.nobase(&[
        "build",
        "-f",
        ctx.join("Dockerfile").to_str().unwrap(),
        "--target",
        "nope",
    ]);
    assert!(bad.code(2).stderr.contains("--target nope"));
}

#[test]
fn from_another_nobase_image_inherits_its_layers_and_config() {
    let env = Env::new();
    let bin = hello_static();
    build_json(
        &env,
        &[
            bin.to_str().unwrap(),
            "-t",
            "base:1",
            "-e",
            "FROM_BASE=1",
            "-l",
            "base=yes",
        ],
    );
    let ctx = context(
        &env,
        "FROM base:1\nENV EXTRA=2\nCOPY extra.txt /etc/extra.txt\n",
        &[("extra.txt", "extra\n")],
    );
    build_df(&env, &ctx, &["-t", "child:1", "-o", "oci:out:child"]);
    let Some(base) = layer_digests(&format!("oci:{}", store_ref(&env, "base:1"))) else {
        return;
    };
    let child = layer_digests(&format!("oci:{}", store_ref(&env, "child:1"))).unwrap();
    assert_eq!(child.len(), base.len() + 1);
    assert_eq!(
        child[..base.len()],
        base[..],
        "the base's blobs are reused as they are"
    );
    let c = raw_config(&env, "child:1").unwrap();
    assert_eq!(c["config"]["Entrypoint"], json!(["/app/hello-static"]));
    assert_eq!(c["config"]["Labels"]["base"], "yes");
    let envs = c["config"]["Env"].to_string();
    assert!(
        envs.contains("FROM_BASE=1") && envs.contains("EXTRA=2"),
        "{envs}"
    );
    assert_eq!(
        c["history"][0]["created_by"],
        "nobase build /app/hello-static"
    );
    // The export is a complete image: it runs.
    if let Some(r) = runc_run(&env, &format!("{}:child", env.path("out").display()), None) {
        assert_eq!(r.stdout, "hello world\n", "{}", r.stderr);
    }
    // FROM an oci: layout works the same way.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci:{}:child\nCMD [\"x\"]\n",
            env.path("out").display()
        ),
    )
    .unwrap();
    build_df(&env, &ctx, &["-t", "grandchild:1"]);
    let g = layer_digests(&format!("oci:{}", store_ref(&env, "grandchild:1"))).unwrap();
    assert_eq!(g, child);
    // And from an oci-archive.
    build_df(&env, &ctx, &["-t", "g:2", "-o", "oci-archive:g.tar:g"]);
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM oci-archive:{}:g\n", env.path("g.tar").display()),
    )
    .unwrap();
    build_df(&env, &ctx, &["-t", "from-archive:1"]);
    let a = layer_digests(&format!("oci:{}", store_ref(&env, "from-archive:1"))).unwrap();
    assert_eq!(a, child);
}

#[test]
fn run_and_other_os_instructions_are_refused_with_their_line() {
    let env = Env::new();
    let ctx = context(&env, "FROM scratch\nCOPY a.out /a.out\nRUN make\n", &[]);
    let df = ctx.join("Dockerfile");
    let r = env.nobase(&["build", "-f", df.to_str().unwrap()]).code(1);
    assert!(
        r.stderr.contains(
            "line 3: RUN needs a shell and an OS in the image; nobase builds images without one — compile the program beforehand, or COPY it in"
        ),
        "{}",
        r.stderr
    );
    for (text, code, want) in [
        ("FROM scratch\nONBUILD COPY a b\n", 1, "line 2: ONBUILD"),
        (
            "FROM scratch\nADD https://example.com/x /x\n",
            1,
            "line 2: ADD https://example.com/x: nobase does not fetch",
        ),
        (
            "FROM scratch\n\nFROB x\n",
            2,
            "line 3: unknown instruction 'FROB'",
        ),
        (
            "FROM scratch\nCOPY a.out\n",
            2,
            "line 2: COPY instruction requires at least two arguments",
        ),
        ("FROM scratch\nENV A=1 B\n", 2, "line 2: ENV:"),
        (
            "FROM scratch\nCOPY missing /x\n",
            2,
            "line 2: COPY: missing: not found",
        ),
        (
            "FROM scratch\nUSER ${X:?must be set}\n",
            2,
            "line 2: USER: X: must be set",
        ),
    ] {
        std::fs::write(&df, text).unwrap();
        let r = env
            .nobase(&["build", "-f", df.to_str().unwrap()])
            .code(code);
        assert!(r.stderr.contains(want), "{text:?}: {}", r.stderr);
    }
    // A RUN in a stage the target does not need is no obstacle.
    std::fs::write(
        &df,
        "FROM scratch AS tools\nRUN make\nFROM scratch\nCOPY a.out /a.out\n",
    )
    .unwrap();
    env.nobase(&["build", "-f", df.to_str().unwrap(), "-t", "ok:1"])
        .ok();
}

#[test]
fn same_dockerfile_and_context_give_the_same_digest_from_anywhere() {
    let a = Env::new();
    let text = "FROM scratch\nCOPY . /ctx/\nCOPY a.out /app/hello\nENTRYPOINT [\"/app/hello\"]\n";
    let ctx = context(
        &a,
        text,
        &[
            ("conf/app.conf", "x=1\n"),
            ("data/b.txt", "b"),
            ("data/a.txt", "a"),
        ],
    );
    let d1 = build_df(&a, &ctx, &["-t", "r:1"])["digest"].clone();
    let d2 = build_df(&a, &ctx, &["-t", "r:2"])["digest"].clone();
    assert_eq!(d1, d2);
    // Another copy of the context, with other mtimes and modes, in another store.
    let b = Env::new();
    let copy = b.path("elsewhere");
    run(Command::new("cp").arg("-r").arg(&ctx).arg(&copy)).ok();
    run(Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(copy.join("conf/app.conf"))
        .arg(copy.join("a.out")))
    .ok();
    run(Command::new("chmod")
        .args(["0600"])
        .arg(copy.join("data/a.txt")))
    .ok();
    let d3 = build_df(&b, &copy, &["-t", "r:3"])["digest"].clone();
    assert_eq!(d1, d3);
    // The Dockerfile from stdin, same context: same image.
    let r = b
        .cmd(&[
            "build",
            "--json",
            "-f",
            "-",
            copy.to_str().unwrap(),
            "-t",
            "r:4",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(j["digest"], d1);
}

#[test]
fn dockerignore_keeps_files_out() {
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nCOPY . /ctx/\n",
        &[
            (
                ".dockerignore",
                "# not these\nsecret.txt\nlogs\n!logs/keep.log\n**/*.tmp\n",
            ),
            ("secret.txt", "password"),
            ("logs/a.log", "a"),
            ("logs/keep.log", "k"),
            ("src/x.tmp", "t"),
            ("src/main.c", "int main;"),
        ],
    );
    build_df(&env, &ctx, &["-t", "ign:1"]);
    if let Some(rootfs) = unpack(&env, "ign:1") {
        let c = rootfs.join("ctx");
        assert!(c.join("src/main.c").is_file());
        assert!(c.join("logs/keep.log").is_file(), "exceptions come back");
        for gone in ["secret.txt", "logs/a.log", "src/x.tmp"] {
            assert!(!c.join(gone).exists(), "{gone} must be ignored");
        }
    }
    // Naming an ignored file is an error that says why.
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY secret.txt /\n").unwrap();
    let r = env
        .nobase(&["build", "-f", ctx.join("Dockerfile").to_str().unwrap()])
        .code(2);
    assert!(
        r.stderr.contains(".dockerignore excludes it"),
        "{}",
        r.stderr
    );
}

#[test]
fn add_extracts_local_archives_and_refuses_hostile_ones() {
    if !have("python3") {
        return;
    }
    let env = Env::new();
    let ctx = context(&env, "FROM scratch\n", &[]);
    let sentinel = env.path("outside.txt");
    let script = format!(
        r#"
import io, tarfile
def mk(name, entries, mode="w"):
    with tarfile.open(name, mode) as t:
        for n, kind, data in entries:
            ti = tarfile.TarInfo(n)
            ti.mode = 0o644
            if kind == "f":
                ti.size = len(data); t.addfile(ti, io.BytesIO(data))
            elif kind == "d":
                ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
            elif kind == "s":
                ti.type = tarfile.SYMTYPE; ti.linkname = data; t.addfile(ti)
            elif kind == "h":
                ti.type = tarfile.LNKTYPE; ti.linkname = data; t.addfile(ti)
mk("good.tar.gz", [("pkg", "d", None), ("pkg/data.txt", "f", b"data\n"), ("pkg/link", "s", "data.txt")], "w:gz")
mk("dotdot.tar", [("../../outside.txt", "f", b"x")])
mk("absolute.tar", [("{sentinel}", "f", b"x")])
mk("through-link.tar", [("pwn", "s", "{dir}"), ("pwn/outside.txt", "f", b"x")])
mk("hardlink.tar", [("h", "h", "/etc/shadow")])
"#,
        sentinel = sentinel.display(),
        dir = env.dir.path().display(),
    );
    run(Command::new("python3")
        .arg("-c")
        .arg(&script)
        .current_dir(&ctx))
    .ok();
    let df = ctx.join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\nADD good.tar.gz /opt/\nADD absolute.tar /jail/\n\
         ADD --chmod=600 good.tar.gz /m/\nADD --chmod=600 a.out /plain\n",
    )
    .unwrap();
    build_df(&env, &ctx, &["-t", "add:1"]);
    for name in ["dotdot.tar", "through-link.tar", "hardlink.tar"] {
        std::fs::write(&df, format!("FROM scratch\nADD {name} /opt/\n")).unwrap();
        let r = env.nobase(&["build", "-f", df.to_str().unwrap()]).code(3);
        assert!(r.stderr.contains("line 2: ADD:"), "{name}: {}", r.stderr);
    }
    assert!(
        !sentinel.exists(),
        "nothing is ever written outside the image"
    );
    if let Some(rootfs) = unpack(&env, "add:1") {
        assert_eq!(
            std::fs::read_to_string(rootfs.join("opt/pkg/data.txt")).unwrap(),
            "data\n"
        );
        assert_eq!(
            std::fs::read_link(rootfs.join("opt/pkg/link")).unwrap(),
            Path::new("data.txt")
        );
        // --chmod is for what ADD copies, not for what an archive unpacks (BuildKit):
        // the archive's modes stay (a program in it kept its execute bit only so).
        let mode = |p: &str| std::fs::symlink_metadata(rootfs.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("m/pkg"), 0o755);
        assert_eq!(mode("m/pkg/data.txt"), 0o644);
        assert_eq!(mode("plain"), 0o600);
        // An absolute name lands inside the destination, nowhere else.
        let contained = rootfs
            .join("jail")
            .join(sentinel.strip_prefix("/").unwrap());
        assert!(contained.is_file(), "{}", contained.display());
        assert!(!sentinel.exists());
    }
}

#[test]
fn chown_names_come_from_the_images_passwd() {
    let env = Env::new();
    // As BuildKit: a name alone takes its passwd group, a number alone is its own
    // group, `:group` is root's; directories a COPY or WORKDIR makes are owned like it.
    let ctx = context(
        &env,
        "FROM scratch\nCOPY passwd /etc/passwd\nCOPY group /etc/group\n\
         COPY --chown=app:staff a.out /home/app/hello\nCOPY --chown=7 a.out /seven\n\
         COPY --chown=app a.out /made/deep/primary\nCOPY --chown=:staff a.out /grp\n\
         USER app\nWORKDIR /work/sub\n",
        &[
            (
                "passwd",
                "root:x:0:0::/root:/sbin/nologin\napp:x:1000:1001::/home/app:/sbin/nologin\n",
            ),
            ("group", "root:x:0:\nstaff:x:50:\napp:x:1001:\n"),
        ],
    );
    build_df(&env, &ctx, &["-t", "own:1", "--no-check"]);
    if let Some(rootfs) = unpack(&env, "own:1") {
        for (path, want) in [
            ("etc", (0, 0)),
            ("home", (1000, 50)),
            ("home/app/hello", (1000, 50)),
            ("seven", (7, 7)),
            ("made", (1000, 1001)),
            ("made/deep", (1000, 1001)),
            ("made/deep/primary", (1000, 1001)),
            ("grp", (0, 50)),
            ("work", (1000, 1001)),
            ("work/sub", (1000, 1001)),
        ] {
            let m = std::fs::symlink_metadata(rootfs.join(path)).unwrap();
            assert_eq!((m.uid(), m.gid()), want, "{path}");
        }
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY --chown=nobody a.out /x\n",
    )
    .unwrap();
    let r = env
        .nobase(&["build", "-f", ctx.join("Dockerfile").to_str().unwrap()])
        .code(2);
    assert!(
        r.stderr.contains("--chown=nobody: no user \"nobody\""),
        "{}",
        r.stderr
    );
}

#[test]
fn every_output_form_of_build_works_with_a_dockerfile() {
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nCOPY a.out /hello\nENTRYPOINT [\"/hello\"]\n",
        &[],
    );
    let j = build_df(
        &env,
        &ctx,
        &[
            "-t",
            "o:1",
            "-o",
            "oci:out:o",
            "-o",
            "oci-archive:o.tar:o",
            "-o",
            "docker-archive:d.tar:o:1",
            "--compression",
            "zstd",
        ],
    );
    let digest = j["digest"].as_str().unwrap();
    for reference in [
        format!("oci:{}", store_ref(&env, "o:1")),
        format!("oci:{}:o", env.path("out").display()),
        format!("oci-archive:{}:o", env.path("o.tar").display()),
    ] {
        if let Some(d) = skopeo_digest(&reference) {
            assert_eq!(d, digest, "{reference}");
        }
    }
    if let Some(v) = skopeo_inspect(&[&format!("docker-archive:{}", env.path("d.tar").display())]) {
        assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    }
    // Flags that describe a one-executable build are refused with -f.
    let r = env
        .nobase(&[
            "build",
            "-f",
            ctx.join("Dockerfile").to_str().unwrap(),
            "-e",
            "A=1",
        ])
        .code(2);
    assert!(r.stderr.contains("-e/--env"), "{}", r.stderr);
}

#[test]
fn dynamic_executables_copied_in_are_bundled_and_checked() {
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nCOPY hello-dynamic /app/hello\nENTRYPOINT [\"/app/hello\"]\n",
        &[],
    );
    std::fs::copy(hello_dynamic(), ctx.join("hello-dynamic")).unwrap();
    let j = build_df(&env, &ctx, &["-t", "dyn:1"]);
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{j}");
    let bundle_line = layers[1]["created_by"].as_str().unwrap();
    assert!(
        bundle_line.starts_with("nobase bundle /app/hello: loader /lib64/ld-linux-x86-64.so.2"),
        "{bundle_line}"
    );
    if let Some(r) = runc_run(&env, &store_ref(&env, "dyn:1"), None) {
        assert_eq!(r.code, 0, "runc: {}", r.stderr);
        assert_eq!(r.stdout, "hello world\n");
    }
    // --bundle never refuses it, naming what it needs.
    let df = ctx.join("Dockerfile");
    let r = env
        .nobase(&["build", "-f", df.to_str().unwrap(), "--bundle", "never"])
        .code(1);
    assert!(
        r.stderr.contains("/app/hello is dynamically linked") && r.stderr.contains("libc.so.6"),
        "{}",
        r.stderr
    );
    // The self-check's warnings are said, with their fixes, as `build BINARY` says
    // them (they were dropped): a program making temporary files needs /tmp.
    let mk = ctx.join("mk");
    cc(
        "gcc",
        "#include <stdio.h>\n#include <stdlib.h>\nint main(void){char t[]=\"/tmp/aXXXXXX\";printf(\"%d\\n\",mkstemp(t));return 0;}\n",
        &mk,
        &[],
    );
    std::fs::write(
        &df,
        "FROM scratch\nCOPY mk /app/mk\nENTRYPOINT [\"/app/mk\"]\n",
    )
    .unwrap();
    let j = build_df(&env, &ctx, &["-t", "mk:1"]);
    let w = warning(&j, "kind", "no-writable-tmp");
    assert_eq!(w["with"], "tmp", "{w}");
    let r = env
        .nobase(&[
            "build",
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            "mk:1",
        ])
        .ok();
    assert!(
        r.stderr.contains("warning: /app/mk calls mkstemp") && r.stderr.contains("fix: --with tmp"),
        "{}",
        r.stderr
    );
    let j = build_df(&env, &ctx, &["-t", "mk:2", "--with", "tmp"]);
    assert_eq!(j["warnings"], json!([]), "{j}");
    // A static program needs nothing: no bundle layer.
    std::fs::write(&df, "FROM scratch\nCOPY a.out /app/hello\n").unwrap();
    assert_eq!(
        build_df(&env, &ctx, &[])["layers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn from_a_registry_by_plain_name_or_docker_url() {
    let Some(reg) = crate::registry::Registry::start(crate::registry::Auth::None) else {
        return;
    };
    let env = Env::new();
    let bin = hello_static();
    let pushed = format!("docker://{}/team/base:1", reg.host());
    let j = build_json(&env, &[bin.to_str().unwrap(), "-o", &pushed]);
    let base: Vec<String> = j["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    // Pinned by digest too (`FROM alpine@sha256:…`, with or without the tag), which the
    // store's digest references had taken for a store lookup, never trying the registry.
    let digest = j["digest"].as_str().unwrap();
    for from in [
        format!("{}/team/base:1", reg.host()),
        pushed.clone(),
        format!("{}/team/base@{digest}", reg.host()),
        format!("{}/team/base:1@{digest}", reg.host()),
    ] {
        let ctx = context(&env, &format!("FROM {from}\nENV FROM_REGISTRY=1\n"), &[]);
        let j = build_df(&env, &ctx, &["-t", "pulled:1"]);
        assert!(j["layers"].as_array().unwrap().is_empty(), "{j}");
        if let Some(got) = layer_digests(&format!("oci:{}", store_ref(&env, "pulled:1"))) {
            assert_eq!(got, base, "FROM {from}: the registry's blobs are reused");
        }
        if let Some(r) = runc_run(&env, &store_ref(&env, "pulled:1"), None) {
            assert_eq!(r.stdout, "hello world\n", "{}", r.stderr);
        }
    }
}

#[test]
fn shell_forms_and_inherited_cmd_follow_docker() {
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch AS base\nCMD echo \"$HOME\" \\\n    there\n\nFROM base\nSHELL [\"/busybox\", \"sh\", \"-c\"]\nENTRYPOINT exec /app/x\nHEALTHCHECK NONE\n",
        &[],
    );
    // Without /bin/sh in the image, the self-check refuses the shell form, naming it.
    let df = ctx.join("Dockerfile");
    let r = env
        .nobase(&["build", "-f", df.to_str().unwrap(), "--target", "base"])
        .code(1);
    assert!(
        r.stderr.contains("self-check failed") && r.stderr.contains("/bin/sh does not exist"),
        "{}",
        r.stderr
    );
    build_df(
        &env,
        &ctx,
        &["-t", "sh:1", "--target", "base", "--no-check"],
    );
    build_df(&env, &ctx, &["-t", "sh:2", "--no-check"]);
    let Some(base) = raw_config(&env, "sh:1") else {
        return;
    };
    assert_eq!(
        base["config"]["Cmd"],
        json!(["/bin/sh", "-c", "echo \"$HOME\"     there"])
    );
    let c = raw_config(&env, "sh:2").unwrap();
    assert_eq!(
        c["config"]["Entrypoint"],
        json!(["/busybox", "sh", "-c", "exec /app/x"])
    );
    assert!(
        c["config"]["Cmd"].is_null(),
        "ENTRYPOINT drops the inherited CMD: {c}"
    );
    assert_eq!(c["config"]["Shell"], json!(["/busybox", "sh", "-c"]));
    assert_eq!(c["config"]["Healthcheck"], json!({"Test": ["NONE"]}));
}

#[test]
fn a_dockerfile_specific_ignore_file_wins() {
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nCOPY . /ctx/\n",
        &[(".dockerignore", "a.txt\n"), ("a.txt", "a"), ("b.txt", "b")],
    );
    // <Dockerfile>.dockerignore beside the Dockerfile replaces the context's.
    let df = env.path("app.Dockerfile");
    std::fs::copy(ctx.join("Dockerfile"), &df).unwrap();
    std::fs::write(env.path("app.Dockerfile.dockerignore"), "b.txt\n").unwrap();
    build_json(
        &env,
        &[
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            "i:1",
        ],
    );
    if let Some(rootfs) = unpack(&env, "i:1") {
        assert!(rootfs.join("ctx/a.txt").is_file());
        assert!(!rootfs.join("ctx/b.txt").exists());
    }
}

#[test]
fn a_base_images_files_are_seen_through_its_symlinks_and_names() {
    if !have("umoci") {
        return;
    }
    let env = Env::new();
    // A base image made by umoci, not by nobase: /bin links to usr/bin, /tmp is sticky,
    // and passwd names the user `app`.
    let root = env.path("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/sbin/nologin\napp:x:1000:1000::/home/app:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    run(Command::new("chmod").arg("1777").arg(root.join("tmp"))).ok();
    let layout = env.path("base-layout");
    let image = format!("{}:base", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout))
    .ok();
    run(Command::new("umoci").args(["new", "--image", &image])).ok();
    run(Command::new("umoci")
        .args(["insert", "--image", &image])
        .arg(&root)
        .arg("/"))
    .ok();
    let ctx = context(
        &env,
        &format!(
            "FROM oci:{image}\nCOPY --chown=app:app a.out /bin/hello\nCOPY a.out /tmp/x\nENTRYPOINT [\"/bin/hello\"]\n"
        ),
        &[],
    );
    build_df(&env, &ctx, &["-t", "child:1"]);
    if let Some(rootfs) = unpack(&env, "child:1") {
        assert!(
            std::fs::symlink_metadata(rootfs.join("bin"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "/bin stays a link"
        );
        let m = std::fs::metadata(rootfs.join("usr/bin/hello")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1000, 1000));
        let t = std::fs::metadata(rootfs.join("tmp")).unwrap();
        assert_eq!(t.mode() & 0o7777, 0o1777, "/tmp keeps its mode");
    }
    if let Some(r) = runc_run(&env, &store_ref(&env, "child:1"), None) {
        assert_eq!(r.stdout, "hello world\n", "{}", r.stderr);
    }
    // COPY --from an image reads its files.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nCOPY --from=oci:{image} /etc/passwd /etc/\nCOPY a.out /hello\nUSER app\nENTRYPOINT [\"/hello\"]\n"),
    )
    .unwrap();
    build_df(&env, &ctx, &["-t", "copied:1"]);
    if let Some(rootfs) = unpack(&env, "copied:1") {
        assert!(std::fs::read_to_string(rootfs.join("etc/passwd"))
            .unwrap()
            .contains("app:x:1000"));
    }
}

#[test]
fn dockerfile_corners_follow_buildkit() {
    let env = Env::new();
    let ctx = context(&env, "", &[("keep", "k\n")]);
    let df = ctx.join("Dockerfile");
    let build = |text: &str, args: &[&str]| {
        std::fs::write(&df, text).unwrap();
        let mut a = vec!["build", "-f", df.to_str().unwrap(), ctx.to_str().unwrap()];
        a.extend_from_slice(args);
        env.nobase(&a)
    };
    // Automatic platform arguments declared again globally (so FROM can use them) keep
    // their values.
    build(
        "ARG TARGETOS TARGETARCH BUILDPLATFORM\nFROM --platform=$BUILDPLATFORM scratch\n\
         ARG TARGETOS TARGETARCH\nLABEL os=$TARGETOS arch=$TARGETARCH\n",
        &["-t", "args:1"],
    )
    .ok();
    if let Some(c) = raw_config(&env, "args:1") {
        assert_eq!(
            c["config"]["Labels"],
            json!({"os": "linux", "arch": "amd64"})
        );
    }
    // `ENTRYPOINT []` clears the base stage's entrypoint (and its inherited CMD).
    build(
        "FROM scratch AS base\nCOPY a.out /hello\nENTRYPOINT [\"/hello\"]\nCMD [\"x\"]\n\
         FROM base\nENTRYPOINT [ ]\nCMD [\"/hello\"]\n",
        &["-t", "ep:1"],
    )
    .ok();
    if let Some(c) = raw_config(&env, "ep:1") {
        assert_eq!(c["config"]["Entrypoint"], json!(null), "{c}");
        assert_eq!(c["config"]["Cmd"], json!(["/hello"]), "{c}");
    }
    if let Some(r) = runc_run(&env, &store_ref(&env, "ep:1"), None) {
        assert_eq!(r.stdout, "hello world\n", "{}", r.stderr);
    }
    // A FIFO the .dockerignore (or --exclude) leaves out is never read.
    let fifo = std::ffi::CString::new(ctx.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::fs::write(ctx.join(".dockerignore"), "fifo\n").unwrap();
    build("FROM scratch\nCOPY . /c/\n", &["-t", "ctx:1"]).ok();
    std::fs::remove_file(ctx.join(".dockerignore")).unwrap();
    build(
        "FROM scratch\nCOPY --exclude=fifo . /c/\n",
        &["-t", "ctx:2"],
    )
    .ok();
    let t = env.nobase(&["tree", "--json", "ctx:2"]).ok().json();
    let files: Vec<_> = t["merged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(files.contains(&"/c/keep".to_string()), "{files:?}");
    assert!(!files.iter().any(|f| f.ends_with("fifo")), "{files:?}");
    std::fs::remove_file(ctx.join("fifo")).unwrap();
    // Refusals that name the mistake: a health check without a command, and a COPY
    // --from of no stage, of itself or of a later stage (not an image to pull).
    let blobs = blob_count(&env.store());
    for (text, target, want) in [
        (
            "FROM scratch\nHEALTHCHECK CMD\n",
            "0",
            "CMD needs a command",
        ),
        (
            "FROM scratch\nCOPY --from=5 /x /x\n",
            "0",
            "there is no stage 5",
        ),
        (
            "FROM scratch AS a\nCOPY --from=a /x /x\n",
            "a",
            "this stage or a later one",
        ),
        (
            "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n",
            "a",
            "this stage or a later one",
        ),
    ] {
        let mut args = vec!["-t", "no:1"];
        if target != "0" {
            args.extend(["--target", target]);
        }
        let r = build(text, &args).code(2);
        assert!(r.stderr.contains(want), "{text}: {}", r.stderr);
        assert!(!r.stderr.contains("pulling"), "{text}: {}", r.stderr);
    }
    assert_eq!(
        blob_count(&env.store()),
        blobs,
        "a refused build wrote blobs"
    );
    // --with works with -f too, as the self-check's advice says.
    let text = "FROM scratch\nCOPY a.out /hello\nUSER nobody\nENTRYPOINT [\"/hello\"]\n";
    let r = build(text, &["-t", "user:1"]).code(1);
    assert!(r.stderr.contains("--with passwd"), "{}", r.stderr);
    build(text, &["-t", "user:1", "--with", "passwd,tmp"]).ok();
    env.nobase(&["check", "user:1"]).ok();
    if let Some(r) = runc_run(&env, &store_ref(&env, "user:1"), None) {
        assert_eq!(r.stdout, "hello world\n", "{}", r.stderr);
    }
    // What the Dockerfile wrote itself wins over --with: its own passwd stays.
    std::fs::write(
        ctx.join("passwd"),
        "root:x:0:0::/:/x\napp:x:1000:1000::/:/x\n",
    )
    .unwrap();
    std::fs::write(ctx.join("group"), "root:x:0:\napp:x:1000:\n").unwrap();
    let own = "FROM scratch\nCOPY passwd /etc/passwd\nCOPY group /etc/group\nCOPY a.out /hello\n\
               USER app\nENTRYPOINT [\"/hello\"]\n";
    build(own, &["-t", "own:1", "--with", "passwd,tmp"]).ok();
    let passwd = merged_entry(&env, "own:1", "/etc/passwd");
    assert_eq!(passwd["layer"], 1, "{passwd}");
    // A directory --with only puts files into keeps the stage's owner and mode: the
    // home WORKDIR made for the user stayed the user's (it was given back to root).
    let homes = "FROM scratch\nCOPY passwd /etc/passwd\nCOPY group /etc/group\nCOPY a.out /hello\n\
                 USER app\nWORKDIR /home/app/data\nENTRYPOINT [\"/hello\"]\n";
    build(homes, &["-t", "homes:1", "--with", "passwd"]).ok();
    let home = merged_entry(&env, "homes:1", "/home");
    assert_eq!(home["uid"], 1000, "{home}");
    let nonroot = merged_entry(&env, "homes:1", "/home/nonroot");
    assert_eq!(nonroot["uid"], 65532, "{nonroot}");
    // --with tmp after a COPY into /tmp still makes /tmp 1777 (a directory the stage
    // has with other metadata is given the extra's).
    build(
        "FROM scratch\nCOPY keep /tmp/keep\n",
        &["-t", "tmp:1", "--with", "tmp"],
    )
    .ok();
    let tmp = merged_entry(&env, "tmp:1", "/tmp");
    assert_eq!(tmp["mode"], "1777", "{tmp}");
    // A COPY of a directory over one the stage has gives its subdirectories the copied
    // ones' metadata, --chown and --chmod included, as BuildKit's copy does.
    for (dir, file) in [("one/sub", "f"), ("two/sub", "g")] {
        std::fs::create_dir_all(ctx.join(dir)).unwrap();
        std::fs::write(ctx.join(dir).join(file), "x").unwrap();
    }
    build(
        "FROM scratch\nCOPY one/ /app/\nCOPY --chown=1000:1000 --chmod=700 two/ /app/\n",
        &["-t", "sub:1"],
    )
    .ok();
    let sub = merged_entry(&env, "sub:1", "/app/sub");
    assert_eq!(
        (sub["mode"].as_str(), sub["uid"].as_u64()),
        (Some("0700"), Some(1000)),
        "{sub}"
    );
    let r = build(text, &["-t", "user:2", "-e", "A=1"]).code(2);
    assert!(
        r.stderr
            .contains("-e/--env describes a build from one executable"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_shell_form_command_in_a_scratch_image_is_explained_with_its_exec_form() {
    // `CMD /app --x` runs /bin/sh -c, which the author never wrote: the refusal named
    // /bin/sh only. It says where the shell comes from and gives the exec form.
    let env = Env::new();
    for (cmd, fix) in [
        (
            "CMD /app/a.out --x",
            "write it in exec form: CMD [\"/app/a.out\",\"--x\"]",
        ),
        (
            "ENTRYPOINT [\"/app/a.out\"] # a note",
            "it starts with [ but is not a JSON array (a comment after it, or single quotes?); write the array alone on its line, with double quotes",
        ),
    ] {
        let ctx = context(
            &env,
            &format!("FROM scratch\nCOPY a.out /app/a.out\n{cmd}\n"),
            &[],
        );
        let r = env
            .nobase(&["build", "-f", ctx.join("Dockerfile").to_str().unwrap(), ctx.to_str().unwrap(), "-t", "sh:1"])
            .code(1);
        assert!(r.stderr.contains("is in shell form, which runs /bin/sh -c"), "{}", r.stderr);
        assert!(r.stderr.trim_end().ends_with(fix), "{cmd}: {}", r.stderr);
    }
}

#[test]
fn a_copy_into_a_directory_the_host_has_as_a_link_is_refused_with_where_to_copy() {
    // `COPY libz.so.1 /lib/x86_64-linux-gnu/` next to a dynamic program: the bundle's
    // `/lib → usr/lib` link (the host's layout) would hide the copied directory; the
    // build failed with "cannot place a file at /lib", exit 2.
    if std::fs::read_link("/lib")
        .map(|t| t != Path::new("usr/lib"))
        .unwrap_or(true)
    {
        return; // not a merged-/usr host
    }
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nCOPY hello /app/hello\nCOPY extra.so /lib/x86_64-linux-gnu/extra.so\nENTRYPOINT [\"/app/hello\"]\n",
        &[("extra.so", "not really\n")],
    );
    std::fs::copy(hello_dynamic(), ctx.join("hello")).unwrap();
    let r = env
        .nobase(&[
            "build",
            "-f",
            ctx.join("Dockerfile").to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            "clash:1",
        ])
        .code(1);
    assert!(
        r.stderr
            .contains("where /lib is a link to usr/lib, but the Dockerfile made /lib a directory")
            && r.stderr.contains("COPY into /usr/lib instead"),
        "{}",
        r.stderr
    );
}

#[test]
fn workdir_follows_links_never_replaces_a_file_and_whiteout_names_are_refused() {
    // `WORKDIR /w/sub` with /w -> /data (missing) made a directory /w over the link;
    // BuildKit follows the link and makes /data/sub.
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nCOPY r/ /\nWORKDIR /w/sub\nCOPY a.out ./\nENTRYPOINT [\"/data/sub/a.out\"]\n",
        &[("wh/.wh.a.out", "")],
    );
    std::fs::create_dir_all(ctx.join("r")).unwrap();
    std::os::unix::fs::symlink("/data", ctx.join("r/w")).unwrap();
    build_df(&env, &ctx, &["-t", "linked:1"]);
    if let Some(root) = unpack(&env, "linked:1") {
        assert_eq!(
            std::fs::read_link(root.join("w")).unwrap(),
            Path::new("/data")
        );
        assert!(root.join("data/sub/a.out").is_file());
    }
    if let Some(r) = runc_run(&env, &store_ref(&env, "linked:1"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "hello world\n");
    }
    // A WORKDIR that is a file: refused, as BuildKit's mkdir fails (the file was
    // silently replaced by an empty directory).
    let df = ctx.join("Dockerfile.file");
    std::fs::write(
        &df,
        "FROM scratch\nCOPY a.out /f\nWORKDIR /f\nENTRYPOINT [\"/f\"]\n",
    )
    .unwrap();
    let r = env
        .nobase(&[
            "build",
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            "f:1",
        ])
        .code(2);
    assert!(
        r.stderr
            .contains("line 3: WORKDIR: cannot make the directory /f: /f is a file"),
        "{}",
        r.stderr
    );
    // Or a link to a file.
    std::fs::write(
        &df,
        "FROM scratch\nCOPY a.out /f\nCOPY r/ /\nWORKDIR /cfg\nENTRYPOINT [\"/f\"]\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/f", ctx.join("r/cfg")).unwrap();
    let r = env
        .nobase(&[
            "build",
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            "f:1",
        ])
        .code(2);
    assert!(
        r.stderr
            .contains("line 4: WORKDIR: cannot make the directory /cfg: /f is a file"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(ctx.join("r/cfg")).unwrap();
    // A context file named .wh.NAME would be a whiteout in the layer, deleting NAME
    // from the layers below.
    let df = ctx.join("Dockerfile.wh");
    std::fs::write(&df, "FROM scratch\nCOPY a.out /app/\nCOPY wh/ /app/\n").unwrap();
    let r = env
        .nobase(&[
            "build",
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            "wh:1",
        ])
        .code(2);
    assert!(
        r.stderr
            .contains("line 3: COPY: image path \"/app/.wh.a.out\" has a name starting with .wh.")
            && r.stderr.contains("deletes \"a.out\" from the layers below"),
        "{}",
        r.stderr
    );
    let r = env.nobase(&["images"]).ok();
    assert!(
        !r.stdout.contains("wh") && !r.stdout.contains("f:1"),
        "{}",
        r.stdout
    );
}

#[test]
fn copy_from_a_stage_gives_the_directory_it_makes_the_sources_owner_and_mode() {
    // `COPY --from=a /t/pkg /newpkg` made /newpkg 0755 root while its files kept
    // 77:88; BuildKit gives the directory it creates the source directory's metadata.
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch AS a\nADD a.tar /t/\nFROM scratch\nCOPY --from=a /t/pkg /newpkg\nCOPY --from=a --chown=5:6 /t/pkg /owned\n",
        &[("pk/pkg/f", "f\n")],
    );
    let r = run(Command::new("tar").args([
        "--owner=77",
        "--group=88",
        "--mode=u+rwX,go-rwx",
        "-cf",
        ctx.join("a.tar").to_str().unwrap(),
        "-C",
        ctx.join("pk").to_str().unwrap(),
        "pkg",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    build_df(&env, &ctx, &["-t", "meta:1"]);
    if let Some(root) = unpack(&env, "meta:1") {
        let m = std::fs::metadata(root.join("newpkg")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o700, 77, 88));
        let m = std::fs::metadata(root.join("owned")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o700, 5, 6));
        let m = std::fs::metadata(root.join("owned/f")).unwrap();
        assert_eq!((m.uid(), m.gid()), (5, 6));
    }
}

#[test]
fn a_custom_syntax_is_warned_about_and_a_repeated_directive_refused() {
    // `# syntax=example.com/my/frontend:v1` was ignored without a word (its extensions
    // silently not applied), and a second `# escape=` was accepted where BuildKit
    // refuses it (the parser crate dropped every directive then).
    let env = Env::new();
    let ctx = context(
        &env,
        "# syntax=example.com/my/frontend:v1\nFROM scratch\nCOPY a.out /a\nENTRYPOINT [\"/a\"]\n",
        &[],
    );
    let j = build_df(&env, &ctx, &["-t", "syntax:1"]);
    let w = warning(&j, "kind", "syntax-directive");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .starts_with("line 1: # syntax=example.com/my/frontend:v1 names another Dockerfile frontend; nobase reads the Dockerfile itself"),
        "{w}"
    );
    let df = ctx.join("Dockerfile");
    let build = |text: &str| {
        std::fs::write(&df, text).unwrap();
        env.nobase(&[
            "build",
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            "syntax:2",
        ])
    };
    let r = build(
        "# syntax=docker/dockerfile:1-labs\nFROM scratch\nCOPY a.out /a\nENTRYPOINT [\"/a\"]\n",
    )
    .ok();
    assert!(
        r.stderr.contains(
            "warning: line 1: # syntax=docker/dockerfile:1-labs asks for the labs channel"
        ),
        "{}",
        r.stderr
    );
    let r =
        build("# syntax=docker/dockerfile:1\nFROM scratch\nCOPY a.out /a\nENTRYPOINT [\"/a\"]\n")
            .ok();
    assert!(!r.stderr.contains("syntax="), "{}", r.stderr);
    for (text, name) in [
        ("# escape=`\n# escape=\\\nFROM scratch\n", "escape"),
        (
            "# syntax=docker/dockerfile:1\n# syntax=docker/dockerfile:1\nFROM scratch\n",
            "syntax",
        ),
    ] {
        let r = build(text).code(2);
        assert!(
            r.stderr.contains(&format!(
                "line 2: only one {name} parser directive can be used"
            )),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn an_expose_of_nothing_adds_no_field_and_a_relative_volume_is_refused() {
    // `EXPOSE $UNDEF` wrote `"ExposedPorts": {}`, which BuildKit's config leaves out;
    // `VOLUME rel/path` was recorded as written, and the container then fails to start
    // (runc: mount destination not absolute).
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nCOPY a.out /a\nEXPOSE $UNDEF\nENTRYPOINT [\"/a\"]\n",
        &[],
    );
    build_df(&env, &ctx, &["-t", "noport:1"]);
    if let Some(c) = raw_config(&env, "noport:1") {
        assert!(c["config"].get("ExposedPorts").is_none(), "{c}");
    }
    let df = ctx.join("Dockerfile");
    for (volume, shown) in [("rel/path", "\"/rel/path\""), ("[\"./data\"]", "\"/data\"")] {
        std::fs::write(
            &df,
            format!("FROM scratch\nWORKDIR /app\nVOLUME {volume}\n"),
        )
        .unwrap();
        let r = env
            .nobase(&[
                "build",
                "-f",
                df.to_str().unwrap(),
                ctx.to_str().unwrap(),
                "-t",
                "vol:1",
            ])
            .code(2);
        assert!(
            r.stderr.contains("line 3: VOLUME: ")
                && r.stderr.contains("is not an absolute path")
                && r.stderr
                    .contains(&format!("write the absolute path, such as {shown}")),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn a_required_variable_says_it_is_unset_and_a_cut_substitution_how_to_quote_it() {
    // `ENV X=${UNDEF:?must be set}` said only `"be" has no '='`: Docker splits the words
    // before substituting, even inside ${…}, which the message now says with the quoting
    // that keeps the word whole; the quoted form stops with BuildKit's message.
    let env = Env::new();
    let ctx = context(&env, "", &[]);
    let df = ctx.join("Dockerfile");
    for (text, want) in [
        (
            "FROM scratch\nENV X=${UNDEF:?must be set}\n",
            "line 2: ENV: \"be\" has no '=': the words of this instruction are split at spaces before variables are substituted, even inside ${…}, as Docker does, so \"X=${UNDEF:?must\" was cut there; quote the value: X=\"${UNDEF:?must be set}\"",
        ),
        (
            "FROM scratch\nENV X=\"${UNDEF:?must be set}\"\n",
            "line 2: ENV: UNDEF: must be set (UNDEF is not set)",
        ),
        (
            "FROM scratch\nWORKDIR ${UNDEF:?must be set}\n",
            "line 2: WORKDIR: UNDEF: must be set (UNDEF is not set)",
        ),
    ] {
        std::fs::write(&df, text).unwrap();
        let r = env
            .nobase(&["build", "-f", df.to_str().unwrap(), ctx.to_str().unwrap(), "-t", "req:1"])
            .code(2);
        assert!(r.stderr.contains(want), "{text}: {}", r.stderr);
    }
}

#[test]
fn a_shell_form_healthcheck_without_the_shell_is_warned_about_with_its_exec_form() {
    // `HEALTHCHECK CMD /a health` becomes CMD-SHELL, which the engine runs with
    // /bin/sh -c: in a scratch image the check can never pass. Nothing said so.
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nCOPY a.out /a\nHEALTHCHECK --interval=5s CMD /a health\nENTRYPOINT [\"/a\"]\n",
        &[],
    );
    let j = build_df(&env, &ctx, &["-t", "hc:1"]);
    let w = warning(&j, "kind", "healthcheck-shell-form");
    assert_eq!(
        w["message"],
        "line 3: HEALTHCHECK CMD /a health is in shell form, which the engine runs as /bin/sh -c \"/a health\", and the image has no /bin/sh, so the check can never pass (the container is reported unhealthy); write it in exec form: HEALTHCHECK CMD [\"/a\",\"health\"]",
        "{j}"
    );
    // Shell syntax cannot be split into an exec form at its spaces: not suggested.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY a.out /a\nHEALTHCHECK CMD /a health || exit 1\nENTRYPOINT [\"/a\"]\n",
    )
    .unwrap();
    let j = build_df(&env, &ctx, &["-t", "hc:3"]);
    let w = warning(&j, "kind", "healthcheck-shell-form");
    let m = w["message"].as_str().unwrap();
    assert!(
        m.ends_with("with a program that does what the shell syntax did") && !m.contains("\"||\""),
        "{m}"
    );
    // The exec form, or a shell form under a SHELL the image has, is fine.
    for text in [
        "FROM scratch\nCOPY a.out /a\nHEALTHCHECK CMD [\"/a\", \"health\"]\nENTRYPOINT [\"/a\"]\n",
        "FROM scratch\nCOPY a.out /a\nSHELL [\"/a\"]\nHEALTHCHECK CMD health\nENTRYPOINT [\"/a\"]\n",
    ] {
        std::fs::write(ctx.join("Dockerfile"), text).unwrap();
        let j = build_df(&env, &ctx, &["-t", "hc:2"]);
        assert!(!j.to_string().contains("healthcheck-shell-form"), "{text}: {j}");
    }
}

#[test]
fn a_copy_that_opens_up_private_modes_says_so() {
    // A context file 0600 (a secret) became 0644 world-readable in the image, 0700
    // 0755, without a word (docker keeps the bits). Normalizing stays; it is said.
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nCOPY m/secret.key /secret.key\nCOPY m /m\nCOPY --chmod=600 m/secret.key /kept.key\nCOPY pub /pub\n",
        &[
            ("m/secret.key", "k\n"),
            ("m/a", "a"),
            ("m/b", "b"),
            ("m/c", "c"),
            ("m/d", "d"),
            ("m/open", "o"),
            ("pub/readme", "r"),
        ],
    );
    let mode = |p: &str, m: u32| {
        std::fs::set_permissions(ctx.join(p), std::fs::Permissions::from_mode(m)).unwrap()
    };
    for f in ["m/secret.key", "m/a", "m/b", "m/c"] {
        mode(f, 0o600);
    }
    mode("m/d", 0o700);
    mode("m", 0o750);
    mode("m/open", 0o644);
    mode("pub", 0o755);
    mode("pub/readme", 0o644);
    let j = build_df(&env, &ctx, &["-t", "modes:1"]);
    let messages: Vec<&str> = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "mode-widened")
        .map(|w| w["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "line 2: COPY m/secret.key /secret.key: m/secret.key was 0600 on the host and is 0644 in the image (nobase normalizes modes so the digest does not depend on the checkout); keep it private with COPY --chmod=600",
            "line 3: COPY m /m: 6 paths are open to more users in the image than on the host: m (0750 → 0755), m/a (0600 → 0644), m/b (0600 → 0644), m/c (0600 → 0644), m/d (0700 → 0755), and 1 more (nobase normalizes modes so the digest does not depend on the checkout); keep them private with a COPY --chmod of their own (such as --chmod=750)",
        ],
        "{j}"
    );
    // The normalization itself is unchanged, and the human output prints the warning.
    let secret = merged_entry(&env, "modes:1", "/secret.key");
    assert_eq!(secret["mode"], "0644", "{secret}");
    let df = ctx.join("Dockerfile");
    let r = env
        .nobase(&[
            "build",
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            "modes:2",
        ])
        .ok();
    assert!(
        r.stderr
            .contains("warning: line 2: COPY m/secret.key /secret.key: m/secret.key was 0600"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_workdir_for_a_user_that_with_passwd_adds_is_that_users() {
    // `USER nonroot` + `WORKDIR /data` + `--with passwd` made /data root's: the name
    // was looked up before the passwd layer existed, and the service, writing to its
    // working directory, failed at start with "Permission denied".
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM scratch\nCOPY writer /app/writer\nUSER nonroot\nWORKDIR /data\n\
         COPY --chown=nonroot:nonroot a.out /data/hello\nENTRYPOINT [\"/app/writer\"]\n",
        &[],
    );
    cc(
        "gcc",
        "#include <stdio.h>\n#include <unistd.h>\nint main(void){FILE*f=fopen(\"state.db\",\"w\");\
         if(!f){perror(\"fopen state.db\");return 1;}printf(\"wrote as %d\\n\",(int)getuid());return 0;}\n",
        &ctx.join("writer"),
        &["-static"],
    );
    let j = build_df(&env, &ctx, &["-t", "wd:1", "--with", "passwd"]);
    assert!(
        !j.to_string().contains("workdir-owner"),
        "no warning when the user is known: {j}"
    );
    for path in ["/data", "/data/hello"] {
        let e = merged_entry(&env, "wd:1", path);
        assert_eq!(
            (e["uid"].as_u64(), e["gid"].as_u64()),
            (Some(65532), Some(65532)),
            "{path}: {e}"
        );
    }
    if let Some(r) = runc_run(&env, &store_ref(&env, "wd:1"), None) {
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("wrote as 65532"), "{}", r.stdout);
    }
    // Without --with passwd the name is unknown: the directory is root's, as BuildKit
    // makes it, and a warning says so and what a program running as the user will meet.
    let df = ctx.join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\nCOPY writer /app/writer\nUSER nonroot\nWORKDIR /data\nENTRYPOINT [\"/app/writer\"]\n",
    )
    .unwrap();
    let r = env
        .nobase(&[
            "build",
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            "wd:2",
            "--no-check",
        ])
        .ok();
    assert!(
        r.stderr
            .contains("WORKDIR /data is made owned by root, not by USER nonroot"),
        "{}",
        r.stderr
    );
    let e = merged_entry(&env, "wd:2", "/data");
    assert_eq!(e["uid"].as_u64(), Some(0), "{e}");
}

#[test]
fn a_program_of_another_platform_is_refused_with_the_dockerfiles_own_fix() {
    // The advice said `(--platform)`, which `build -f` refuses.
    let env = Env::new();
    let ctx = context(
        &env,
        "FROM --platform=linux/arm64 scratch\nCOPY a.out /svc\nENTRYPOINT [\"/svc\"]\n",
        &[],
    );
    let df = ctx.join("Dockerfile");
    let r = env
        .nobase(&[
            "build",
            "-f",
            df.to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            "pf:1",
        ])
        .code(1);
    assert!(
        r.stderr.contains("exec format error")
            && r.stderr
                .contains("(FROM --platform=…, or the build argument that picks the program")
            && !r.stderr.contains("(--platform)"),
        "{}",
        r.stderr
    );
}
