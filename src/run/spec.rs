//! The OCI runtime spec (`config.json`, version 1.0.2) that runc and crun read, built from
//! an image config and the run's overrides with Docker's defaults: the process (args from
//! Entrypoint + Cmd, env, cwd, numeric user), the usual mounts (proc, a tmpfs /dev,
//! devpts, shm, mqueue, read-only sysfs and cgroup), namespaces, masked and read-only
//! /proc paths, Docker's default capability set, and a user namespace when rootless.

use super::user::ResolvedUser;
use super::ProcessOptions;
use crate::error::{Error, Result};
use crate::image::ContainerConfig;
use serde::{Deserialize, Serialize};

/// The runtime spec version written.
pub const OCI_VERSION: &str = "1.0.2";

/// `PATH` when the image sets none (Docker's default).
pub use crate::build::DEFAULT_PATH;

/// Docker's default capabilities for a container.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// `/proc` and `/sys` paths hidden from the container (runc's spec defaults).
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// `/proc` paths made read-only (runc's spec defaults).
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A runtime bundle's `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// Spec version.
    pub oci_version: String,
    /// The container's process.
    pub process: Process,
    /// The root filesystem.
    pub root: SpecRoot,
    /// Hostname in the UTS namespace.
    pub hostname: String,
    /// Mounts, in order.
    pub mounts: Vec<Mount>,
    /// Linux-specific settings.
    pub linux: Linux,
}

/// `process`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// Allocate a pseudo-terminal.
    pub terminal: bool,
    /// Numeric user.
    pub user: User,
    /// argv.
    pub args: Vec<String>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    /// Absolute working directory.
    pub cwd: String,
    /// Capability sets.
    pub capabilities: Capabilities,
    /// Resource limits.
    pub rlimits: Vec<Rlimit>,
    /// `PR_SET_NO_NEW_PRIVS`: setuid files and file capabilities grant nothing.
    pub no_new_privileges: bool,
}

/// `process.user`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

/// `process.capabilities`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Capabilities {
    /// Bounding set.
    pub bounding: Vec<String>,
    /// Effective set.
    pub effective: Vec<String>,
    /// Inheritable set (empty, as Docker since CVE-2022-24769).
    pub inheritable: Vec<String>,
    /// Permitted set.
    pub permitted: Vec<String>,
    /// Ambient set.
    pub ambient: Vec<String>,
}

/// One `process.rlimits` entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE`…
    #[serde(rename = "type")]
    pub kind: String,
    /// Hard limit.
    pub hard: u64,
    /// Soft limit.
    pub soft: u64,
}

/// `root`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpecRoot {
    /// Relative to the bundle.
    pub path: String,
    /// Mount it read-only.
    pub readonly: bool,
}

/// One mount.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mount {
    /// Where, in the container.
    pub destination: String,
    /// Filesystem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What.
    pub source: String,
    /// Mount options.
    pub options: Vec<String>,
}

/// `linux`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    /// User namespace uid mappings (rootless).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    /// User namespace gid mappings (rootless).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
    /// Namespaces created.
    pub namespaces: Vec<Namespace>,
    /// Paths covered so the container cannot read them.
    pub masked_paths: Vec<String>,
    /// Paths mounted read-only.
    pub readonly_paths: Vec<String>,
    /// Kernel parameters of the container's own namespaces.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sysctl: std::collections::BTreeMap<String, String>,
}

/// A user namespace id range.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdMapping {
    /// First id inside.
    #[serde(rename = "containerID")]
    pub container_id: u32,
    /// First id outside.
    #[serde(rename = "hostID")]
    pub host_id: u32,
    /// How many.
    pub size: u32,
}

/// A namespace.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Namespace {
    /// `pid`, `network`…
    #[serde(rename = "type")]
    pub kind: String,
}

/// Everything a spec is made from.
pub struct SpecInputs<'a> {
    /// The image's runtime config.
    pub config: &'a ContainerConfig,
    /// The run's overrides.
    pub process: &'a ProcessOptions,
    /// The user, resolved in the image.
    pub user: &'a ResolvedUser,
    /// Allocate a terminal (stdin is one).
    pub terminal: bool,
    /// Share the host's network namespace.
    pub network_host: bool,
    /// Not root: the host uid and gid to map to root in a user namespace.
    pub rootless: Option<(u32, u32)>,
    /// Let setuid files raise privileges (only with `--keep-setuid`).
    pub allow_new_privileges: bool,
    /// The container's hostname.
    pub hostname: String,
    /// Which of [`ETC_FILES`] are mounted into /etc (an image whose /etc cannot take
    /// one keeps its own); the caller writes them beside config.json.
    pub etc: Vec<&'static str>,
    /// Lines added to `hosts`: a name and its address (`--add-host`).
    pub add_hosts: &'a [(String, std::net::IpAddr)],
    /// An image that names no program gets empty `process.args` instead of an error.
    pub allow_no_program: bool,
}

/// argv: the Entrypoint (or `--entrypoint`) followed by the Cmd (or the run's
/// arguments). As in Docker, `--entrypoint` drops the image's Cmd.
pub fn process_args(config: &ContainerConfig, p: &ProcessOptions) -> Result<Vec<String>> {
    let entrypoint = match &p.entrypoint {
        Some(e) => e.clone(),
        None => config.entrypoint.clone().unwrap_or_default(),
    };
    let cmd = match (&p.args, &p.entrypoint) {
        (Some(a), _) => a.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => config.cmd.clone().unwrap_or_default(),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::Usage(
            "the image names no program (no Entrypoint or Cmd); give one after the image or with --entrypoint"
                .into(),
        ));
    }
    Ok(args)
}

/// The working directory: `-w`, else the image's, else `/`. Must be absolute.
pub fn cwd(config: &ContainerConfig, p: &ProcessOptions) -> Result<String> {
    let cwd = p
        .workdir
        .clone()
        .or_else(|| config.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(Error::Usage(format!(
            "working directory {cwd:?} is not absolute; runtimes need a path starting with /"
        )));
    }
    Ok(cwd)
}

/// The environment: the image's, then `-e` overrides (same key replaced in place), then
/// Docker's defaults for what is still unset (`PATH`, `HOME`, and `TERM` with a terminal).
pub fn env(
    config: &ContainerConfig,
    p: &ProcessOptions,
    user: &ResolvedUser,
    terminal: bool,
    hostname: &str,
) -> Vec<String> {
    let mut env: Vec<(String, String)> = config
        .env
        .iter()
        .flatten()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    let mut set = |k: &str, v: &str, replace: bool| match env.iter_mut().find(|(ek, _)| ek == k) {
        Some(e) if replace => e.1 = v.to_string(),
        Some(_) => {}
        None => env.push((k.to_string(), v.to_string())),
    };
    for (k, v) in &p.env {
        set(k, v, true);
    }
    set("PATH", DEFAULT_PATH, false);
    set("HOME", user.home.as_deref().unwrap_or("/"), false);
    // As Docker sets it: the container's hostname, unless the image or -e says another.
    set("HOSTNAME", hostname, false);
    if terminal {
        set("TERM", "xterm", false);
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: dest.to_string(),
        kind: kind.to_string(),
        source: source.to_string(),
        options: options.iter().map(|s| s.to_string()).collect(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The names of [`etc_files`]' files.
pub const ETC_FILES: [&str; 2] = ["hostname", "hosts"];

/// The files the bundle holds beside config.json for the container's /etc, by name
/// (those of `i.etc`): `hostname`, and `hosts` naming localhost and the hostname (with
/// the host's network, the host's /etc/hosts with the container's hostname added).
pub fn etc_files(i: &SpecInputs<'_>) -> Vec<(&'static str, String)> {
    let mut hosts = if i.network_host {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        String::new()
    };
    if hosts.is_empty() {
        hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".into();
    }
    if !hosts.ends_with('\n') {
        hosts.push('\n');
    }
    hosts.push_str(&format!("127.0.1.1\t{}\n", i.hostname));
    for (name, ip) in i.add_hosts {
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    [
        (ETC_FILES[0], format!("{}\n", i.hostname)),
        (ETC_FILES[1], hosts),
    ]
    .into_iter()
    .filter(|(name, _)| i.etc.contains(name))
    .collect()
}

/// Whether this process's user namespace maps every group id as itself (the initial
/// namespace's `0 0 4294967295`).
fn all_groups_mapped() -> bool {
    std::fs::read_to_string("/proc/self/gid_map").is_ok_and(|m| {
        let fields: Vec<&str> = m.split_whitespace().collect();
        fields == ["0", "0", "4294967295"]
    })
}

/// Builds the spec.
pub fn build(i: &SpecInputs<'_>) -> Result<Spec> {
    let args = match process_args(i.config, i.process) {
        Err(_)
            if i.allow_no_program && i.process.entrypoint.is_none() && i.process.args.is_none() =>
        {
            Vec::new()
        }
        r => r?,
    };
    let cwd = cwd(i.config, i.process)?;
    let env = env(i.config, i.process, i.user, i.terminal, &i.hostname);
    let rootless = i.rootless.is_some();

    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
    ];
    // In a user namespace the tty group (5) is not mapped: leave devpts' gid alone.
    let devpts: &[&str] = if rootless {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ]
    } else {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]
    };
    mounts.push(mount("/dev/pts", "devpts", "devpts", devpts));
    mounts.push(mount(
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    ));
    mounts.push(mount(
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        &["nosuid", "noexec", "nodev"],
    ));
    // A fresh sysfs needs a network namespace of our own (and privileges): otherwise bind
    // the host's, read-only, as runc's rootless spec and Docker's host network do.
    if i.network_host || rootless {
        mounts.push(mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        ));
    } else {
        mounts.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ));
        mounts.push(mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ));
    }
    if i.network_host {
        // With the host's network, name resolution needs the host's resolver (as Docker);
        // its hosts file is in [`etc_files`].
        let f = "/etc/resolv.conf";
        if std::path::Path::new(f).is_file() {
            mounts.push(mount(
                f,
                "none",
                f,
                &["rbind", "ro", "nosuid", "nodev", "noexec"],
            ));
        }
    }
    // Docker mounts its own /etc/hosts and /etc/hostname into every container, scratch
    // and `--network none` ones too: `localhost` resolves in any image. Sources relative
    // to the bundle (runtime spec, "Mounts"), written there by [`etc_files`]' caller.
    for name in &i.etc {
        mounts.push(mount(
            &format!("/etc/{name}"),
            "none",
            name,
            &["rbind", "rw", "nosuid", "nodev", "noexec"],
        ));
    }

    // As Docker since 20.10: in the container's own network, any group may open ICMP
    // echo sockets, so `ping` works for a non-root user without CAP_NET_RAW or setuid.
    // Only where every group id is mapped: the kernel refuses a range naming unmapped
    // ones (rootless, or root in a user namespace — a rootless Podman container, an
    // unprivileged LXD one), and runc would then fail to start the container.
    let mut sysctl = std::collections::BTreeMap::new();
    if !i.network_host && i.rootless.is_none() && all_groups_mapped() {
        sysctl.insert(
            "net.ipv4.ping_group_range".to_string(),
            "0 2147483647".to_string(),
        );
    }
    let mut namespaces: Vec<&str> = vec!["pid", "ipc", "uts", "mount"];
    if !i.network_host {
        namespaces.push("network");
    }
    let (uid_mappings, gid_mappings, additional_gids) = match i.rootless {
        // Without privileges only our own ids can be mapped, and runc needs the
        // container's root mapped: ours becomes root inside, owning what we unpacked.
        Some((host_uid, host_gid)) => {
            namespaces.push("user");
            (
                vec![IdMapping {
                    container_id: 0,
                    host_id: host_uid,
                    size: 1,
                }],
                vec![IdMapping {
                    container_id: 0,
                    host_id: host_gid,
                    size: 1,
                }],
                Vec::new(),
            )
        }
        None => (Vec::new(), Vec::new(), i.user.additional_gids.clone()),
    };
    // A non-root process gets no effective or permitted capabilities, as on any system.
    let caps = strings(DEFAULT_CAPABILITIES);
    let user_caps = if i.user.uid == 0 {
        caps.clone()
    } else {
        Vec::new()
    };

    Ok(Spec {
        oci_version: OCI_VERSION.to_string(),
        process: Process {
            terminal: i.terminal,
            user: User {
                uid: i.user.uid,
                gid: i.user.gid,
                additional_gids,
            },
            args,
            env,
            cwd,
            capabilities: Capabilities {
                bounding: caps,
                effective: user_caps.clone(),
                inheritable: Vec::new(),
                permitted: user_caps,
                ambient: Vec::new(),
            },
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE".into(),
                hard: 1024,
                soft: 1024,
            }],
            no_new_privileges: !i.allow_new_privileges,
        },
        root: SpecRoot {
            path: "rootfs".into(),
            readonly: false,
        },
        hostname: i.hostname.clone(),
        mounts,
        linux: Linux {
            uid_mappings,
            gid_mappings,
            namespaces: namespaces
                .into_iter()
                .map(|k| Namespace { kind: k.into() })
                .collect(),
            masked_paths: strings(MASKED),
            readonly_paths: strings(READONLY),
            sysctl,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(entrypoint: &[&str], cmd: &[&str]) -> ContainerConfig {
        ContainerConfig {
            entrypoint: (!entrypoint.is_empty()).then(|| strings(entrypoint)),
            cmd: (!cmd.is_empty()).then(|| strings(cmd)),
            env: Some(strings(&["A=1", "PATH=/app"])),
            ..ContainerConfig::default()
        }
    }

    fn root_user() -> ResolvedUser {
        ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![10],
            home: None,
        }
    }

    #[test]
    fn args_follow_docker_rules() {
        let opts = |ep: Option<&[&str]>, args: Option<&[&str]>| ProcessOptions {
            entrypoint: ep.map(strings),
            args: args.map(strings),
            ..ProcessOptions::default()
        };
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            ProcessOptions,
            Option<&'a [&'a str]>,
        );
        let table: &[Case] = &[
            (
                &["/app/x"],
                &["a"],
                opts(None, None),
                Some(&["/app/x", "a"]),
            ),
            (
                &["/app/x"],
                &["a"],
                opts(None, Some(&["b", "c"])),
                Some(&["/app/x", "b", "c"]),
            ),
            (
                &["/app/x"],
                &["a"],
                opts(Some(&["/bin/sh"]), None),
                Some(&["/bin/sh"]),
            ),
            (
                &["/app/x"],
                &["a"],
                opts(Some(&["/bin/sh"]), Some(&["-c", "x"])),
                Some(&["/bin/sh", "-c", "x"]),
            ),
            (&[], &["/bin/y"], opts(None, None), Some(&["/bin/y"])),
            (
                &[],
                &["/bin/y"],
                opts(Some(&[]), Some(&["/bin/z"])),
                Some(&["/bin/z"]),
            ),
            (&[], &[], opts(None, None), None),
        ];
        for (ep, cmd, o, want) in table {
            let got = process_args(&cfg(ep, cmd), o).ok();
            assert_eq!(got, want.map(strings), "{ep:?} {cmd:?}");
        }
    }

    #[test]
    fn env_overrides_and_defaults() {
        let p = ProcessOptions {
            env: vec![("A".into(), "2".into()), ("B".into(), "x=y".into())],
            ..ProcessOptions::default()
        };
        let mut c = cfg(&["/x"], &[]);
        assert_eq!(
            env(&c, &p, &root_user(), true, "h"),
            strings(&[
                "A=2",
                "PATH=/app",
                "B=x=y",
                "HOME=/",
                "HOSTNAME=h",
                "TERM=xterm"
            ])
        );
        c.env = None;
        let u = ResolvedUser {
            home: Some("/home/app".into()),
            ..root_user()
        };
        assert_eq!(
            env(&c, &ProcessOptions::default(), &u, false, "h"),
            vec![
                format!("PATH={DEFAULT_PATH}"),
                "HOME=/home/app".to_string(),
                "HOSTNAME=h".to_string()
            ]
        );
        // The image's (or -e's) HOSTNAME wins.
        c.env = Some(vec!["HOSTNAME=mine".into()]);
        assert!(env(&c, &ProcessOptions::default(), &u, false, "h")
            .contains(&"HOSTNAME=mine".to_string()));
    }

    #[test]
    fn spec_shape_for_root_host_network_and_rootless() {
        let c = cfg(&["/app/x"], &[]);
        let p = ProcessOptions::default();
        let u = root_user();
        let inputs = |network_host, rootless| SpecInputs {
            config: &c,
            process: &p,
            user: &u,
            terminal: false,
            network_host,
            rootless,
            allow_new_privileges: false,
            hostname: "h".into(),
            etc: ETC_FILES.to_vec(),
            add_hosts: &[],
            allow_no_program: false,
        };
        let s = build(&inputs(false, None)).unwrap();
        let ns: Vec<&str> = s.linux.namespaces.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
        // Docker's default mounts: proc, dev, devpts, shm, mqueue, sysfs read-only.
        let mounted = |dest: &str, kind: &str| {
            s.mounts
                .iter()
                .find(|m| m.destination == dest && m.kind == kind)
                .unwrap_or_else(|| panic!("no {kind} at {dest}: {:?}", s.mounts))
        };
        mounted("/proc", "proc");
        mounted("/dev", "tmpfs");
        mounted("/dev/pts", "devpts");
        mounted("/dev/shm", "tmpfs");
        mounted("/dev/mqueue", "mqueue");
        // Docker's /etc/hosts and /etc/hostname, from files beside config.json.
        assert_eq!(mounted("/etc/hosts", "none").source, "hosts");
        assert_eq!(mounted("/etc/hostname", "none").source, "hostname");
        let files = etc_files(&inputs(false, None));
        assert_eq!(files[0], ("hostname", "h\n".to_string()));
        assert!(
            files[1].1.starts_with("127.0.0.1\tlocalhost\n"),
            "{files:?}"
        );
        assert!(files[1].1.ends_with("\n127.0.1.1\th\n"), "{files:?}");
        assert!(mounted("/sys", "sysfs").options.contains(&"ro".to_string()));
        assert!(s.mounts.iter().any(|m| m.kind == "cgroup"));
        assert!(!s.process.terminal);
        assert!(!s.process.env.iter().any(|e| e.starts_with("TERM=")));
        let tty = build(&SpecInputs {
            terminal: true,
            ..inputs(false, None)
        })
        .unwrap();
        assert!(tty.process.terminal);
        assert!(tty.process.env.contains(&"TERM=xterm".to_string()));
        assert_eq!(s.process.user.additional_gids, [10]);
        assert_eq!(
            s.process.capabilities.effective.len(),
            DEFAULT_CAPABILITIES.len()
        );
        assert!(s.process.no_new_privileges);
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["ociVersion"], "1.0.2");
        assert_eq!(j["process"]["user"]["additionalGids"][0], 10);
        assert_eq!(j["linux"]["maskedPaths"][2], "/proc/kcore");

        let s = build(&inputs(true, None)).unwrap();
        assert!(!s.linux.namespaces.iter().any(|n| n.kind == "network"));
        assert!(s
            .mounts
            .iter()
            .any(|m| m.destination == "/sys" && m.options.contains(&"rbind".to_string())));
        assert!(!s
            .mounts
            .iter()
            .any(|m| m.kind == "sysfs" || m.kind == "cgroup"));

        let s = build(&inputs(false, Some((1000, 1000)))).unwrap();
        assert!(s.linux.namespaces.iter().any(|n| n.kind == "user"));
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(j["linux"]["uidMappings"][0]["containerID"], 0);
        assert!(s.process.user.additional_gids.is_empty());
        assert!(!s
            .mounts
            .iter()
            .any(|m| m.options.contains(&"gid=5".to_string())));
    }
}
