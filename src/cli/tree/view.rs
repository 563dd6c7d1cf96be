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
    /// Ctrl-Z: stop as a shell's job, the terminal given back meanwhile.
    Suspend,
    Other,
}

/// The key at the start of what one read returned (a whole escape sequence arrives in
/// one read on a terminal).
fn key(bytes: &[u8]) -> Key {
    match bytes {
        // A lone Esc quits too, once nothing follows it (see `run`).
        b"q" | b"Q" | [0x03] => Key::Quit,
        b"k" | b"\x1b[A" | b"\x1bOA" => Key::Up,
        b"j" | b"\x1b[B" | b"\x1bOB" => Key::Down,
        b"b" | b"\x1b[5~" => Key::PageUp,
        b" " | b"\x1b[6~" => Key::PageDown,
        b"g" | b"\x1b[H" | b"\x1b[1~" | b"\x1bOH" => Key::Top,
        b"G" | b"\x1b[F" | b"\x1b[4~" | b"\x1bOF" => Key::Bottom,
        b"m" | b"\t" => Key::Merged,
        [0x1a] => Key::Suspend,
        _ => Key::Other,
    }
}

/// The keys at the start of `pending` (what reads returned, in order); an escape
/// sequence cut by the end of the input stays in `pending` for the next read.
fn keys(pending: &mut Vec<u8>) -> Vec<Key> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < pending.len() {
        let len = if pending[i] != 0x1b {
            1
        } else {
            match pending.get(i + 1) {
                None => break,
                Some(b'[') => match pending[i + 2..]
                    .iter()
                    .position(|b| (0x40..=0x7e).contains(b))
                {
                    Some(p) => p + 3,
                    None => break,
                },
                Some(b'O') if pending.len() < i + 3 => break,
                Some(b'O') => 3,
                // ESC then another key (Alt+key): neither quits.
                Some(_) => 1,
            }
        };
        out.push(key(&pending[i..i + len]));
        i += len;
    }
    pending.drain(..i);
    out
}

/// The terminal settings to put back, for the signal handler.
static SAVED: std::sync::OnceLock<libc::termios> = std::sync::OnceLock::new();

/// Puts the screen and the terminal's modes back; only async-signal-safe calls.
fn restore() {
    let seq = b"\x1b[0m\x1b[?25h\x1b[?1049l";
    // SAFETY: write and tcsetattr on the standard descriptors, with live buffers.
    unsafe {
        libc::write(1, seq.as_ptr().cast(), seq.len());
        if let Some(t) = SAVED.get() {
            libc::tcsetattr(0, libc::TCSAFLUSH, t);
        }
    }
}

/// SIGTERM, SIGQUIT, SIGHUP: the terminal back as it was, then the signal's default.
extern "C" fn on_signal(sig: libc::c_int) {
    restore();
    // SAFETY: signal and raise are async-signal-safe.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGQUIT, libc::SIGHUP];

/// Raw mode and the alternate screen, undone on drop.
struct Terminal {
    saved: libc::termios,
    /// The signal handlers replaced.
    previous: Vec<libc::sighandler_t>,
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
        Terminal::raw(&saved)?;
        let _ = SAVED.set(saved);
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: installs a handler that only makes async-signal-safe calls.
        let previous = SIGNALS
            .iter()
            .map(|&sig| unsafe { libc::signal(sig, handler) })
            .collect();
        // A panic's message is printed by the hook, before unwinding reaches Drop: put
        // the terminal back first, or the message goes to the alternate screen.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            hook(info);
        }));
        let t = Terminal { saved, previous };
        Terminal::screen()?;
        Ok(t)
    }

    /// Raw mode from the settings `saved`: keys one by one, unechoed, Ctrl-C and Ctrl-Z
    /// as bytes.
    fn raw(saved: &libc::termios) -> io::Result<()> {
        let mut raw = *saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
        raw.c_iflag &= !(libc::IXON | libc::ICRNL);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: tcsetattr on stdin with a valid termios.
        if unsafe { libc::tcsetattr(io::stdin().as_raw_fd(), libc::TCSAFLUSH, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The alternate screen, cursor hidden.
    fn screen() -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(b"\x1b[?1049h\x1b[?25l")?;
        out.flush()
    }

    /// Ctrl-Z, as less and vim do: the screen and modes given back, the process stopped
    /// (SIGTSTP's default), and the view back once the shell continues it (`fg`). Where
    /// nothing can continue it (an orphaned process group), the signal is discarded and
    /// the view simply goes on.
    fn suspend(&self) -> io::Result<()> {
        restore();
        // SAFETY: raise with a signal number; SIGTSTP is not caught here.
        unsafe { libc::raise(libc::SIGTSTP) };
        Terminal::raw(&self.saved)?;
        Terminal::screen()
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
        // SAFETY: restores the settings tcgetattr read, on the same descriptor, and the
        // signal handlers that were there.
        unsafe {
            libc::tcsetattr(io::stdin().as_raw_fd(), libc::TCSAFLUSH, &self.saved);
            for (&sig, &h) in SIGNALS.iter().zip(&self.previous) {
                libc::signal(sig, h);
            }
        }
        if !std::thread::panicking() {
            let _ = std::panic::take_hook();
        }
    }
}

/// Columns a character takes on a terminal: 0 for combining marks and zero-width
/// characters, 2 for East Asian wide ones and emoji, 1 otherwise (a table of the common
/// ranges, not all of Unicode's).
fn columns(c: char) -> usize {
    match c as u32 {
        0x0300..=0x036F
        | 0x200B..=0x200F
        | 0x2028..=0x202E
        | 0x2060..=0x2064
        | 0xFE00..=0xFE0F
        | 0xFEFF => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// `line` cut to `width` columns: escape sequences pass through without counting, and
/// colour is reset at the end; characters count the columns they take.
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
        let w = columns(c);
        if cols + w > width {
            break;
        }
        out.push(c);
        cols += w;
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
    /// Marks in colour (not with `NO_COLOR`).
    color: bool,
}

impl View<'_> {
    fn render_right(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        if self.merged {
            merged(&mut buf, self.a, self.color)?;
        } else {
            layer(&mut buf, self.a, &self.a.layers[self.selected], self.color)?;
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
        let mut left = vec!["\x1b[1mLayers\x1b[0m".to_string()];
        // The selected layer stays in sight: the list scrolls under its title.
        let first = self.selected.saturating_sub(body.saturating_sub(2));
        for (i, l) in a.layers.iter().enumerate().skip(first) {
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
            Key::Suspend | Key::Other => {}
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
        color: crate::cli::render::color_for(&io::stdout()),
    };
    view.render_right()?;
    let term = Terminal::enter()?;
    let mut buf = [0u8; 64];
    let mut pending = Vec::new();
    // The size the screen was last drawn at; None when a key changed what to draw.
    let mut drawn = None;
    let mut size = (0, 0);
    loop {
        let (rows, cols) = Terminal::size();
        // A huge window is drawn as a large one.
        let (rows, cols) = (rows.min(1000), cols.min(1000));
        if drawn != Some((rows, cols)) {
            let mut out = io::stdout().lock();
            if size != (rows, cols) {
                // Every row is drawn whole, but a resize leaves cells outside them; a
                // taller window may show the end of the pane from an earlier line.
                out.write_all(b"\x1b[2J")?;
                size = (rows, cols);
                view.scroll = view
                    .scroll
                    .min(view.lines.len().saturating_sub(rows.saturating_sub(3)));
            }
            out.write_all(view.frame(rows, cols).as_bytes())?;
            out.flush()?;
            drawn = Some((rows, cols));
        }
        // Wake up now and then to follow a resized window; sooner when an escape
        // sequence may still be arriving (a lone Esc quits once nothing follows).
        let mut fds = libc::pollfd {
            fd: io::stdin().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = if pending.is_empty() { 200 } else { 30 };
        // SAFETY: poll on one valid pollfd.
        if unsafe { libc::poll(&mut fds, 1, wait) } == 0 {
            if pending == [0x1b] {
                return Ok(());
            }
            pending.clear();
            continue;
        }
        // Straight from the descriptor: stdin's own buffer could hold keys back.
        // SAFETY: read into a live buffer of its length.
        let n = unsafe { libc::read(io::stdin().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&buf[..n as usize]);
        for k in keys(&mut pending) {
            if k == Key::Suspend {
                term.suspend()?;
                // Everything is drawn again, on a cleared screen of whatever size it is now.
                size = (0, 0);
                drawn = None;
                continue;
            }
            if !view.apply(k, rows.saturating_sub(3).max(1))? {
                return Ok(());
            }
            drawn = None;
        }
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
            color: true,
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
    fn reads_split_into_keys_and_sequences_wait_for_their_end() {
        let mut p = b"jj\x1b[Bq".to_vec();
        assert_eq!(keys(&mut p), [Key::Down, Key::Down, Key::Down, Key::Quit]);
        assert!(p.is_empty());
        // A sequence cut by the read: nothing yet, then the whole key.
        let mut p = b"k\x1b".to_vec();
        assert_eq!(keys(&mut p), [Key::Up]);
        assert_eq!(p, b"\x1b");
        p.extend_from_slice(b"[6");
        assert!(keys(&mut p).is_empty());
        p.push(b'~');
        assert_eq!(keys(&mut p), [Key::PageDown]);
        // Esc then a key (Alt+key) is not a quit.
        let mut p = b"\x1bx".to_vec();
        assert_eq!(keys(&mut p), [Key::Other, Key::Other]);
    }

    #[test]
    fn wide_and_zero_width_characters_take_their_columns() {
        assert_eq!(fit("日本語", 4), "日本\x1b[0m");
        assert_eq!(fit("e\u{301}x", 2), "e\u{301}x\x1b[0m");
    }

    #[test]
    fn keys_and_fitting() {
        assert_eq!(key(b"q"), Key::Quit);
        assert_eq!(key(&[0x1a]), Key::Suspend);
        assert_eq!(key(b"\x1b"), Key::Other);
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
