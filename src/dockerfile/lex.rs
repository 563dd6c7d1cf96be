//! Docker's word rules for Dockerfile arguments: quotes, the escape character, and
//! variable substitution (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}`,
//! `${VAR-default}`, `${VAR+alt}`, `${VAR:?message}`), and the `KEY=VALUE` word splitting
//! of `ENV`, `LABEL` and `ARG`. The behaviour follows BuildKit's shell lexer so that a
//! Dockerfile means the same thing here as under `docker build`.

/// Looks up a variable: `None` when it is not set (set-but-empty is `Some("")`).
pub trait Vars {
    /// The value of `name`.
    fn get(&self, name: &str) -> Option<String>;
}

impl Vars for std::collections::BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::BTreeMap::get(self, name).cloned()
    }
}

/// Processes one word the way Docker does for `COPY`, `WORKDIR`, `USER`, `ENV` values…:
/// quotes are removed, the escape character escapes the next character, variables are
/// substituted. Whitespace is kept (the result is one string).
pub fn word(s: &str, escape: char, vars: &dyn Vars) -> Result<String, String> {
    let mut lx = Lexer::new(s, escape, vars);
    let mut out = Out::single();
    lx.run(None, &mut out)?;
    Ok(out.text)
}

/// Processes a line into words, splitting on unquoted whitespace (also inside the value
/// of an unquoted `$VAR`), as Docker does where an instruction takes several words.
pub fn words(s: &str, escape: char, vars: &dyn Vars) -> Result<Vec<String>, String> {
    let mut lx = Lexer::new(s, escape, vars);
    let mut out = Out::split();
    lx.run(None, &mut out)?;
    out.finish_word();
    Ok(out.words)
}

/// Substitutes variables in free text (a here-document) without touching quotes; the
/// escape character protects a following `$` or itself.
pub fn expand_text(s: &str, escape: char, vars: &dyn Vars) -> Result<String, String> {
    let mut lx = Lexer::new(s, escape, vars);
    let mut out = String::new();
    while let Some(c) = lx.peek() {
        if c == '$' {
            out.push_str(&lx.dollar()?);
            continue;
        }
        lx.pos += 1;
        match lx.peek() {
            Some(n) if c == escape && (n == '$' || n == escape) => {
                lx.pos += 1;
                out.push(n);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// What the lexer produces: the whole text, and (when splitting) the words.
struct Out {
    text: String,
    split: bool,
    words: Vec<String>,
    cur: String,
    /// The current word exists even if empty (`""` is a word).
    cur_started: bool,
}

impl Out {
    fn single() -> Out {
        Out {
            text: String::new(),
            split: false,
            words: Vec::new(),
            cur: String::new(),
            cur_started: false,
        }
    }
    fn split() -> Out {
        Out {
            split: true,
            ..Out::single()
        }
    }
    /// A character that may end a word when it is whitespace.
    fn plain(&mut self, c: char) {
        self.text.push(c);
        if self.split && c.is_whitespace() {
            self.finish_word();
        } else {
            self.cur.push(c);
            self.cur_started = true;
        }
    }
    /// Characters that are part of the word whatever they are (quoted or escaped).
    fn raw(&mut self, s: &str) {
        self.text.push_str(s);
        self.cur.push_str(s);
        self.cur_started = true;
    }
    /// The value of an unquoted variable: split on whitespace like the shell does.
    fn expanded(&mut self, s: &str) {
        for c in s.chars() {
            self.plain(c);
        }
    }
    fn finish_word(&mut self) {
        if self.cur_started {
            self.words.push(std::mem::take(&mut self.cur));
            self.cur_started = false;
        }
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a dyn Vars,
}

impl<'a> Lexer<'a> {
    fn new(s: &str, escape: char, vars: &'a dyn Vars) -> Lexer<'a> {
        Lexer {
            chars: s.chars().collect(),
            pos: 0,
            escape,
            vars,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until `stop` (consumed) or the end. Returns whether `stop` was found.
    fn run(&mut self, stop: Option<char>, out: &mut Out) -> Result<bool, String> {
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok(true);
            }
            match c {
                '\'' => {
                    let s = self.single_quoted()?;
                    out.raw(&s);
                }
                '"' => {
                    let s = self.double_quoted()?;
                    out.raw(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    out.expanded(&s);
                }
                _ => {
                    self.pos += 1;
                    if c == self.escape {
                        // The escape character makes the next one literal; alone at the
                        // end it disappears.
                        match self.next() {
                            Some(n) => out.raw(&n.to_string()),
                            None => break,
                        }
                    } else {
                        out.plain(c);
                    }
                }
            }
        }
        Ok(false)
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some('$') => s.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    if c == self.escape {
                        // Inside double quotes only ", $ and the escape itself can be
                        // escaped; any other escape character stays as written.
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                s.push(n);
                            }
                            Some(_) => s.push(c),
                        }
                    } else {
                        s.push(c);
                    }
                }
            }
        }
    }

    /// A variable name: letters, digits and `_`; a leading digit or a special parameter
    /// (`$@`, `$?`…) is a name on its own.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && "@*#?-$!".contains(c) {
                self.pos += 1;
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// The text of a `${…}` modifier's word, up to the closing brace (processed itself:
    /// quotes and nested variables work there too).
    fn modifier_word(&mut self) -> Result<String, String> {
        let mut out = Out::single();
        if !self.run(Some('}'), &mut out)? {
            return Err("syntax error: missing '}'".into());
        }
        Ok(out.text)
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.vars.get(&name).unwrap_or_default());
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.name();
        let value = self.vars.get(&name);
        match self.next() {
            None => Err("syntax error: missing '}'".into()),
            Some('}') => Ok(value.unwrap_or_default()),
            Some(':') => {
                let modifier = self.next();
                let word = self.modifier_word()?;
                let empty = value.as_deref().unwrap_or("").is_empty();
                match modifier {
                    Some('-') => Ok(if empty { word } else { value.unwrap_or_default() }),
                    Some('+') => Ok(if empty { String::new() } else { word }),
                    // BuildKit's words ("NAME: message"), then what happened, which
                    // a message of the author's own may not say.
                    Some('?') if empty => Err(if word.is_empty() {
                        format!("{name}: is not allowed to be empty")
                    } else if value.is_none() {
                        format!("{name}: {word} ({name} is not set)")
                    } else {
                        format!("{name}: {word} ({name} is empty)")
                    }),
                    Some('?') => Ok(value.unwrap_or_default()),
                    Some(m) => Err(format!("unsupported modifier ({m}) in substitution")),
                    None => Err("syntax error: missing '}'".into()),
                }
            }
            Some(m @ ('-' | '+' | '?')) => {
                let word = self.modifier_word()?;
                match (m, value) {
                    ('-', None) => Ok(word),
                    ('+', Some(_)) => Ok(word),
                    ('+', None) => Ok(String::new()),
                    ('?', None) => Err(if word.is_empty() {
                        format!("{name}: is not allowed to be unset")
                    } else {
                        format!("{name}: {word} ({name} is not set)")
                    }),
                    (_, Some(v)) => Ok(v),
                    (_, None) => Ok(String::new()),
                }
            }
            Some(m) => Err(format!(
                "unsupported modifier ({m}) in substitution of ${{{name}…}}; nobase supports :- :+ :? - + ?"
            )),
        }
    }
}

/// Splits the arguments of `ENV`, `LABEL` and `ARG` into words on unquoted whitespace,
/// keeping quotes and escapes in the words (they are processed later, per value), as
/// Docker's parser does.
pub fn split_keeping_quotes(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A quoted empty string ("") is still a word.
    let mut started = false;
    let mut quote: Option<char> = None;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match quote {
            None => {
                if c.is_whitespace() {
                    if started {
                        words.push(std::mem::take(&mut word));
                        started = false;
                    }
                    continue;
                }
                started = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == escape {
                    // The escape and what it escapes stay together in the word.
                    match it.next() {
                        Some(n) => {
                            word.push(c);
                            word.push(n);
                        }
                        None => continue,
                    }
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                    word.push(c);
                } else if c == escape && q != '\'' {
                    match it.next() {
                        Some(n) => {
                            word.push(c);
                            word.push(n);
                        }
                        None => quote = None,
                    }
                } else {
                    word.push(c);
                }
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Parses `KEY=VALUE …` (or the legacy `KEY VALUE` form when `legacy` allows it) into
/// raw, unprocessed pairs.
pub fn name_values(
    s: &str,
    escape: char,
    legacy: bool,
) -> Result<Vec<(String, Option<String>)>, String> {
    let words = split_keeping_quotes(s, escape);
    let Some(first) = words.first() else {
        return Err("needs at least one argument".into());
    };
    if legacy && !first.contains('=') {
        // `ENV KEY some value`: the rest of the line, whitespace and all, is the value.
        let t = s.trim_start();
        let split = t.find(char::is_whitespace);
        return match split {
            Some(i) if !t[i..].trim().is_empty() => Ok(vec![(
                t[..i].to_string(),
                Some(t[i..].trim_start().to_string()),
            )]),
            _ => Err(format!(
                "{first:?} has no value; write KEY=VALUE (or the older KEY VALUE)"
            )),
        };
    }
    words
        .iter()
        .enumerate()
        .map(|(i, w)| match w.split_once('=') {
            Some(("", _)) => Err(format!("{w:?} has an empty name; write KEY=VALUE")),
            Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
            None if legacy => Err(match cut_substitution(&words, i) {
                Some(fix) => fix,
                None => {
                    format!("{w:?} has no '='; write KEY=VALUE (each word of this form needs one)")
                }
            }),
            None => Ok((w.clone(), None)),
        })
        .collect()
}

/// When word `i` (which has no `=`) is the rest of a `${…}` that an earlier word opened
/// (`X=${V:?must be set}`): what happened and the fix. Docker splits these words at
/// unquoted spaces before substituting, even inside `${…}` (BuildKit: "can't find = in
/// \"be\""), so the same is refused here, with the quoting that keeps it one word.
fn cut_substitution(words: &[String], i: usize) -> Option<String> {
    // The `${` still open after each word, counted from the word that opened it.
    let start = (0..i).rev().find(|&j| {
        let joined = words[j..i].join(" ");
        let mut depth = 0usize;
        let mut chars = joined.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek() == Some(&'{') {
                chars.next();
                depth += 1;
            } else if c == '}' {
                depth = depth.saturating_sub(1);
            }
        }
        depth > 0 && words[j].contains('=')
    })?;
    let end = (i..words.len())
        .find(|&k| words[k].contains('}'))
        .unwrap_or(words.len() - 1);
    let whole = words[start..=end].join(" ");
    let (key, value) = whole.split_once('=')?;
    let fix = if value.contains('"') {
        "quote the value".to_string()
    } else {
        format!("quote the value: {key}=\"{value}\"")
    };
    Some(format!(
        "{:?} has no '=': the words of this instruction are split at spaces before variables are substituted, even inside ${{…}}, as Docker does, so {:?} was cut there; {fix}",
        words[i], words[start]
    ))
}

/// Removes line continuations (the escape character at the end of a line) from text
/// kept as written, such as the shell form of `CMD`, the way Docker's parser joins
/// lines: comment lines and empty lines inside a continued instruction are dropped.
pub fn join_continuations(s: &str, escape: char) -> String {
    let mut out = String::new();
    let mut lines = s.split('\n').peekable();
    let mut continued = false;
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if continued {
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
        }
        let trimmed = line.trim_end();
        if lines.peek().is_some() && trimmed.ends_with(escape) {
            out.push_str(&trimmed[..trimmed.len() - escape.len_utf8()]);
            continued = true;
        } else {
            out.push_str(line);
            if lines.peek().is_some() {
                out.push('\n');
            }
            continued = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn vars() -> BTreeMap<String, String> {
        [("A", "1"), ("EMPTY", ""), ("SP", "x y"), ("HOME", "/root")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn words_process_like_docker() {
        let v = vars();
        for (input, want) in [
            ("plain", Ok("plain")),
            ("$A", Ok("1")),
            ("${A}b", Ok("1b")),
            ("$Ab", Ok("")),
            ("$UNSET", Ok("")),
            ("${UNSET:-def}", Ok("def")),
            ("${EMPTY:-def}", Ok("def")),
            ("${EMPTY-def}", Ok("")),
            ("${UNSET-def}", Ok("def")),
            ("${A:-def}", Ok("1")),
            ("${A:+alt}", Ok("alt")),
            ("${EMPTY:+alt}", Ok("")),
            ("${EMPTY+alt}", Ok("alt")),
            ("${UNSET+alt}", Ok("")),
            ("${UNSET:-${A}x}", Ok("1x")),
            ("'$A'", Ok("$A")),
            ("\"$A\"", Ok("1")),
            ("\"a\\\"b\"", Ok("a\"b")),
            ("\"a\\nb\"", Ok("a\\nb")),
            ("\\$A", Ok("$A")),
            ("a\\ b", Ok("a b")),
            ("$", Ok("$")),
            ("a$", Ok("a$")),
            ("$1", Ok("")),
            ("${A", Err(())),
            ("${}", Err(())),
            ("${A#x}", Err(())),
            ("${UNSET:?needed}", Err(())),
            ("'open", Err(())),
            ("\"open", Err(())),
            ("x y", Ok("x y")),
        ] {
            let got = word(input, '\\', &v).map_err(|_| ());
            assert_eq!(got.as_deref().map_err(|_| ()), want, "{input:?}");
        }
        assert_eq!(word("`$A", '`', &v).unwrap(), "$A");
        assert_eq!(word("a\\b", '`', &v).unwrap(), "a\\b");
        assert_eq!(
            expand_text("it's \"$A\" \\$A\n", '\\', &v).unwrap(),
            "it's \"1\" $A\n"
        );
    }

    #[test]
    fn words_split_on_unquoted_space_and_expansions() {
        let v = vars();
        assert_eq!(
            words("a \"b c\" $SP '' d\\ e", '\\', &v).unwrap(),
            ["a", "b c", "x", "y", "", "d e"]
        );
        assert_eq!(words("\"$SP\"", '\\', &v).unwrap(), ["x y"]);
        assert!(words("", '\\', &v).unwrap().is_empty());
    }

    #[test]
    fn name_value_forms() {
        let kv = |s: &str, legacy| name_values(s, '\\', legacy);
        assert_eq!(
            kv("A=1 B=\"two words\"   C=three", true).unwrap(),
            [
                ("A".into(), Some("1".into())),
                ("B".into(), Some("\"two words\"".into())),
                ("C".into(), Some("three".into()))
            ]
        );
        assert_eq!(
            kv("D four  five", true).unwrap(),
            [("D".into(), Some("four  five".into()))]
        );
        assert_eq!(
            kv("\"x y\"=z w=1", true).unwrap()[0],
            ("\"x y\"".into(), Some("z".into()))
        );
        assert_eq!(
            kv("A=a\\ b", true).unwrap(),
            [("A".into(), Some("a\\ b".into()))]
        );
        assert!(kv("A=1 B", true).is_err());
        // A `${…}` with spaces is cut as Docker cuts it; the error says so.
        let e = kv("X=${UNDEF:?must be set} Y=1", true).unwrap_err();
        assert_eq!(
            e,
            "\"be\" has no '=': the words of this instruction are split at spaces before variables are substituted, even inside ${…}, as Docker does, so \"X=${UNDEF:?must\" was cut there; quote the value: X=\"${UNDEF:?must be set}\""
        );
        assert!(kv("A=${B} C", true)
            .unwrap_err()
            .starts_with("\"C\" has no '='; write KEY=VALUE"));
        assert_eq!(
            word(
                &kv("X=\"${UNDEF:?must be set}\"", true).unwrap()[0]
                    .1
                    .clone()
                    .unwrap(),
                '\\',
                &vars()
            ),
            Err("UNDEF: must be set (UNDEF is not set)".to_string())
        );
        assert_eq!(
            word("${EMPTY:?must be set}", '\\', &vars()),
            Err("EMPTY: must be set (EMPTY is empty)".to_string())
        );
        assert!(kv("=1", true).is_err());
        assert!(kv("D", true).is_err());
        assert_eq!(
            kv("V N=2", false).unwrap(),
            [("V".into(), None), ("N".into(), Some("2".into()))]
        );
    }

    #[test]
    fn continuations_join_like_docker() {
        assert_eq!(
            join_continuations("echo hi \\\n  # note\n\n  there", '\\'),
            "echo hi   there"
        );
        assert_eq!(join_continuations("a `\r\n b", '`'), "a  b");
        assert_eq!(
            join_continuations("no continuation\\", '\\'),
            "no continuation\\"
        );
    }
}
