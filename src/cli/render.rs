//! Shared rendering helpers: human sizes, aligned tables, JSON on stdout, colour.

use std::borrow::Cow;
use std::io::{self, IsTerminal, Write};

/// True when text for `stream` may be coloured: it is a terminal and `NO_COLOR` is
/// unset or empty (no-color.org). Commands never colour `--json`.
pub fn color_for(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in the SGR colour `code` (`"32"` green, `"1;31"` bold red) when `color`.
pub fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `s` safe to print on a terminal: control characters, newlines included (an image's
/// file names and history, an executable's strings, are anyone's bytes, and an escape
/// sequence or a line break in them would drive the terminal or forge a line of output),
/// are shown escaped, `\x1b`, `\n`, `\u{9b}`, as `ls -b` does.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        escape_char(c, &mut out);
    }
    Cow::Owned(out)
}

/// Characters that act instead of showing: controls, the bidirectional overrides,
/// embeddings, isolates and marks that make a name read in another order than it is
/// (`evil\u{202e}txt.exe` shows as `evilexe.txt`), the line and paragraph separators, and
/// the invisible ones that make two names look the same (the zero-width space, word
/// joiners, the byte-order mark, soft hyphens, the combining grapheme joiner, tag
/// characters). The zero-width joiners (U+200C, U+200D), which Persian, Indic scripts
/// and emoji need, are left as they are.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c as u32,
            0xAD | 0x34F
                | 0x200B
                | 0x200E..=0x200F
                | 0x2028..=0x202E
                | 0x2060..=0x2064
                | 0x2066..=0x2069
                | 0xFEFF
                | 0xE0000..=0xE007F
        )
}

fn escape_char(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        c if hidden(c) && (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// A writer that shows the ASCII control characters written through it escaped
/// (`\x1b`), newlines and tabs excepted: for human output made of strings read from
/// executables and images (see [`printable`]).
pub struct Escaping<W: Write>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let keep = |c: char| c == '\n' || c == '\t';
        match std::str::from_utf8(buf) {
            // Formatting writes whole strings: C1 controls (U+0080–U+009F) are caught too.
            Ok(text) if text.chars().any(|c| hidden(c) && !keep(c)) => {
                let mut out = String::with_capacity(text.len() + 8);
                for c in text.chars() {
                    if keep(c) {
                        out.push(c);
                    } else {
                        escape_char(c, &mut out);
                    }
                }
                self.0.write_all(out.as_bytes())?;
            }
            Ok(_) => self.0.write_all(buf)?,
            Err(_) => {
                let mut start = 0;
                for (i, &b) in buf.iter().enumerate() {
                    if (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f {
                        self.0.write_all(&buf[start..i])?;
                        write!(self.0, "\\x{b:02x}")?;
                        start = i + 1;
                    }
                }
                self.0.write_all(&buf[start..])?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `1 layer`, `3 layers`: a count with its noun in the number it takes (`noun` is the
/// singular; the plural adds `s`).
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `812 B`, `3.4 KiB`, `1.2 MiB`… (binary units, one decimal above KiB).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Whether a JSON document went to stdout (so a failure after it adds none).
static PRINTED_JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints one JSON document (pretty, newline-terminated) on stdout.
pub fn print_json(v: &impl serde::Serialize) -> io::Result<()> {
    PRINTED_JSON.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)
}

/// With `--json`, a command that fails before its document prints this one instead, so
/// stdout always holds one JSON document: `{"error": {"exit_code": N, "message": …}}`,
/// the message as stderr has it.
pub fn print_json_error(exit_code: i32, message: &str) {
    if !PRINTED_JSON.load(std::sync::atomic::Ordering::Relaxed) {
        let _ = print_json(&serde_json::json!({
            "error": {"exit_code": exit_code, "message": message}
        }));
    }
}

/// Prints rows as left-aligned columns separated by two spaces.
pub fn print_table(rows: &[Vec<String>]) -> io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = io::stdout().lock();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{count, human_size, printable, Cow};

    #[test]
    fn counts_take_the_singular_for_one() {
        assert_eq!(count(1, "layer"), "1 layer");
        assert_eq!(count(0, "file"), "0 files");
        assert_eq!(count(2, "image"), "2 images");
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert!(matches!(printable("/app/hello"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(printable("x\ny\tz\u{7f}"), "x\\ny\\tz\\x7f");
        assert_eq!(printable("csi\u{9b}31m é"), "csi\\u{9b}31m é");
        assert_eq!(printable("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(printable("日本\u{2067}x"), "日本\\u{2067}x");
        // Invisible: two names that look the same are told apart.
        assert_eq!(printable("app\u{200b}"), "app\\u{200b}");
        assert_eq!(printable("\u{feff}x\u{ad}"), "\\u{feff}x\\u{ad}");
        assert_eq!(printable("a\u{2028}b\u{e0041}"), "a\\u{2028}b\\u{e0041}");
        // Joiners that scripts and emoji need stay.
        assert!(matches!(printable("می\u{200c}خواهم"), Cow::Borrowed(_)));
        let mut w = super::Escaping(Vec::new());
        std::io::Write::write_all(&mut w, "c1 \u{9b}31m\n".as_bytes()).unwrap();
        assert_eq!(w.0, "c1 \\u{9b}31m\n".as_bytes());
        let mut w = super::Escaping(Vec::new());
        std::io::Write::write_all(&mut w, "a\u{1b}[1mé\n\tb\u{7f}".as_bytes()).unwrap();
        assert_eq!(w.0, "a\\x1b[1mé\n\tb\\x7f".as_bytes());
        // Bytes that are not UTF-8: ASCII controls are still escaped, the rest kept.
        let mut w = super::Escaping(Vec::new());
        std::io::Write::write_all(&mut w, b"\xff\x1b[2J\n").unwrap();
        assert_eq!(w.0, b"\xff\\x1b[2J\n");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(872 * 1024), "872 KiB");
        assert_eq!(human_size(90 << 20), "90.0 MiB");
    }
}
