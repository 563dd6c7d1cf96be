//! `nobase tree --interactive`: dive's two panes on a terminal — the layers on the left,
//! the selected layer's changes (or the merged tree) on the right — drawn with plain
//! escape sequences on the alternate screen, keys read in raw mode. The terminal is put
//! back as it was however the view ends (a key, an error, a panic).

use super::{layer, merged, percent};
use crate::cli::render::{human_size, printable};
use nobase::explore::Analysis;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Merged,
    Quit,
    Other,
}

/// The key at the start of what one read returned (a whole escape sequence arrives in
/// one read on a terminal).
fn key(bytes: &[u8]) -> Key {
    match bytes {
        b"q" | b"Q" | [0x1b] | [0x03] => Key::Quit,
        b"k" | b"\x1b[A" | b"\x1bOA" => Key::Up,
        b"j" | b"\x1b[B" | b"\x1bOB" => Key::Down,
        b"b" | b"\x1b[5~" => Key::PageUp,
        b" " | b"\x1b[6~" => Key::PageDown,
        b"g" | b"\x1b[H" | b"\x1b[1~" | b"\x1bOH" => Key::Top,
        b"G" | b"\x1b[F" | b"\x1b[4~" | b"\x1bOF" => Key::Bottom,
        b"m" | b"\t" => Key::Merged,
        _ => Key::Other,
    }
}

/// Raw mode and the alternate screen, undone on drop.
struct Terminal {
    saved: libc::termios,
}

impl Terminal {
    fn enter() -> io::Result<Terminal> {
        let fd = io::stdin().as_raw_fd();
        // SAFETY: termios is plain data, filled by tcgetattr before it is read.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr/tcsetattr on stdin with a valid termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
        raw.c_iflag &= !(libc::IXON | libc::ICRNL);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: as above.
        if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let t = Terminal { saved };
        let mut out = io::stdout().lock();
        out.write_all(b"\x1b[?1049h\x1b[?25l")?;
        out.flush()?;
        Ok(t)
    }

    /// Rows and columns of the terminal (24×80 when it does not say).
    fn size() -> (usize, usize) {
        // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ on stdout with a valid winsize.
        let ok = unsafe { libc::ioctl(io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_row > 0 && ws.ws_col > 0 {
            (ws.ws_row as usize, ws.ws_col as usize)
        } else {
            (24, 80)
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let mut out = io::stdout().lock();
        let _ = out.write_all(b"\x1b[0m\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
        // SAFETY: restores the settings tcgetattr read, on the same descriptor.
        unsafe {
            libc::tcsetattr(io::stdin().as_raw_fd(), libc::TCSAFLUSH, &self.saved);
        }
    }
}

/// `line` cut to `width` columns: escape sequences pass through without counting, and
/// colour is reset at the end. Every other character counts as one column.
fn fit(line: &str, width: usize) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut cols = 0;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            out.push(c);
            // CSI: ESC [ parameters… final byte (@ to ~).
            if chars.peek() == Some(&'[') {
                out.push(chars.next().unwrap_or('['));
                for c in chars.by_ref() {
                    out.push(c);
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        if c.is_control() {
            continue;
        }
        if cols == width {
            break;
        }
        out.push(c);
        cols += 1;
    }
    out.push_str("\x1b[0m");
    out.push_str(&" ".repeat(width - cols));
    out
}

/// What the view shows.
struct View<'a> {
    a: &'a Analysis,
    /// The selected layer (an index into `a.layers`).
    selected: usize,
    /// The merged tree instead of the selected layer.
    merged: bool,
    /// The first line shown of the right pane.
    scroll: usize,
    /// The right pane's lines, drawn for the current selection.
    lines: Vec<String>,
}

impl View<'_> {
    fn render_right(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        if self.merged {
            merged(&mut buf, self.a, true)?;
        } else {
            layer(&mut buf, self.a, &self.a.layers[self.selected], true)?;
        }
        self.lines = String::from_utf8_lossy(&buf)
            .lines()
            .map(str::to_string)
            .collect();
        Ok(())
    }

    /// The whole screen, one string.
    fn frame(&self, rows: usize, cols: usize) -> String {
        let left_w = (cols / 3).clamp(20, 48).min(cols.saturating_sub(10));
        let right_w = cols.saturating_sub(left_w + 3);
        let body = rows.saturating_sub(3);
        let a = self.a;
        let title = format!(
            "\x1b[1m{} ({})\x1b[0m  {} in files, wasted {}, efficiency {}",
            printable(&a.image),
            printable(&a.platform),
            human_size(a.total_bytes),
            human_size(a.wasted_bytes),
            percent(a.efficiency)
        );
        let mut left = vec![format!("\x1b[1mLayers\x1b[0m")];
        for (i, l) in a.layers.iter().enumerate() {
            let text = format!(
                "{:>3} {:>8}  {}",
                l.index,
                human_size(l.file_bytes),
                printable(l.created_by.as_deref().unwrap_or("").trim())
            );
            let mark = if i == self.selected && !self.merged {
                "\x1b[7m"
            } else {
                ""
            };
            left.push(format!("{mark}{text}"));
        }
        let mut s = String::from("\x1b[H");
        s.push_str(&fit(&title, cols));
        s.push_str("\r\n");
        for r in 0..body {
            s.push_str(&fit(left.get(r).map_or("", String::as_str), left_w));
            s.push_str(" \x1b[2m│\x1b[0m ");
            let line = self.lines.get(self.scroll + r).map_or("", String::as_str);
            s.push_str(&fit(line, right_w));
            s.push_str("\r\n");
        }
        let shown = if self.merged {
            "merged tree".to_string()
        } else {
            format!("layer {}/{}", self.selected + 1, a.layers.len())
        };
        let help = format!(
            "\x1b[7m {shown}  lines {}-{} of {}  ↑↓/jk layer  space/b page  g/G top/end  m/tab merged  q quit \x1b[0m",
            (self.scroll + 1).min(self.lines.len()),
            (self.scroll + body).min(self.lines.len()),
            self.lines.len()
        );
        s.push_str(&fit(&help, cols));
        s
    }

    /// Applies a key; false when the view should end.
    fn apply(&mut self, k: Key, page: usize) -> io::Result<bool> {
        let last_line = self.lines.len().saturating_sub(page);
        match k {
            Key::Quit => return Ok(false),
            // An image without layers has only the (empty) merged tree to show.
            Key::Up | Key::Down | Key::Merged if self.a.layers.is_empty() => {}
            Key::Up | Key::Down => {
                self.selected = match k {
                    Key::Up => self.selected.saturating_sub(1),
                    _ => (self.selected + 1).min(self.a.layers.len().saturating_sub(1)),
                };
                self.merged = false;
                self.scroll = 0;
                self.render_right()?;
            }
            Key::Merged => {
                self.merged = !self.merged;
                self.scroll = 0;
                self.render_right()?;
            }
            Key::PageUp => self.scroll = self.scroll.saturating_sub(page),
            Key::PageDown => self.scroll = (self.scroll + page).min(last_line),
            Key::Top => self.scroll = 0,
            Key::Bottom => self.scroll = last_line,
            Key::Other => {}
        }
        Ok(true)
    }
}

/// Runs the view until `q`, Esc or Ctrl-C.
pub fn run(a: &Analysis) -> io::Result<()> {
    let mut view = View {
        a,
        selected: 0,
        merged: a.layers.is_empty(),
        scroll: 0,
        lines: Vec::new(),
    };
    view.render_right()?;
    let _term = Terminal::enter()?;
    let mut buf = [0u8; 16];
    // The size the screen was last drawn at; None when a key changed what to draw.
    let mut drawn = None;
    let mut size = (0, 0);
    loop {
        let (rows, cols) = Terminal::size();
        if drawn != Some((rows, cols)) {
            let mut out = io::stdout().lock();
            if size != (rows, cols) {
                // Every row is drawn whole, but a resize leaves cells outside them.
                out.write_all(b"\x1b[2J")?;
                size = (rows, cols);
            }
            out.write_all(view.frame(rows, cols).as_bytes())?;
            out.flush()?;
            drawn = Some((rows, cols));
        }
        // Wake up now and then to follow a resized window.
        let mut fds = libc::pollfd {
            fd: io::stdin().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        if unsafe { libc::poll(&mut fds, 1, 200) } == 0 {
            continue;
        }
        // Straight from the descriptor: stdin's own buffer could join two keys.
        // SAFETY: read into a live buffer of its length.
        let n = unsafe { libc::read(io::stdin().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n == 0 {
            return Ok(());
        }
        if !view.apply(key(&buf[..n]), rows.saturating_sub(3).max(1))? {
            return Ok(());
        }
        drawn = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_safe_on_an_image_without_layers() {
        let a = empty();
        let mut v = View {
            a: &a,
            selected: 0,
            merged: true,
            scroll: 0,
            lines: Vec::new(),
        };
        v.render_right().unwrap();
        for k in [
            Key::Down,
            Key::Up,
            Key::Merged,
            Key::PageDown,
            Key::Bottom,
            Key::Top,
        ] {
            assert!(v.apply(k, 10).unwrap());
            for (rows, cols) in [(24, 80), (3, 10), (1, 1)] {
                v.frame(rows, cols);
            }
        }
        assert!(!v.apply(Key::Quit, 10).unwrap());
    }

    fn empty() -> Analysis {
        Analysis {
            image: "x".into(),
            platform: "linux/amd64".into(),
            layers: Vec::new(),
            merged: Vec::new(),
            total_bytes: 0,
            user_bytes: 0,
            final_bytes: 0,
            wasted_bytes: 0,
            wasted: Default::default(),
            user_wasted_percent: 0.0,
            efficiency: 1.0,
            largest: Vec::new(),
            inefficient: Vec::new(),
            duplicates: Vec::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn keys_and_fitting() {
        assert_eq!(key(b"q"), Key::Quit);
        assert_eq!(key(b"\x1b"), Key::Quit);
        assert_eq!(key(b"\x1b[B"), Key::Down);
        assert_eq!(key(b"\x1bOA"), Key::Up);
        assert_eq!(key(b"\x1b[6~"), Key::PageDown);
        assert_eq!(key(b"x"), Key::Other);
        // Escape sequences do not count; the rest is cut and padded to the width.
        assert_eq!(fit("\x1b[32mabcdef\x1b[0m", 3), "\x1b[32mabc\x1b[0m");
        assert_eq!(fit("ab", 4), "ab\x1b[0m  ");
        assert_eq!(fit("├── é", 5), "├── é\x1b[0m");
        assert_eq!(fit("a\tb", 5), "ab\x1b[0m   ");
    }
}
