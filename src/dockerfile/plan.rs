//! A Dockerfile's text → a validated plan: stages and typed instructions, each with its
//! line number, parsed by the `parse-dockerfile` crate. Arguments stay as written
//! (quotes, escapes, `$VAR`) because Docker substitutes variables when an instruction
//! runs, against the environment of the stage at that point (its base image's `ENV`
//! included). Instructions nobase cannot honour are kept as refusals, so that only the
//! stages a build needs are refused.

use super::exec::Warning;
use super::lex;
use crate::error::{Error, Result};
use parse_dockerfile::{self as pd, Instruction};

/// A parsed Dockerfile.
#[derive(Clone, Debug)]
pub struct Dockerfile {
    /// The escape character (`\`, or what the `# escape=` directive says).
    pub escape: char,
    /// `ARG` instructions before the first `FROM` (usable in `FROM` lines).
    pub global_args: Vec<Instr>,
    /// The build stages, in order.
    pub stages: Vec<Stage>,
    /// What the text itself deserves a warning for (a `# syntax=` nobase does not honour).
    pub warnings: Vec<Warning>,
}

/// One build stage: a `FROM` and the instructions up to the next one.
#[derive(Clone, Debug)]
pub struct Stage {
    /// Position in the file, from 0 (`COPY --from=0`).
    pub index: usize,
    /// The `AS` name, lowercased as Docker does.
    pub name: Option<String>,
    /// The `FROM` line.
    pub line: usize,
    /// The base, as written: `scratch`, an image reference or a stage name.
    pub base: String,
    /// `FROM --platform=…`, as written.
    pub platform: Option<String>,
    /// The instructions after `FROM`.
    pub instrs: Vec<Instr>,
}

/// One instruction.
#[derive(Clone, Debug)]
pub struct Instr {
    /// Its first line.
    pub line: usize,
    /// `COPY`, `ENV`… for messages.
    pub keyword: &'static str,
    /// What it does.
    pub op: Op,
}

/// What an instruction does; arguments are raw (not yet substituted) unless said.
#[derive(Clone, Debug)]
pub enum Op {
    /// `ARG name[=default]…`.
    Arg(Vec<(String, Option<String>)>),
    /// `ENV key=value…`.
    Env(Vec<(String, String)>),
    /// `LABEL key=value…`.
    Label(Vec<(String, String)>),
    /// `COPY` or `ADD`.
    Copy(Copy),
    /// `WORKDIR path`.
    Workdir(String),
    /// `USER user[:group]`.
    User(String),
    /// `EXPOSE port[/proto]…`.
    Expose(Vec<String>),
    /// `VOLUME path…`.
    Volume(Vec<String>),
    /// `STOPSIGNAL signal`.
    StopSignal(String),
    /// `CMD`.
    Cmd(Cmdline),
    /// `ENTRYPOINT`.
    Entrypoint(Cmdline),
    /// `SHELL ["exe", "arg"…]` (literal).
    Shell(Vec<String>),
    /// `HEALTHCHECK …`; `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
    /// `MAINTAINER name` (sets the image's author).
    Maintainer(String),
    /// An instruction nobase will not run, with the reason (exit code 1 when reached).
    Refused(String),
}

/// The exec or shell form of `CMD`, `ENTRYPOINT` and `HEALTHCHECK CMD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmdline {
    /// `["exe", "arg"]`, literal.
    Exec(Vec<String>),
    /// `exe arg`, line continuations joined, otherwise as written.
    Shell(String),
}

/// `COPY` or `ADD`.
#[derive(Clone, Debug)]
pub struct Copy {
    /// True for `ADD` (local tar archives are extracted).
    pub add: bool,
    /// `--from=stage|image`.
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=octal`.
    pub chmod: Option<String>,
    /// `--exclude=pattern`, repeatable.
    pub excludes: Vec<String>,
    /// Sources.
    pub sources: Vec<Source>,
    /// Destination.
    pub dest: String,
}

/// One source of `COPY`/`ADD`.
#[derive(Clone, Debug)]
pub enum Source {
    /// A path or pattern (raw).
    Path(String),
    /// A here-document: `COPY <<EOF /dest`.
    HereDoc {
        /// Its delimiter, which names the file when the destination is a directory.
        name: String,
        /// Its text.
        text: String,
        /// False when the delimiter was quoted (no substitution).
        expand: bool,
    },
}

/// `HEALTHCHECK CMD …` with its options (durations in nanoseconds, 0 = not set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthcheck {
    /// The probe.
    pub test: Cmdline,
    /// `--interval`.
    pub interval: u64,
    /// `--timeout`.
    pub timeout: u64,
    /// `--start-period`.
    pub start_period: u64,
    /// `--start-interval`.
    pub start_interval: u64,
    /// `--retries`.
    pub retries: u64,
}

/// The message for `RUN`, the instruction nobase exists to avoid.
pub const RUN_REFUSAL: &str = "RUN needs a shell and an OS in the image; nobase builds images without one — compile the program beforehand, or COPY it in";

/// Something that went wrong in an instruction: a message (a usage error: the
/// Dockerfile asks for something wrong) or a library error, which keeps its kind.
pub trait Cause {
    /// The error with `prefix` (`line 4: COPY: `) in front of its message.
    fn with_prefix(self, prefix: String) -> Error;
}

impl Cause for String {
    fn with_prefix(self, prefix: String) -> Error {
        Error::Usage(prefix + &self)
    }
}

impl Cause for &str {
    fn with_prefix(self, prefix: String) -> Error {
        Error::Usage(prefix + self)
    }
}

impl Cause for Error {
    fn with_prefix(self, prefix: String) -> Error {
        match self {
            Error::Refused(m) => Error::Refused(prefix + &m),
            Error::Usage(m) => Error::Usage(prefix + &m),
            Error::Invalid(m) => Error::Invalid(prefix + &m),
            Error::Io { action, cause } => Error::Io {
                action: prefix + &action,
                cause,
            },
            other => Error::Invalid(format!("{prefix}{other}")),
        }
    }
}

/// An error pointing at an instruction: `line 4: COPY: cause`.
pub fn at(line: usize, keyword: &str, cause: impl Cause) -> Error {
    cause.with_prefix(format!("line {line}: {keyword}: "))
}

/// True for `ADD` sources Docker would download (nobase never does).
pub fn is_remote(src: &str) -> bool {
    let lower = src.to_ascii_lowercase();
    ["http://", "https://", "git://", "git@", "ssh://"]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// The refusal for an `ADD` of a URL.
pub fn remote_refusal(line: usize, src: &str) -> Error {
    Error::Refused(format!(
        "line {line}: ADD {src}: nobase does not fetch anything from the network while building; download it beforehand and COPY it in"
    ))
}

/// Parses and validates a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile> {
    // The crate drops a byte-order mark itself; dropping it here keeps its spans and
    // our line numbers counted from the same text.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let directives = directives(text)?;
    // Parsed once; again only when the parser refused an `ENTRYPOINT []`.
    let marked: String;
    let (text, parsed) = match pd::parse(text) {
        Err(e) if refuses_empty_entrypoint(&e) => {
            marked = with_empty_entrypoints_marked(text);
            (marked.as_str(), pd::parse(&marked))
        }
        parsed => (text, parsed),
    };
    let df = parsed.map_err(|e| {
        if e.line() == 0 {
            Error::Usage(format!(
                "the Dockerfile has no build stage: {e:#} (start it with FROM scratch or FROM IMAGE)"
            ))
        } else {
            let hint = if format!("{e:#}").starts_with("unknown instruction") {
                " (Dockerfile instructions are FROM, COPY, ADD, ARG, ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER, ONBUILD and RUN)"
            } else {
                ""
            };
            Error::Usage(format!("line {}: {e:#}{hint}", e.line()))
        }
    })?;
    let escape = df
        .parser_directives
        .escape
        .as_ref()
        .map(|d| d.value.value)
        .unwrap_or('\\');
    let line_of = |pos: usize| {
        text.as_bytes()[..pos.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    };

    let mut global_args = Vec::new();
    for a in df.global_args() {
        let line = line_of(a.arg.span.start);
        global_args.push(Instr {
            line,
            keyword: "ARG",
            op: arg_op(line, &a.arguments.value, escape)?,
        });
    }
    let mut stages = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (index, st) in df.stages().enumerate() {
        let line = line_of(st.from.from.span.start);
        let mut platform = None;
        for f in &st.from.options {
            match (f.name.value.as_ref(), &f.value) {
                ("platform", Some(v)) => platform = Some(v.value.to_string()),
                (name, _) => {
                    return Err(at(
                        line,
                        "FROM",
                        format!("unknown flag --{name} (FROM takes --platform=OS/ARCH)"),
                    ))
                }
            }
        }
        let name = match &st.from.as_ {
            Some((_, n)) => {
                let n = n.value.to_ascii_lowercase();
                let valid = n.starts_with(|c: char| c.is_ascii_lowercase())
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
                if !valid {
                    return Err(at(
                        line,
                        "FROM",
                        format!("invalid stage name {n:?}: use letters, digits, - _ . starting with a letter"),
                    ));
                }
                if !names.insert(n.clone()) {
                    return Err(at(line, "FROM", format!("duplicate stage name {n:?}")));
                }
                Some(n)
            }
            None => None,
        };
        let mut instrs = Vec::new();
        for i in st.instructions {
            instrs.push(instruction(i, text, escape, &line_of)?);
        }
        stages.push(Stage {
            index,
            name,
            line,
            base: st.from.image.value.to_string(),
            platform,
            instrs,
        });
    }
    Ok(Dockerfile {
        escape,
        global_args,
        stages,
        warnings: directives
            .iter()
            .filter(|d| d.name == "syntax")
            .filter_map(|d| syntax_warning(d.line, &d.value))
            .collect(),
    })
}

/// A parser directive at the top of the file (`# syntax=…`, `# escape=…`, `# check=…`).
struct Directive {
    /// Lowercased, as BuildKit reads it.
    name: String,
    value: String,
    line: usize,
}

/// The parser directives as BuildKit reads them: `# name=value` lines at the very top,
/// ended by the first line that is not one (an instruction, an empty line, another
/// comment, an unknown name). A name given twice is an error there ("only one escape
/// parser directive can be used"); the parser crate instead drops every directive and
/// reads on, so a second `# escape=` changed how the whole file was read without a word.
fn directives(text: &str) -> Result<Vec<Directive>> {
    let mut found: Vec<Directive> = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let Some(rest) = line.trim_start().strip_prefix('#') else {
            break;
        };
        let Some((name, value)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim();
        let value = value.trim();
        let well_formed = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric())
            && !value.is_empty();
        let name = name.to_ascii_lowercase();
        if !well_formed || !["syntax", "escape", "check"].contains(&name.as_str()) {
            break;
        }
        let line = i + 1;
        if let Some(first) = found.iter().find(|d| d.name == name) {
            return Err(Error::Usage(format!(
                "line {line}: only one {name} parser directive can be used (line {} has one already; BuildKit refuses the second, so keep one # {name}= line)",
                first.line
            )));
        }
        found.push(Directive {
            name,
            value: value.to_string(),
            line,
        });
    }
    Ok(found)
}

/// A warning for a `# syntax=` that asks for more than the stable Dockerfile frontend:
/// nobase reads the text itself (the rules of `docker/dockerfile:1`), so a custom
/// frontend's extensions, or the labs channel's, would silently not apply.
fn syntax_warning(line: usize, value: &str) -> Option<Warning> {
    // BuildKit takes the first word as the frontend's reference.
    let reference = value.split_whitespace().next().unwrap_or(value);
    let r = reference.split('@').next().unwrap_or(reference);
    let r = r.strip_prefix("docker.io/").unwrap_or(r);
    let (name, tag) = match r.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (r, None),
    };
    let version = |t: &str| {
        t == "latest"
            || (!t.is_empty()
                && t.split('.').count() <= 3
                && t.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    };
    let message = match tag {
        _ if name != "docker/dockerfile" => format!(
            "line {line}: # syntax={reference} names another Dockerfile frontend; nobase reads the Dockerfile itself, with the rules of docker/dockerfile:1, so that frontend's own extensions are not applied"
        ),
        Some(t) if t == "labs" || t.ends_with("-labs") => format!(
            "line {line}: # syntax={reference} asks for the labs channel; nobase reads the Dockerfile itself, with the rules of docker/dockerfile:1, and supports no labs-only features"
        ),
        Some(t) if !version(t) => format!(
            "line {line}: # syntax={reference} is not a release of docker/dockerfile; nobase reads the Dockerfile itself, with the rules of docker/dockerfile:1"
        ),
        _ => return None,
    };
    Some(Warning {
        kind: "syntax-directive".into(),
        message,
        with: None,
    })
}

fn arg_op(line: usize, args: &str, escape: char) -> Result<Op> {
    let pairs = lex::name_values(args, escape, false).map_err(|e| at(line, "ARG", e))?;
    Ok(Op::Arg(pairs))
}

fn pairs_op(
    line: usize,
    kw: &'static str,
    args: &str,
    escape: char,
) -> Result<Vec<(String, String)>> {
    Ok(lex::name_values(args, escape, true)
        .map_err(|e| at(line, kw, e))?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// What `ENTRYPOINT []` (which clears a base image's entrypoint in Docker) is given to
/// the parser as, since the parser refuses an empty list there.
const EMPTY_ENTRYPOINT: &str = "\0nobase: ENTRYPOINT []";

/// `text` with each one-line `ENTRYPOINT []` the parser refuses written as
/// `ENTRYPOINT ["<EMPTY_ENTRYPOINT>"]`, line numbers unchanged. Only lines the parser
/// names are touched, so the same words inside a here-document stay as they are.
/// The parser's refusal of an `ENTRYPOINT` without arguments (`ENTRYPOINT []`).
fn refuses_empty_entrypoint(e: &pd::Error) -> bool {
    format!("{e:#}").starts_with("ENTRYPOINT instruction requires at least one")
}

fn with_empty_entrypoints_marked(text: &str) -> String {
    let mut text = text.to_string();
    // Each round fixes the first refused line; a Dockerfile has few.
    for _ in 0..64 {
        let Err(e) = pd::parse(&text) else { break };
        if !refuses_empty_entrypoint(&e) {
            break;
        }
        let Some(line) = text.split_inclusive('\n').nth(e.line().saturating_sub(1)) else {
            break;
        };
        let body = line.trim_end_matches(['\n', '\r']);
        let words: Vec<&str> = body.split_whitespace().collect();
        let empty = words.len() >= 2
            && words[0].eq_ignore_ascii_case("ENTRYPOINT")
            && words[1..].concat() == "[]";
        if !empty {
            break;
        }
        let start = text.as_ptr() as usize;
        let at = line.as_ptr() as usize - start;
        let indent = body.len() - body.trim_start().len();
        let marked = format!(
            "{}ENTRYPOINT [{}]",
            &body[..indent],
            serde_json::to_string(EMPTY_ENTRYPOINT).expect("a string serializes")
        );
        text.replace_range(at..at + body.len(), &marked);
    }
    text
}

fn cmdline(c: &pd::Command<'_>, escape: char, line: usize, kw: &str) -> Result<Cmdline> {
    Ok(match c {
        pd::Command::Exec(v) if v.value.len() == 1 && v.value[0].value == EMPTY_ENTRYPOINT => {
            Cmdline::Exec(Vec::new())
        }
        pd::Command::Exec(v) => {
            Cmdline::Exec(v.value.iter().map(|s| s.value.to_string()).collect())
        }
        pd::Command::Shell(s) => Cmdline::Shell(lex::join_continuations(s.value, escape)),
        _ => return Err(at(line, kw, "a command form nobase does not know")),
    })
}

fn instruction(
    i: &Instruction<'_>,
    text: &str,
    escape: char,
    line_of: &dyn Fn(usize) -> usize,
) -> Result<Instr> {
    let (start, keyword, op) = match i {
        Instruction::Arg(a) => {
            let line = line_of(a.arg.span.start);
            (a.arg.span.start, "ARG", arg_op(line, &a.arguments.value, escape)?)
        }
        Instruction::Env(e) => {
            let line = line_of(e.env.span.start);
            (e.env.span.start, "ENV", Op::Env(pairs_op(line, "ENV", &e.arguments.value, escape)?))
        }
        Instruction::Label(l) => {
            let line = line_of(l.label.span.start);
            (
                l.label.span.start,
                "LABEL",
                Op::Label(pairs_op(line, "LABEL", &l.arguments.value, escape)?),
            )
        }
        Instruction::Copy(c) => {
            let line = line_of(c.copy.span.start);
            let op = copy_op(line, "COPY", false, &c.options, &c.src, &c.dest.value, text)?;
            (c.copy.span.start, "COPY", op)
        }
        Instruction::Add(c) => {
            let line = line_of(c.add.span.start);
            let op = copy_op(line, "ADD", true, &c.options, &c.src, &c.dest.value, text)?;
            (c.add.span.start, "ADD", op)
        }
        Instruction::Workdir(w) => (
            w.workdir.span.start,
            "WORKDIR",
            Op::Workdir(w.arguments.value.to_string()),
        ),
        Instruction::User(u) => (u.user.span.start, "USER", Op::User(u.arguments.value.to_string())),
        Instruction::Expose(e) => (
            e.expose.span.start,
            "EXPOSE",
            Op::Expose(e.arguments.iter().map(|s| s.value.to_string()).collect()),
        ),
        Instruction::Volume(v) => {
            let list = match &v.arguments {
                pd::JsonOrStringArray::Json(j) => &j.value[..],
                pd::JsonOrStringArray::String(s) => &s[..],
            };
            (
                v.volume.span.start,
                "VOLUME",
                Op::Volume(list.iter().map(|s| s.value.to_string()).collect()),
            )
        }
        Instruction::Stopsignal(s) => (
            s.stopsignal.span.start,
            "STOPSIGNAL",
            Op::StopSignal(s.arguments.value.to_string()),
        ),
        Instruction::Cmd(c) => {
            let line = line_of(c.cmd.span.start);
            (c.cmd.span.start, "CMD", Op::Cmd(cmdline(&c.arguments, escape, line, "CMD")?))
        }
        Instruction::Entrypoint(e) => {
            let line = line_of(e.entrypoint.span.start);
            (
                e.entrypoint.span.start,
                "ENTRYPOINT",
                Op::Entrypoint(cmdline(&e.arguments, escape, line, "ENTRYPOINT")?),
            )
        }
        Instruction::Shell(s) => {
            let line = line_of(s.shell.span.start);
            let args: Vec<String> = s.arguments.iter().map(|a| a.value.to_string()).collect();
            if args.is_empty() {
                return Err(at(line, "SHELL", "needs a JSON array such as [\"/bin/sh\", \"-c\"]"));
            }
            (s.shell.span.start, "SHELL", Op::Shell(args))
        }
        Instruction::Healthcheck(h) => {
            let line = line_of(h.healthcheck.span.start);
            (h.healthcheck.span.start, "HEALTHCHECK", healthcheck_op(line, h, escape)?)
        }
        Instruction::Maintainer(m) => (
            m.maintainer.span.start,
            "MAINTAINER",
            Op::Maintainer(m.name.value.to_string()),
        ),
        Instruction::Onbuild(o) => (
            o.onbuild.span.start,
            "ONBUILD",
            Op::Refused(
                "ONBUILD records instructions for later builds that start FROM this image; nobase does not run them, so it does not record them either — remove it".into(),
            ),
        ),
        Instruction::Run(r) => (r.run.span.start, "RUN", Op::Refused(RUN_REFUSAL.into())),
        Instruction::From(f) => {
            // Stages split at FROM, so this is unreachable; refuse rather than panic.
            return Err(at(line_of(f.from.span.start), "FROM", "unexpected FROM"));
        }
        other => {
            return Err(Error::Usage(format!(
                "an instruction nobase does not know: {other:?}"
            )))
        }
    };
    Ok(Instr {
        line: line_of(start),
        keyword,
        op,
    })
}

fn copy_op(
    line: usize,
    kw: &'static str,
    add: bool,
    options: &[pd::Flag<'_>],
    src: &[pd::Source<'_>],
    dest: &str,
    text: &str,
) -> Result<Op> {
    let mut c = Copy {
        add,
        from: None,
        chown: None,
        chmod: None,
        excludes: Vec::new(),
        sources: Vec::new(),
        dest: dest.to_string(),
    };
    for f in options {
        let name = f.name.value.as_ref();
        let value = f.value.as_ref().map(|v| v.value.to_string());
        match (name, value) {
            ("from", Some(v)) if !add => c.from = Some(v),
            ("chown", Some(v)) => c.chown = Some(v),
            ("chmod", Some(v)) => c.chmod = Some(v),
            ("exclude", Some(v)) => c.excludes.push(v),
            // --link only changes how BuildKit caches; every nobase layer is already
            // independent of the ones below it.
            ("link", None) | ("link", Some(_)) => {}
            ("checksum" | "keep-git-dir", _) if add => {
                return Err(Error::Refused(format!(
                    "line {line}: ADD --{name} applies to downloads, and nobase does not fetch anything from the network"
                )))
            }
            (name, _) => {
                let known = if add {
                    "--chown, --chmod, --exclude, --link"
                } else {
                    "--from, --chown, --chmod, --exclude, --link"
                };
                return Err(at(
                    line,
                    kw,
                    format!("unknown or incomplete flag --{name} (nobase knows {known}, each as --flag=value)"),
                ));
            }
        }
    }
    for s in src {
        c.sources.push(match s {
            pd::Source::Path(p) => {
                if add && is_remote(&p.value) {
                    return Err(remote_refusal(line, &p.value));
                }
                Source::Path(p.value.to_string())
            }
            pd::Source::HereDoc(h) => Source::HereDoc {
                // The closing delimiter line follows the body.
                name: text
                    .get(h.span.end..)
                    .and_then(|t| t.lines().next())
                    .map(|l| l.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "heredoc".to_string()),
                text: h.value.to_string(),
                expand: h.expand,
            },
            _ => return Err(at(line, kw, "a kind of source nobase does not know")),
        });
    }
    Ok(Op::Copy(c))
}

fn healthcheck_op(line: usize, h: &pd::HealthcheckInstruction<'_>, escape: char) -> Result<Op> {
    let test = match &h.arguments {
        pd::HealthcheckArguments::None { .. } => {
            if !h.options.is_empty() {
                return Err(at(line, "HEALTHCHECK", "HEALTHCHECK NONE takes no options"));
            }
            return Ok(Op::Healthcheck(None));
        }
        pd::HealthcheckArguments::Cmd { arguments, .. } => {
            match cmdline(arguments, escape, line, "HEALTHCHECK")? {
                Cmdline::Shell(s) if s.trim().is_empty() => {
                    return Err(at(line, "HEALTHCHECK", "CMD needs a command after it"))
                }
                c => c,
            }
        }
        _ => return Err(at(line, "HEALTHCHECK", "expected CMD or NONE")),
    };
    let mut hc = Healthcheck {
        test,
        interval: 0,
        timeout: 0,
        start_period: 0,
        start_interval: 0,
        retries: 0,
    };
    for f in &h.options {
        let name = f.name.value.as_ref();
        let Some(value) = f.value.as_ref().map(|v| v.value.as_ref()) else {
            return Err(at(
                line,
                "HEALTHCHECK",
                format!("--{name} needs a value (--{name}=…)"),
            ));
        };
        let slot = match name {
            "interval" => &mut hc.interval,
            "timeout" => &mut hc.timeout,
            "start-period" => &mut hc.start_period,
            "start-interval" => &mut hc.start_interval,
            "retries" => {
                hc.retries = value.parse().map_err(|_| {
                    at(line, "HEALTHCHECK", format!("--retries={value:?} is not a non-negative number"))
                })?;
                continue;
            }
            _ => {
                return Err(at(
                    line,
                    "HEALTHCHECK",
                    format!("unknown flag --{name} (nobase knows --interval, --timeout, --start-period, --start-interval, --retries)"),
                ))
            }
        };
        let ns = parse_duration(value)
            .map_err(|e| at(line, "HEALTHCHECK", format!("--{name}={value:?}: {e}")))?;
        // Docker refuses durations between zero and one millisecond.
        if ns != 0 && ns < 1_000_000 {
            return Err(at(
                line,
                "HEALTHCHECK",
                format!("--{name}={value:?} is shorter than 1ms"),
            ));
        }
        *slot = ns;
    }
    Ok(Op::Healthcheck(Some(hc)))
}

/// Parses a Go duration (`30s`, `1m30s`, `1.5h`, `500ms`, `0`) into nanoseconds.
pub fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(
            "not a duration: use a number and a unit (ns, us, ms, s, m, h), e.g. 30s".into(),
        );
    }
    let bad =
        || "not a duration: use a number and a unit (ns, us, ms, s, m, h), e.g. 30s".to_string();
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." {
            return Err(bad());
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut value = int.checked_mul(scale).ok_or_else(bad)?;
        let mut div = 1u128;
        let mut frac_val = 0u128;
        for d in frac.chars().take(18) {
            frac_val = frac_val * 10 + u128::from(d.to_digit(10).ok_or_else(bad)?);
            div *= 10;
        }
        value += frac_val * scale / div;
        total = total.checked_add(value).ok_or_else(bad)?;
        rest = tail;
    }
    u64::try_from(total)
        .ok()
        .filter(|&t| t <= i64::MAX as u64)
        .ok_or_else(|| "duration too long".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_instructions_and_lines() {
        let df = parse(
            "# syntax=docker/dockerfile:1\nARG V=1\nFROM scratch AS Build\nCOPY --chmod=755 a /b/\n\nFROM build\nCOPY --from=build /b/a /a\nCMD echo \\\n  hi\nRUN make\n",
        )
        .unwrap();
        assert_eq!(df.global_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        assert_eq!(df.stages[0].name.as_deref(), Some("build"));
        assert_eq!(df.stages[0].line, 3);
        assert_eq!(df.stages[1].base, "build");
        let i = &df.stages[1].instrs;
        assert_eq!((i[0].line, i[0].keyword), (7, "COPY"));
        assert!(matches!(&i[1].op, Op::Cmd(Cmdline::Shell(s)) if s == "echo   hi"));
        assert!(matches!(&i[2].op, Op::Refused(m) if m == RUN_REFUSAL));
        assert_eq!(i[2].line, 10);
    }

    #[test]
    fn malformed_lines_name_line_and_cause() {
        for (text, want) in [
            (
                "FROM scratch\nFOO bar\n",
                "line 2: unknown instruction 'FOO'",
            ),
            (
                "FROM scratch\nCOPY a\n",
                "line 2: COPY instruction requires at least two arguments",
            ),
            (
                "FROM scratch\nCOPY --frm=x a b\n",
                "line 2: COPY: unknown or incomplete flag --frm",
            ),
            ("FROM scratch\nENV A=1 B\n", "line 2: ENV: \"B\" has no '='"),
            (
                "FROM scratch\nHEALTHCHECK --interval=5 CMD x\n",
                "line 2: HEALTHCHECK: --interval=\"5\"",
            ),
            ("COPY a b\n", "line 1: expected FROM"),
            (
                "FROM --plat=x scratch\n",
                "line 1: FROM: unknown flag --plat",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        let e = parse("FROM scratch\nADD https://example.com/x /x\n").unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e
            .to_string()
            .starts_with("line 2: ADD https://example.com/x: nobase does not fetch"));
    }

    #[test]
    fn directives_follow_buildkit() {
        // A repeated directive is refused, as BuildKit does; it used to drop them all.
        for (text, want) in [
            (
                "# escape=`\n# escape=\\\nFROM scratch\n",
                "line 2: only one escape parser directive can be used (line 1 has one",
            ),
            (
                "# syntax=docker/dockerfile:1\n#SYNTAX = docker/dockerfile:1\nFROM scratch\n",
                "line 2: only one syntax parser directive can be used",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().starts_with(want), "{text:?}: {e}");
        }
        // After the first line that is not a directive, `# escape=` is a comment.
        let df = parse("# escape=`\n\n# escape=\\\nFROM scratch\n").unwrap();
        assert_eq!(df.escape, '`');
        let df = parse("# note\n# escape=`\n# escape=`\nFROM scratch\n").unwrap();
        assert_eq!(df.escape, '\\');
        // `# syntax=` other than a release of docker/dockerfile is worth a warning.
        for (syntax, want) in [
            ("docker/dockerfile:1", None),
            ("docker/dockerfile", None),
            ("docker/dockerfile:1.7.1", None),
            ("docker.io/docker/dockerfile:1@sha256:ab", None),
            ("docker/dockerfile:1-labs", Some("labs channel")),
            ("docker/dockerfile:labs", Some("labs channel")),
            (
                "example.com/my/frontend:v1",
                Some("another Dockerfile frontend"),
            ),
            (
                "docker/dockerfile-upstream:master",
                Some("another Dockerfile frontend"),
            ),
            ("docker/dockerfile:experimental", Some("not a release")),
        ] {
            let df = parse(&format!("# syntax={syntax}\nFROM scratch\n")).unwrap();
            let got = df.warnings.first().map(|w| w.message.clone());
            match want {
                None => assert!(got.is_none(), "{syntax}: {got:?}"),
                Some(w) => {
                    let got = got.unwrap_or_default();
                    assert!(
                        got.starts_with(&format!("line 1: # syntax={syntax} ")),
                        "{got}"
                    );
                    assert!(got.contains(w), "{syntax}: {got}");
                }
            }
        }
    }

    #[test]
    fn healthcheck_options() {
        let df = parse("FROM scratch\nHEALTHCHECK --interval=1m30s --retries=3 CMD [\"/hc\"]\n")
            .unwrap();
        let Op::Healthcheck(Some(h)) = &df.stages[0].instrs[0].op else {
            panic!()
        };
        assert_eq!(h.interval, 90_000_000_000);
        assert_eq!(h.retries, 3);
        assert_eq!(h.test, Cmdline::Exec(vec!["/hc".into()]));
    }

    #[test]
    fn arbitrary_text_never_panics() {
        // Fragments that poke at every parser path, combined pseudo-randomly.
        const PIECES: &[&str] = &[
            "FROM ",
            "scratch",
            " AS x",
            "\n",
            "COPY ",
            "ADD ",
            "--from=",
            "--chown=",
            "a b",
            "\"",
            "'",
            "\\",
            "`",
            "${",
            "}",
            "$",
            ":-",
            ":+",
            "[",
            "]",
            "\"x\",",
            "ENV ",
            "ARG ",
            "LABEL ",
            "=",
            "HEALTHCHECK ",
            "--interval=",
            "1.5s",
            "CMD ",
            "NONE",
            "<<EOF",
            "EOF",
            "# escape=`\n",
            "RUN ",
            "ONBUILD ",
            "\u{feff}",
            "é",
            "\r\n",
            "WORKDIR ",
            "..",
            "/",
            "EXPOSE ",
            "1-2/udp",
            "SHELL ",
            "\t",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let empty = std::collections::BTreeMap::new();
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push_str(PIECES[(x % PIECES.len() as u64) as usize]);
            }
            let _ = parse(&text);
            let _ = lex::word(&text, '\\', &empty);
            let _ = lex::words(&text, '`', &empty);
            let _ = lex::name_values(&text, '\\', true);
            let _ = lex::expand_text(&text, '\\', &empty);
            let _ = lex::join_continuations(&text, '\\');
            let _ = super::super::pattern::Pattern::new(&text, true).map(|p| p.matches(&text));
            let _ = parse_duration(&text);
        }
    }

    #[test]
    fn durations() {
        for (s, want) in [
            ("0", Some(0)),
            ("30s", Some(30_000_000_000)),
            ("1.5h", Some(5_400_000_000_000)),
            ("500ms", Some(500_000_000)),
            ("1m30s", Some(90_000_000_000)),
            ("2us", Some(2_000)),
            ("5", None),
            ("", None),
            ("-1s", None),
            ("1x", None),
            ("99999999999h", None),
        ] {
            assert_eq!(parse_duration(s).ok(), want, "{s}");
        }
    }
}
