//! The progress line: one line on stderr for long work (writing layers, reading an
//! image's layers), redrawn at most ten times a second from the library's counters
//! ([`nobase::progress`]) and erased when the work ends, so the summary that follows
//! starts on a clean line. Drawn only when stderr is a terminal and neither `-q`, `-v`
//! nor `--json` was given: logs and pipes never see it. Also the line format the
//! registry's per-blob bars use.

use super::render::human_size;
use super::Global;
use nobase::image::PlatformImage;
use nobase::oci::Blobs;
use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// True when live progress may be drawn for this command.
pub fn live(g: &Global, json: bool) -> bool {
    !g.quiet && g.verbose == 0 && !json && std::io::stderr().is_terminal()
}

/// `label  42%  12.0 MiB / 28.5 MiB  9.1 MiB/s` (no percentage when the total is not
/// known).
pub fn format_line(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = human_size((done as f64 / secs) as u64);
    if total == 0 {
        return format!("{label}  {}  {rate}/s", human_size(done));
    }
    let pct = (done.min(total) * 100) / total;
    format!(
        "{label}  {pct:>3}%  {} / {}  {rate}/s",
        human_size(done.min(total)),
        human_size(total)
    )
}

/// A progress line being drawn; erased when dropped.
pub struct Line {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Line {
    /// Starts drawing `label` with the work done from now on, or does nothing when
    /// progress is not [`live`].
    pub fn start(g: &Global, json: bool, label: impl Into<String>) -> Line {
        Line::draw(g, json, label.into(), false)
    }

    /// Draws until `expected` work is done or the line is dropped, whichever comes
    /// first: `run` reads its layers, then the program takes over the terminal, and the
    /// line must be gone by then.
    fn draw(g: &Global, json: bool, label: String, until_complete: bool) -> Line {
        let stop = Arc::new(AtomicBool::new(false));
        if !live(g, json) {
            return Line { stop, thread: None };
        }
        let (done0, total0) = nobase::progress::snapshot();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            // Only `\r` and spaces, no escape sequences: the line is drawn over and
            // blanked out the same way on any terminal, NO_COLOR or TERM=dumb alike.
            let mut width: usize = 0;
            let mut draw = |text: &str| {
                let pad = width.saturating_sub(text.chars().count());
                let _ = write!(std::io::stderr(), "\r{text}{:pad$}", "");
                width = text.chars().count();
            };
            loop {
                let now = || {
                    let (done, total) = nobase::progress::snapshot();
                    (done.saturating_sub(done0), total.saturating_sub(total0))
                };
                let (done, total) = now();
                draw(&format_line(&label, done, total, started.elapsed()));
                // Check often, so the line goes away as soon as the work ends.
                for _ in 0..10 {
                    let (done, total) = now();
                    let complete = until_complete && total > 0 && done >= total;
                    if complete || flag.load(Ordering::Relaxed) {
                        draw("");
                        let _ = write!(std::io::stderr(), "\r");
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        Line {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Blobs whose reads count as progress.
pub struct Counted<'a>(pub &'a dyn Blobs);

impl Blobs for Counted<'_> {
    fn open(&self, desc: &nobase::image::Descriptor) -> nobase::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(nobase::progress::Counted(self.0.open(desc)?)))
    }
    fn layers_unnamed(&self) -> bool {
        self.0.layers_unnamed()
    }
}

/// Starts a line for reading `image`'s layers (their compressed bytes are the total).
pub fn reading(g: &Global, json: bool, what: &str, image: Option<&PlatformImage>) -> Line {
    let line = Line::draw(g, json, format!("reading {what}"), true);
    if let Some(img) = image {
        nobase::progress::expect(img.manifest.layers.iter().map(|l| l.size).sum());
    }
    line
}

#[cfg(test)]
mod tests {
    use super::format_line;
    use std::time::Duration;

    #[test]
    fn lines() {
        let s = Duration::from_secs(2);
        assert_eq!(
            format_line("building x", 1 << 20, 4 << 20, s),
            "building x   25%  1.0 MiB / 4.0 MiB  512 KiB/s"
        );
        assert_eq!(format_line("x", 10, 0, s), "x  10 B  5 B/s");
        // Unannounced work never shows more than 100 %.
        assert_eq!(format_line("x", 20, 10, s), "x  100%  10 B / 10 B  10 B/s");
    }
}
