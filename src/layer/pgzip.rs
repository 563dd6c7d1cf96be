//! Block-parallel gzip, as pigz writes it: the input is cut into fixed 1 MiB blocks,
//! each compressed as raw deflate primed with the previous block's last 32 KiB, ended
//! with a sync flush so blocks concatenate into one valid deflate stream, wrapped in
//! a single gzip member. Block boundaries and dictionaries depend only on the data, so
//! the bytes are identical whatever the number of worker threads.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;

/// Uncompressed bytes per block.
const BLOCK: usize = 1 << 20;
/// Deflate's window: how much of the previous block primes the next.
const DICT: usize = 32 << 10;
/// The gzip header: no name, no mtime, XFL 0, OS 255 (unknown) — nothing from the host.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    index: u64,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

struct Done {
    index: u64,
    out: Vec<u8>,
    crc: Crc,
}

/// Compresses one block to raw deflate. Each block gets a fresh compressor: a reset
/// one was measured to emit different bytes for the same block (zlib-rs 0.6), and the
/// output must not depend on which worker compressed which block.
fn compress_block(level: u32, job: &Job) -> io::Result<Vec<u8>> {
    let mut comp = Compress::new(Compression::new(level), false);
    let comp = &mut comp;
    if !job.dict.is_empty() {
        comp.set_dictionary(&job.dict)
            .map_err(|e| io::Error::other(format!("deflate dictionary: {e}")))?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 1024);
    let mut input = &job.data[..];
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let before_in = comp.total_in();
        let status = comp
            .compress_vec(input, &mut out, flush)
            .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        input = &input[(comp.total_in() - before_in) as usize..];
        let room_left = out.capacity() > out.len();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is in and deflate stopped
            // short of filling the buffer.
            Status::Ok | Status::BufError if !job.last && input.is_empty() && room_left => break,
            _ => {}
        }
    }
    Ok(out)
}

fn run_job(level: u32, job: &Job) -> io::Result<Done> {
    let mut crc = Crc::new();
    crc.update(&job.data);
    Ok(Done {
        index: job.index,
        out: compress_block(level, job)?,
        crc,
    })
}

/// A gzip writer that compresses blocks on `threads` workers (inline when 1).
pub struct ParallelGzip<W: Write> {
    inner: Option<W>,
    level: u32,
    buf: Vec<u8>,
    prev_tail: Vec<u8>,
    next_index: u64,
    next_write: u64,
    crc: Crc,
    total: u64,
    inline: bool,
    jobs: Option<mpsc::SyncSender<Job>>,
    results: Option<mpsc::Receiver<io::Result<Done>>>,
    workers: Vec<thread::JoinHandle<()>>,
    pending: BTreeMap<u64, Done>,
    in_flight: usize,
    max_in_flight: usize,
}

impl<W: Write> ParallelGzip<W> {
    /// Starts a gzip stream into `inner` at `level` (0–9) with `threads` workers.
    pub fn new(mut inner: W, level: u32, threads: u32) -> io::Result<Self> {
        inner.write_all(&HEADER)?;
        let threads = threads.max(1) as usize;
        let mut me = ParallelGzip {
            inner: Some(inner),
            level,
            buf: Vec::with_capacity(BLOCK),
            prev_tail: Vec::new(),
            next_index: 0,
            next_write: 0,
            crc: Crc::new(),
            total: 0,
            inline: threads == 1,
            jobs: None,
            results: None,
            workers: Vec::new(),
            pending: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: threads * 2,
        };
        if threads > 1 {
            let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
            let (res_tx, res_rx) = mpsc::channel();
            let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
            for _ in 0..threads {
                let rx = job_rx.clone();
                let tx = res_tx.clone();
                let level = me.level;
                me.workers.push(thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    if tx.send(run_job(level, &job)).is_err() {
                        return;
                    }
                }));
            }
            me.jobs = Some(job_tx);
            me.results = Some(res_rx);
        }
        Ok(me)
    }

    /// Hands the buffered block to a worker (or compresses it inline).
    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        let dict = std::mem::take(&mut self.prev_tail);
        self.prev_tail = data[data.len().saturating_sub(DICT)..].to_vec();
        let job = Job {
            index: self.next_index,
            dict,
            data,
            last,
        };
        self.next_index += 1;
        if self.inline {
            let done = run_job(self.level, &job)?;
            return self.emit(done);
        }
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        self.jobs
            .as_ref()
            .expect("workers exist")
            .send(job)
            .map_err(|_| io::Error::other("a compression worker stopped"))?;
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for one finished block and writes every block that is now in order.
    fn collect_one(&mut self) -> io::Result<()> {
        let done = self
            .results
            .as_ref()
            .expect("workers exist")
            .recv()
            .map_err(|_| io::Error::other("a compression worker stopped"))??;
        self.in_flight -= 1;
        self.pending.insert(done.index, done);
        while let Some(d) = self.pending.remove(&self.next_write) {
            self.emit(d)?;
        }
        Ok(())
    }

    fn emit(&mut self, d: Done) -> io::Result<()> {
        self.crc.combine(&d.crc);
        self.next_write += 1;
        self.inner.as_mut().expect("not finished").write_all(&d.out)
    }

    /// Compresses what is buffered, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let mut inner = self.inner.take().expect("finish runs once");
        inner.write_all(&self.crc.sum().to_le_bytes())?;
        inner.write_all(&(self.total as u32).to_le_bytes())?;
        Ok(inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.total += n as u64;
        if self.buf.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        // Closing the job channel stops the workers; results are discarded.
        self.jobs = None;
        self.results = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8], threads: u32) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), 6, threads).unwrap();
        // Uneven writes, to cross block boundaries mid-write.
        for chunk in data.chunks(777_777) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_is_identical_across_thread_counts() {
        let mut data = Vec::new();
        let mut x = 1u32;
        for i in 0..(3 * BLOCK + 12345) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push(if i % 3 == 0 {
                (x >> 24) as u8
            } else {
                b'a' + (i % 7) as u8
            });
        }
        let one = gz(&data, 1);
        for t in [2, 3, 8] {
            assert!(gz(&data, t) == one, "{t} threads gave other bytes than 1");
        }
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // Empty input is a valid gzip of nothing.
        let empty = gz(b"", 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
