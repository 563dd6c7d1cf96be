//! Path patterns: the wildcards of `COPY` sources (Go's `filepath.Match`: `*`, `?`,
//! `[…]`, escapes, never crossing `/`) and `.dockerignore` files (the same plus `**`
//! across directories, `!` exceptions, last match wins, a pattern that matches a parent
//! directory matches everything below it). Matching is a memoized walk, so no pattern
//! can make it take exponential time.

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// This exact character.
    Lit(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**/` (or `**` inside a pattern): any run of whole directories, possibly none.
    Dirs,
    /// `**` at the end: anything at all.
    All,
    /// `[…]`: one character (not `/`) in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    toks: Vec<Tok>,
}

/// True when `s` has a wildcard character (so it names a pattern, not a path).
pub fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Pattern {
    /// Compiles a pattern; `double_star` enables `**` (dockerignore). Fails on an
    /// unterminated `[` class, as Go's matcher does.
    pub fn new(p: &str, double_star: bool) -> Result<Pattern, String> {
        let chars: Vec<char> = p.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if double_star && chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    toks.push(if i == chars.len() {
                        Tok::All
                    } else {
                        Tok::Dirs
                    });
                }
                '*' => {
                    // `**` without double-star support is simply two stars.
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                }
                '?' => toks.push(Tok::One),
                '\\' => match chars.get(i) {
                    Some(&n) => {
                        i += 1;
                        toks.push(Tok::Lit(n));
                    }
                    None => return Err(format!("pattern {p:?} ends with a lone '\\'")),
                },
                '[' => {
                    let mut negated = false;
                    if matches!(chars.get(i), Some('^' | '!')) {
                        negated = true;
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(&c) = chars.get(i) else {
                            return Err(format!("pattern {p:?} has an unterminated '['"));
                        };
                        i += 1;
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        let lo = if c == '\\' {
                            let Some(&n) = chars.get(i) else {
                                return Err(format!("pattern {p:?} has an unterminated '['"));
                            };
                            i += 1;
                            n
                        } else {
                            c
                        };
                        let mut hi = lo;
                        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']')
                        {
                            i += 1;
                            let n = chars[i];
                            i += 1;
                            hi = if n == '\\' {
                                let Some(&e) = chars.get(i) else {
                                    return Err(format!("pattern {p:?} has an unterminated '['"));
                                };
                                i += 1;
                                e
                            } else {
                                n
                            };
                            if hi < lo {
                                return Err(format!("pattern {p:?} has a reversed range"));
                            }
                        }
                        ranges.push((lo, hi));
                    }
                    toks.push(Tok::Class { negated, ranges });
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern { toks })
    }

    /// True when the whole of `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let s: Vec<char> = path.chars().collect();
        let width = s.len() + 1;
        // memo[t * width + j]: 0 unknown, 1 no, 2 yes.
        let mut memo = vec![0u8; (self.toks.len() + 1) * width];
        self.walk(0, 0, &s, &mut memo)
    }

    fn walk(&self, t: usize, j: usize, s: &[char], memo: &mut [u8]) -> bool {
        let width = s.len() + 1;
        match memo[t * width + j] {
            1 => return false,
            2 => return true,
            _ => {}
        }
        let r = match self.toks.get(t) {
            None => j == s.len(),
            Some(Tok::Lit(c)) => s.get(j) == Some(c) && self.walk(t + 1, j + 1, s, memo),
            Some(Tok::One) => {
                s.get(j).is_some_and(|&c| c != '/') && self.walk(t + 1, j + 1, s, memo)
            }
            Some(Tok::Class { negated, ranges }) => {
                s.get(j).is_some_and(|&c| {
                    c != '/' && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }) && self.walk(t + 1, j + 1, s, memo)
            }
            Some(Tok::Star) => {
                self.walk(t + 1, j, s, memo)
                    || (s.get(j).is_some_and(|&c| c != '/') && self.walk(t, j + 1, s, memo))
            }
            Some(Tok::All) => true,
            Some(Tok::Dirs) => {
                self.walk(t + 1, j, s, memo)
                    || (j..s.len()).any(|k| s[k] == '/' && self.walk(t + 1, k + 1, s, memo))
            }
        };
        memo[t * width + j] = if r { 2 } else { 1 };
        r
    }
}

/// One line of a `.dockerignore`.
#[derive(Clone, Debug)]
struct Rule {
    pattern: Pattern,
    exception: bool,
}

/// The rules of a `.dockerignore` file.
#[derive(Clone, Debug, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

impl Ignore {
    /// Parses a `.dockerignore`: one pattern per line, `#` comments, `!` exceptions;
    /// patterns are cleaned like paths and taken relative to the context root.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, p) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(p);
            if cleaned.is_empty() {
                continue;
            }
            let pattern = Pattern::new(&cleaned, true)
                .map_err(|e| format!(".dockerignore line {}: {e}", n + 1))?;
            rules.push(Rule { pattern, exception });
        }
        Ok(Ignore { rules })
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when some rule is an exception (so an excluded directory may still have
    /// included files below it).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// True when the context path `rel` (relative, `/`-separated) is excluded: the last
    /// rule matching it, or one of its parent directories, decides.
    pub fn excluded(&self, rel: &str) -> bool {
        let mut excluded = false;
        for r in &self.rules {
            let hit = r.pattern.matches(rel)
                || rel
                    .match_indices('/')
                    .any(|(i, _)| r.pattern.matches(&rel[..i]));
            if hit {
                excluded = !r.exception;
            }
        }
        excluded
    }
}

/// Cleans a path the way Go's `filepath.Clean` does, then drops a leading `/`: `.` and
/// empty components go, `..` removes the previous component (and stops at the root).
pub fn clean(p: &str) -> String {
    // The only failure is a path that cleans to the root itself.
    crate::build::bundle::lexical(p)
        .map(|s| s.trim_start_matches('/').to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_wildcards_follow_go() {
        for (p, s, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "dir/a.txt", false),
            ("dir/*", "dir/a", true),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("**", "a", true),
            ("**", "a/b", false),
            ("*a*a*a*a*a*a*a*a*a*b", &"a".repeat(60), false),
        ] {
            assert_eq!(Pattern::new(p, false).unwrap().matches(s), want, "{p} {s}");
        }
        assert!(Pattern::new("[a", false).is_err());
        assert!(has_wildcards("a*") && !has_wildcards("a.txt"));
    }

    #[test]
    fn dockerignore_semantics() {
        let ig = Ignore::parse(
            "# comment\n*.log\n/build\n**/tmp\nsecret*\n!secret.keep\ndocs/**\nnode_modules\n!node_modules/keep.js\n",
        )
        .unwrap();
        for (path, want) in [
            ("a.log", true),
            ("sub/a.log", false),
            ("build", true),
            ("build/out/x", true),
            ("tmp", true),
            ("x/y/tmp/z", true),
            ("secret.txt", true),
            ("secret.keep", false),
            ("docs", false),
            ("docs/a/b", true),
            ("node_modules/x.js", true),
            ("node_modules/keep.js", false),
            ("src/main.rs", false),
        ] {
            assert_eq!(ig.excluded(path), want, "{path}");
        }
        assert!(ig.has_exceptions());
        assert!(Ignore::parse("").unwrap().is_empty());
        assert!(Ignore::parse("[x").is_err());
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean("/a/./b//c/"), "a/b/c");
        assert_eq!(clean("../../a"), "a");
        assert_eq!(clean("a/../../b"), "b");
        assert_eq!(clean("."), "");
    }
}
