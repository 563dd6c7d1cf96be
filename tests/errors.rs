//! One representative error of every command, checked verbatim: each names the object
//! and the cause and says what to do (DESIGN.md), on one stderr line starting with
//! `nobase:`, with the exit code the conventions give it. A changed message fails here,
//! so wording changes are deliberate. `$STORE` and `$DIR` stand for the test's store
//! and directory.

use crate::util::*;

/// (what is tried, arguments, exit code, the whole of stderr).
type Case = (&'static str, Vec<String>, i32, &'static str);

fn cases(env: &Env, port: u16) -> Vec<Case> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let registry = format!("docker://127.0.0.1:{port}/hello:1");
    vec![
        (
            "inspect: a file that is not there",
            s(&["inspect", "missing"]),
            3,
            "nobase: missing does not exist; check the path of the file to inspect\n",
        ),
        (
            "build: a dynamic executable with --bundle never",
            s(&["build", "hello", "--bundle", "never"]),
            1,
            "nobase: building hello: hello is dynamically linked: it needs its loader /lib64/ld-linux-x86-64.so.2 and the library libc.so.6, which a scratch image does not have (this is what makes `exec … no such file or directory` in FROM scratch). Rebuild it statically (gcc -static, or -static-pie) or let nobase bundle them (--bundle auto)\n",
        ),
        (
            "build: an --add source that is not there",
            s(&["build", "hello-static", "--add", "conf.toml:/etc/app/"]),
            2,
            "nobase: --add conf.toml:/etc/app/: conf.toml does not exist on this machine; give an existing file or directory as SRC\n",
        ),
        (
            "build: an --add that lands on the program",
            s(&["build", "hello-static", "--add", "hello.c:/app/hello-static"]),
            2,
            "nobase: building hello-static: --add hello.c:/app/hello-static puts another file at /app/hello-static, where the program goes; add it elsewhere, or put the program at another path (--path)\n",
        ),
        (
            "check: a path given where an image is expected",
            s(&["check", "./hello"]),
            2,
            "nobase: ./hello is a path, not an image reference: an OCI layout directory is oci:./hello, an archive oci-archive:./hello or docker-archive:./hello, and a program becomes an image with `nobase build ./hello`\n",
        ),
        (
            "run: an image the store does not have",
            s(&["run", "nothere:1"]),
            125,
            "nobase: opening nothere:1: no image nothere:1 in the store $STORE; `nobase images` lists what is there\n",
        ),
        (
            "tree: a layer the image does not have",
            s(&["tree", "--layer", "3", "hello:1"]),
            2,
            "nobase: --layer 3: the image has layers 1 to 2 (1 is the bottom layer)\n",
        ),
        (
            "push: a registry that does not answer",
            s(&["push", "hello:1", &registry]),
            3,
            "nobase: push to 127.0.0.1:$PORT/hello:1: cannot reach the registry 127.0.0.1:$PORT: https: Connection refused (os error 111); http: connecting to 127.0.0.1:$PORT: Connection refused (os error 111), still failing after 1 attempt; check that the registry is running and listening at that address\n",
        ),
        (
            "pull: no name for an image that has none",
            s(&["pull", "oci:layout"]),
            2,
            "nobase: give the store name for oci:layout with -t NAME[:TAG]\n",
        ),
        (
            "fsck: a store that does not exist (a typo)",
            s(&["--store", "typo/store", "fsck"]),
            3,
            "nobase: the store typo/store does not exist (the first build or pull makes it); check --store and NOBASE_STORE\n",
        ),
        (
            "images: a store that is not a directory",
            s(&["--store", "hello.c", "images"]),
            2,
            "nobase: the store hello.c is not a directory; point --store or NOBASE_STORE at a directory (it is created when missing)\n",
        ),
        (
            "rmi: a tag the store does not have",
            s(&["rmi", "hello:2"]),
            3,
            "nobase: removing hello:2: no image hello:2 in the store $STORE; `nobase images` lists what is there\n",
        ),
        (
            "unpack: a bundle directory that is a file",
            s(&["unpack", "hello:1", "hello.c"]),
            2,
            "nobase: hello.c exists and is not a directory; give a new directory for the bundle\n",
        ),
        (
            "fsck: a directory that is not a layout",
            s(&["fsck", env.dir.path().to_str().unwrap()]),
            3,
            "nobase: $DIR is not an OCI image layout: it has no oci-layout file; give a layout directory (with oci-layout, index.json and blobs/, as nobase, skopeo and umoci write them)\n",
        ),
        (
            "man: a directory that cannot be made",
            s(&["man", "hello.c/man1"]),
            3,
            "nobase: cannot write man pages into hello.c/man1: Not a directory (os error 20); give a directory you can write to\n",
        ),
        (
            "completions: a shell nobase has no script for",
            s(&["completions", "tcsh"]),
            2,
            "nobase: invalid value 'tcsh' for '<SHELL>' [possible values: bash, elvish, fish, powershell, zsh]; tip: a similar value exists: 'zsh'\n",
        ),
        (
            "build: a flag it does not have, said in one line with the usage",
            s(&["build", "--bogus", "hello"]),
            2,
            "nobase: unexpected argument '--bogus' found; tip: to pass '--bogus' as a value, use '-- --bogus' (usage: nobase build [OPTIONS] [BINARY]... [-- <ARGS>...])\n",
        ),
        (
            "build: a --path no filesystem can create",
            s(&["build", "hello", "--path", &format!("/app/{}", "y".repeat(256))]),
            2,
            Box::leak(
                format!(
                    "nobase: building hello: image path \"/app/{}…\" has a name of 256 bytes (\"{}…\"); file names are at most 255 bytes\n",
                    "y".repeat(43),
                    "y".repeat(48)
                )
                .into_boxed_str(),
            ),
        ),
        (
            "pull: a --creds-file that is not there",
            s(&["pull", &registry, "-t", "x:1", "--creds-file", "nosuch"]),
            3,
            "nobase: nosuch does not exist; check the path of the --creds-file\n",
        ),
        (
            "build: an --add below a file of a layer underneath",
            s(&["build", "hello-static", "--with", "passwd", "--add", "hello.c:/etc/passwd/x"]),
            2,
            "nobase: building hello-static: cannot make the directory /etc/passwd: /etc/passwd is a file in the image below (in the layers below the application's)\n",
        ),
        (
            "build: a --user of three parts",
            s(&["build", "hello", "-u", "a:b:c"]),
            2,
            "nobase: invalid --user \"a:b:c\": use USER or USER:GROUP (names or numbers), e.g. 1000:1000 or nonroot\n",
        ),
        (
            "build: SOURCE_DATE_EPOCH past year 9999",
            s(&["build", "hello", "--source-date-epoch", "253402300800"]),
            2,
            "nobase: invalid value '253402300800' for '--source-date-epoch <SECONDS>': 253402300800 is not in 0..=253402300799\n",
        ),
        (
            "build: a shared library",
            s(&["build", "libx.so"]),
            3,
            "nobase: libx.so is a shared library, not an executable program; build the program that uses it (nobase bundles the libraries a program needs), or put it in an image beside one with --add libx.so:/DEST\n",
        ),
        (
            "build: a FreeBSD program",
            s(&["build", "hello-freebsd"]),
            1,
            "nobase: hello-freebsd is a freebsd program (freebsd/amd64), and containers run on Linux, whose kernel cannot start it; build it for Linux (for Go: GOOS=linux)\n",
        ),
        (
            "images: a --store that is another directory (a typo), which is left alone",
            s(&["--store", "notastore", "images"]),
            2,
            "nobase: notastore is not a nobase store (it has files but no oci-layout); point --store or NOBASE_STORE at a store, or at a new or empty directory to make one\n",
        ),
        (
            "check: an archive that is not there",
            s(&["check", "oci-archive:nope.tar"]),
            3,
            "nobase: nope.tar does not exist; check the path of the archive\n",
        ),
        (
            "check: a file that is not a tar as an archive",
            s(&["check", "docker-archive:hello.c"]),
            3,
            "nobase: hello.c is not a tar archive (no ustar header), so not an image archive; docker save, skopeo copy … docker-archive:/oci-archive: and nobase write them\n",
        ),
        (
            "build: a directory given as the Dockerfile",
            s(&["build", "-f", "notastore"]),
            3,
            "nobase: notastore is a directory; give the path of the Dockerfile (-f), a file\n",
        ),
        (
            "push: an upload chunk size of 0",
            s(&["NOBASE_CHUNK_SIZE=0", "push", "hello:1", &registry]),
            2,
            "nobase: NOBASE_CHUNK_SIZE=0 is too small; give at least 4096 bytes\n",
        ),
        (
            "build: a script, which needs its interpreter",
            s(&["build", "tool.sh"]),
            3,
            "nobase: tool.sh is not an ELF executable (nobase packages compiled Linux programs; `nobase inspect tool.sh` says what it is). It is a script for /bin/sh: build that interpreter (if it is a program) and --add the script, with --entrypoint naming both, e.g. `nobase build /bin/sh --add tool.sh:/app/tool.sh --entrypoint '[\"/app/sh\",\"/app/tool.sh\"]'`; an interpreter with a library tree (Python, Perl, Ruby) needs that tree added too (--add /usr/lib/python3.11:/usr/lib/python3.11)\n",
        ),
        (
            "build: two programs of one platform (an index holds one image per platform)",
            s(&["build", "hello", "hello-static"]),
            2,
            "nobase: hello and hello-static are both linux/amd64 programs; several executables make an image index, one image per platform (tell ARM variants apart with --platform, one per executable). To put both in one image, build the first and --add the second (its libraries are bundled too), or write a Dockerfile with a COPY of each\n",
        ),
        (
            "push: a destination with a tag and a digest (the tag was never made)",
            s(&["push", "hello:1", &format!("{registry}@sha256:{}", "0".repeat(64))]),
            2,
            "nobase: docker://127.0.0.1:$PORT/hello:1@sha256:0000000000000000000000000000000000000000000000000000000000000000: a destination names a tag or a digest, not both; give docker://127.0.0.1:$PORT/hello:1\n",
        ),
        (
            "pull: a registry's name without docker:// (the store's, in nobase)",
            s(&["pull", "127.0.0.1:5000/team/app:1"]),
            2,
            "nobase: 127.0.0.1:5000/team/app:1 is a name in the local store, not a registry; to pull it from a registry give docker://127.0.0.1:5000/team/app:1\n",
        ),
    ]
}

/// The commands that take `--json`.
const JSON_COMMANDS: [&str; 8] = [
    "inspect", "build", "check", "tree", "images", "push", "pull", "fsck",
];

#[test]
fn each_command_explains_a_representative_error() {
    let env = Env::new();
    std::fs::copy(hello_dynamic(), env.path("hello")).unwrap();
    std::fs::copy(hello_static(), env.path("hello-static")).unwrap();
    // The same program marked FreeBSD in its ELF OS/ABI byte, as Go's GOOS=freebsd.
    let mut bsd = std::fs::read(hello_static()).unwrap();
    bsd[7] = 9;
    std::fs::write(env.path("hello-freebsd"), bsd).unwrap();
    std::fs::create_dir(env.path("notastore")).unwrap();
    std::fs::write(env.path("notastore/notes.txt"), "mine\n").unwrap();
    std::fs::write(env.path("hello.c"), "int main(void) { return 0; }\n").unwrap();
    cc(
        "gcc",
        "int x(void) { return 1; }\n",
        &env.path("libx.so"),
        &["-shared", "-fPIC"],
    );
    std::fs::write(env.path("tool.sh"), "#!/bin/sh\necho tool\n").unwrap();
    env.nobase(&["build", "hello", "-t", "hello:1"]).ok();
    // A loopback port with nothing listening, held so for the whole test: one found free
    // and let go could be given to another test's registry meanwhile.
    let dead = closed_port();
    let port = dead.port;
    let mut failures = Vec::new();
    for (what, args, code, want) in cases(&env, port) {
        // Leading NAME=VALUE arguments are the environment, as in a shell.
        let vars: Vec<(&str, &str)> = args
            .iter()
            .map_while(|a| {
                a.split_once('=').filter(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                })
            })
            .collect();
        let args: Vec<&str> = args[vars.len()..].iter().map(String::as_str).collect();
        let r = run(env
            .cmd(&args)
            .env("NOBASE_RETRIES", "1")
            .envs(vars.iter().copied())
            .env_remove("NO_COLOR"));
        let got = r
            .stderr
            .replace(&env.store().display().to_string(), "$STORE")
            .replace(&env.dir.path().display().to_string(), "$DIR")
            .replace(&port.to_string(), "$PORT");
        if r.code != code || got != want {
            failures.push(format!(
                "{what}: nobase {}\n  exit {} (want {code})\n  got:  {got:?}\n  want: {want:?}",
                args.join(" "),
                r.code
            ));
        }
        // With --json, stdout holds one document still: the error, as stderr says it.
        if JSON_COMMANDS.contains(&args[0]) {
            let mut with = args.clone();
            with.insert(1, "--json");
            let j = run(env
                .cmd(&with)
                .env("NOBASE_RETRIES", "1")
                .envs(vars.iter().copied()));
            let doc: serde_json::Value = serde_json::from_str(&j.stdout).unwrap_or_default();
            let said = j.stderr.strip_prefix("nobase: ").unwrap_or("").trim_end();
            if j.code != code
                || doc["error"]["exit_code"] != code
                || doc["error"]["message"] != said
            {
                failures.push(format!(
                    "{what}: nobase {}\n  exit {}\n  stdout: {}\n  stderr: {}",
                    with.join(" "),
                    j.code,
                    j.stdout,
                    j.stderr
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A command without --json refuses the flag and prints no document for it.
    let r = env.nobase(&["unpack", "--json", "hello:1", "out"]).code(2);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // The directory taken for a store was not written to.
    assert_eq!(std::fs::read_dir(env.path("notastore")).unwrap().count(), 1);
}

#[test]
fn a_truncated_elf_says_why_once() {
    // The cause was printed twice: once in the message, once more as its source.
    let env = Env::new();
    let whole = std::fs::read(hello_dynamic()).unwrap();
    std::fs::write(env.path("cut"), &whole[..5000]).unwrap();
    for cmd in ["build", "inspect"] {
        let r = env.nobase(&[cmd, "cut"]).code(3);
        assert_eq!(
            r.stderr.matches("lies outside the file").count(),
            1,
            "{cmd}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("the file is truncated or corrupt"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn an_env_script_is_told_to_build_the_program_env_would_run() {
    // `#!/usr/bin/env python3` was told to build /usr/bin/env: that image has no python3
    // for env to find, and exited 127 while build and check passed. The advice names the
    // program PATH finds, and following it gives an image that runs the script.
    let env = Env::new();
    std::fs::write(
        env.path("tool"),
        "#!/usr/bin/env sh\necho from the env script\n",
    )
    .unwrap();
    let r = env.nobase(&["build", "tool"]).code(3);
    assert!(
        r.stderr
            .contains("It is a script for sh, found on PATH by /usr/bin/env"),
        "{}",
        r.stderr
    );
    let advice = r
        .stderr
        .split("e.g. `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no command in: {}", r.stderr));
    assert!(!advice.starts_with("nobase build /usr/bin/env"), "{advice}");
    assert!(
        advice.ends_with(r#"--add tool:/app/tool --entrypoint '["/app/sh","/app/tool"]'"#),
        "{advice}"
    );
    let command = format!(
        "{} -t envsh:1",
        advice.replacen("nobase", nobase_bin().to_str().unwrap(), 1)
    );
    let built = run(std::process::Command::new("sh")
        .args(["-c", &command])
        .current_dir(env.dir.path())
        .env("NOBASE_STORE", env.store()));
    assert_eq!(built.code, 0, "{command}: {}", built.stderr);
    env.nobase(&["check", "envsh:1"]).ok();
    if let Some(r) = runc_run(&env, &format!("{}:envsh:1", env.store().display()), None) {
        assert_eq!(r.stdout, "from the env script\n", "{}", r.stderr);
    }
}

#[test]
fn a_truncated_archive_is_called_truncated_whatever_it_lost() {
    // Cut inside a layer, before manifest.json: it was "not a docker archive: it has no
    // manifest.json"; cut after it, "truncated?". Both are the archive being cut.
    let env = Env::new();
    env.nobase(&["build", hello_static().to_str().unwrap(), "-t", "h:1"])
        .ok();
    for (kind, file) in [("docker-archive", "d.tar"), ("oci-archive", "o.tar")] {
        let whole = env.path(file);
        env.nobase(&["push", "h:1", &format!("{kind}:{}", whole.display())])
            .ok();
        let bytes = std::fs::read(&whole).unwrap();
        let cut = env.path(&format!("cut-{file}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let r = env
            .nobase(&["tree", &format!("{kind}:{}", cut.display())])
            .code(3);
        assert!(
            r.stderr.contains("the archive is truncated")
                && r.stderr.contains("ends inside its member"),
            "{kind}: {}",
            r.stderr
        );
    }
    // A whole archive with a GNU sparse member (whose header gives the size it expands
    // to, past the file's end) is not truncated.
    let dir = env.path("sparse");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), "[]").unwrap();
    std::fs::File::create(dir.join("hole"))
        .unwrap()
        .set_len(10 << 20)
        .unwrap();
    let r = run(std::process::Command::new("tar")
        .args([
            "--format=gnu",
            "-S",
            "-cf",
            "sparse.tar",
            "manifest.json",
            "hole",
        ])
        .current_dir(&dir));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = env.nobase(&[
        "tree",
        &format!("docker-archive:{}", dir.join("sparse.tar").display()),
    ]);
    assert!(!r.stderr.contains("truncated"), "{}", r.stderr);
    assert!(r.stderr.contains("holds 0 images"), "{}", r.stderr);
}
