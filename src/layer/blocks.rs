//! The layer pipeline. The tar stream is cut into blocks of fixed sizes as it is made,
//! and file contents are read straight into them. The main thread hashes each block as
//! it fills (the diff_id) and queues it; workers, and the main thread whenever enough blocks
//! wait, compress each into a complete, independent frame; frames are written in order.
//!
//! * gzip: 64 KiB blocks for the first MiB, then 256 KiB, each a gzip member made by
//!   libdeflate. Concatenated members are valid gzip (RFC 1952 §2.2) that Go's, zlib's
//!   and GNU gzip's readers read whole; eStargz layers are built the same way.
//! * zstd: 1 MiB blocks for the first 4 MiB, then 4 MiB, each a zstd frame;
//!   concatenated frames are one valid zstd stream (RFC 8878 §3.1).
//! * no codec: 1 MiB blocks, hashed on a thread of their own and written as they are (a
//!   plain tar), or only hashed (a rebuild verifying a cached layer).
//!
//! With a codec, the last full block waits until the stream goes on; when it turns out
//! to be the last, it and the partial block after it are cut into pieces of the first
//! block size, so the cores finish together instead of one compressing a whole large
//! block alone at the end.
//!
//! Blocks depend only on the data, so the bytes are identical whatever the number of
//! threads, and the work spreads evenly over every core. Block buffers are reused, so a
//! layer of any size touches the same few megabytes.
//!
//! Why libdeflate rather than flate2's zlib-rs (DESIGN.md's choice) for gzip: measured
//! on a 90 MB Go binary in 1 MiB blocks, libdeflate level 4 made 27.9 MB in 0.70 s of
//! CPU where zlib-rs needed level 4 and 0.96 s for 28.4 MB; umoci's output was 28.8 MB.
//! flate2 still does all decompression.

use crate::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

/// A block codec: makes one complete, independent frame of a block.
#[derive(Clone, Copy, Debug)]
pub enum Codec {
    /// gzip members at a libdeflate level (1–12).
    Gzip(u32),
    /// zstd frames at a zstd level.
    Zstd(i32),
}

/// Blocks of a stream that is stored as it is or only hashed.
const PLAIN_BLOCK: usize = 1 << 20;

/// Full blocks waiting for the hashing thread.
const HASH_QUEUE: usize = 4;

/// At most this much of blocks handed to the workers, whatever `--threads` says.
const IN_FLIGHT_BYTES: usize = 64 << 20;

/// How many blocks may be with the workers at once: two per thread and one more (see
/// [`Pipeline::dispatch`]), within [`IN_FLIGHT_BYTES`].
fn max_in_flight(codec: Codec, threads: usize) -> usize {
    (threads * 2 + 1)
        .min(IN_FLIGHT_BYTES / codec.max_block())
        .max(2)
}

impl Codec {
    /// The length of block `index` of a stream. Small first blocks start every core
    /// early: gzip 64 KiB for the first MiB, so a small layer (a static hello world is
    /// ~750 KiB) spreads evenly over every core, then 256 KiB (0.6% more bytes on a
    /// 90 MB Go binary than 1 MiB blocks, still 2.5% under umoci; 64 KiB throughout
    /// would be 2.4% more). zstd: 1 MiB for the first 4 MiB, then 4 MiB (zstd -3 makes
    /// 1.4% more of 1 MiB frames than of 4 MiB ones on that binary, and more slowly).
    fn block_size(&self, index: u64) -> usize {
        match self {
            Codec::Gzip(_) if index < 16 => 64 << 10,
            Codec::Gzip(_) => 256 << 10,
            Codec::Zstd(_) if index < 4 => 1 << 20,
            Codec::Zstd(_) => 4 << 20,
        }
    }

    /// The size of the pieces a stream's last blocks are cut into.
    fn piece(&self) -> usize {
        self.block_size(0)
    }

    /// The largest block.
    fn max_block(&self) -> usize {
        self.block_size(u64::MAX)
    }

    fn encoder(&self) -> io::Result<Encoder> {
        Ok(match *self {
            Codec::Gzip(level) => {
                let lvl = libdeflater::CompressionLvl::new(level as i32)
                    .map_err(|_| io::Error::other(format!("invalid gzip level {level}")))?;
                Encoder::Gzip(libdeflater::Compressor::new(lvl))
            }
            Codec::Zstd(level) => Encoder::Zstd(zstd::bulk::Compressor::new(level)?),
        })
    }
}

/// A worker's compressor.
enum Encoder {
    Gzip(libdeflater::Compressor),
    Zstd(zstd::bulk::Compressor<'static>),
}

impl Encoder {
    /// One block as one frame, into `out` (a reused buffer). libdeflate's gzip header
    /// has no name and mtime 0, and zstd frames carry no time either: nothing from the
    /// host reaches the bytes.
    fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        // Test builds only: a compressor that panics, on a worker thread (unnamed; the
        // test's own thread has the test's name), for blocks that ask for it.
        #[cfg(test)]
        if data.starts_with(tests::PANIC_MARK) {
            use std::sync::atomic::Ordering;
            if thread::current().name().is_none() {
                tests::WORKER_PANICKED.store(true, Ordering::SeqCst);
                panic!("a test block asked this worker to panic");
            }
            // The feeding thread helps too: it waits for a worker to take a marked block
            // (there are dozens), so the test never depends on the scheduler.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !tests::WORKER_PANICKED.load(Ordering::SeqCst)
                && std::time::Instant::now() < deadline
            {
                thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        out.clear();
        match self {
            Encoder::Gzip(c) => {
                out.resize(c.gzip_compress_bound(data.len()), 0);
                let n = c
                    .gzip_compress(data, out)
                    .map_err(|e| io::Error::other(format!("gzip compression failed: {e:?}")))?;
                out.truncate(n);
            }
            Encoder::Zstd(c) => {
                out.reserve(zstd::zstd_safe::compress_bound(data.len()));
                c.compress_to_buffer(data, out)?;
            }
        }
        Ok(())
    }
}

/// Buffers given back for reuse: blocks that everyone is done with, and compressed
/// frames once written, so a layer of any size touches the same few buffers.
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

fn reuse(pool: &Pool) -> Option<Vec<u8>> {
    pool.lock().ok()?.pop()
}

fn give_back(pool: &Pool, buf: Vec<u8>) {
    if let Ok(mut p) = pool.lock() {
        p.push(buf);
    }
}

/// A full block, shared by whoever hashes it and whoever compresses or writes it; its
/// buffer goes back to the pool when all are done.
struct Block {
    data: Vec<u8>,
    len: usize,
    pool: Pool,
}

impl Block {
    fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        give_back(&self.pool, std::mem::take(&mut self.data));
    }
}

/// A block, or a piece of one, for a compressor.
struct Job {
    index: u64,
    block: Arc<Block>,
    range: std::ops::Range<usize>,
}

impl Job {
    fn bytes(&self) -> &[u8] {
        &self.block.bytes()[self.range.clone()]
    }
}

struct Done {
    index: u64,
    out: Vec<u8>,
}

/// The hashing of a stream without a codec: inline until the first block fills (a small
/// stream never starts a thread), then on its own thread so reading and writing overlap
/// with it. With a codec the hash is always inline: the main thread hashes each block as
/// it fills, while it is still in the cache, and the workers compress. `Off` for a
/// plain tar whose output hashes it anyway (see [`Pipeline::stored`]).
enum Hashing {
    Off,
    Inline(Sha256),
    Thread {
        tx: mpsc::SyncSender<Arc<Block>>,
        worker: thread::JoinHandle<Sha256>,
    },
    Finished,
}

/// Blocks waiting for a compressor, shared by the workers and the main thread.
#[derive(Default)]
struct Queue {
    jobs: std::collections::VecDeque<Job>,
    closed: bool,
}

type SharedQueue = Arc<(Mutex<Queue>, std::sync::Condvar)>;

/// The compression workers: `threads - 1` of them, since the main thread compresses too
/// whenever enough blocks wait (one thread per core, none waiting for a core: on a small layer
/// a thread that waits for a core costs more than its block).
struct Workers {
    queue: SharedQueue,
    results: mpsc::Receiver<io::Result<Done>>,
    handles: Vec<thread::JoinHandle<()>>,
}

impl Workers {
    fn start(codec: Codec, count: usize, outputs: &Pool) -> io::Result<Workers> {
        let queue = SharedQueue::default();
        let (tx, results) = mpsc::channel();
        let mut handles = Vec::new();
        for _ in 0..count {
            let queue = queue.clone();
            let tx = tx.clone();
            let outputs = outputs.clone();
            let mut c = codec.encoder()?;
            handles.push(thread::spawn(move || {
                while let Some(job) = Workers::next(&queue) {
                    let mut out = reuse(&outputs).unwrap_or_default();
                    let index = job.index;
                    // A panic is an error for the main thread, which would otherwise
                    // wait forever for this job while the other workers live on.
                    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        c.compress(job.bytes(), &mut out)
                    }))
                    .unwrap_or_else(|_| Err(io::Error::other("a compression worker panicked")))
                    .map(|()| Done { index, out });
                    drop(job);
                    let failed = done.is_err();
                    if tx.send(done).is_err() || failed {
                        return;
                    }
                }
            }));
        }
        Ok(Workers {
            queue,
            results,
            handles,
        })
    }

    /// A worker's next job; None once the queue is closed and empty.
    fn next(queue: &SharedQueue) -> Option<Job> {
        let (lock, ready) = &**queue;
        let mut q = lock.lock().ok()?;
        loop {
            if let Some(job) = q.jobs.pop_front() {
                return Some(job);
            }
            if q.closed {
                return None;
            }
            q = ready.wait(q).ok()?;
        }
    }

    fn push(&self, job: Job) -> io::Result<()> {
        let (lock, ready) = &*self.queue;
        lock.lock()
            .map_err(|_| io::Error::other("a compression worker stopped"))?
            .jobs
            .push_back(job);
        ready.notify_one();
        Ok(())
    }

    /// The oldest job no worker has taken yet.
    fn take(&self) -> Option<Job> {
        self.queue.0.lock().ok()?.jobs.pop_front()
    }

    /// How many jobs no worker has taken yet.
    fn waiting(&self) -> usize {
        self.queue.0.lock().map_or(0, |q| q.jobs.len())
    }

    fn stop(&mut self) {
        if let Ok(mut q) = self.queue.0.lock() {
            q.closed = true;
            q.jobs.clear();
        }
        self.queue.1.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A writer of a block stream: blocks are hashed and then compressed by `codec` on
/// `threads` threads (the calling one among them) into `out`, or written to `out` as
/// they are without a codec; without `out` they are only hashed.
pub struct Pipeline<W: Write> {
    out: Option<W>,
    /// The length of the current block.
    block: usize,
    buf: Vec<u8>,
    filled: usize,
    count: u64,
    /// How many blocks the stream has been cut into so far.
    cut: u64,
    /// The last full block, until the stream goes on or ends.
    held: Option<Arc<Block>>,
    /// Block buffers (all of the largest block size).
    pool: Pool,
    /// Compressed frame buffers.
    outputs: Pool,
    hashing: Hashing,
    /// The codec and thread count.
    codec: Option<(Codec, usize)>,
    /// The main thread's encoder.
    inline: Option<Encoder>,
    workers: Option<Workers>,
    /// The index of the next job (a block or a piece of one).
    next_index: u64,
    next_write: u64,
    /// Compressed blocks waiting for the ones before them.
    pending: BTreeMap<u64, Vec<u8>>,
    /// Blocks given to the workers whose result has not come back.
    in_flight: usize,
}

impl<W: Write> Pipeline<W> {
    /// Starts a stream into `out` (see [`Pipeline`]).
    pub fn new(out: Option<W>, codec: Option<Codec>, threads: u32) -> Pipeline<W> {
        Pipeline {
            out,
            block: codec.map_or(PLAIN_BLOCK, |c| c.block_size(0)),
            buf: Vec::new(),
            filled: 0,
            count: 0,
            cut: 0,
            held: None,
            pool: Arc::default(),
            outputs: Arc::default(),
            hashing: Hashing::Inline(Sha256::new()),
            codec: codec.map(|c| (c, threads.max(1) as usize)),
            inline: None,
            workers: None,
            next_index: 0,
            next_write: 0,
            pending: BTreeMap::new(),
            in_flight: 0,
        }
    }

    /// A plain tar into `out`, which hashes what it is written itself (a blob writer,
    /// whose digest is then the diff_id): the stream is not hashed a second time, and
    /// [`Pipeline::finish`] gives no digest.
    pub fn stored(out: W) -> Pipeline<W> {
        let mut p = Pipeline::new(Some(out), None, 1);
        p.hashing = Hashing::Off;
        p
    }

    /// Reads up to `n` bytes of `r` straight into the stream; returns how many it read,
    /// fewer than `n` only when `r` ended first.
    pub fn read_from(&mut self, r: &mut dyn Read, n: u64) -> io::Result<u64> {
        let mut left = n;
        while left > 0 {
            self.ensure_buffer();
            let room = (self.block - self.filled).min(usize::try_from(left).unwrap_or(usize::MAX));
            let got = match r.read(&mut self.buf[self.filled..self.filled + room]) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.filled += got;
            left -= got as u64;
            if self.filled == self.block {
                self.submit()?;
            }
        }
        Ok(n - left)
    }

    /// A buffer for the current block: a returned one when there is one.
    fn ensure_buffer(&mut self) {
        if self.buf.is_empty() {
            let size = self.codec.map_or(PLAIN_BLOCK, |(c, _)| c.max_block());
            self.buf = reuse(&self.pool).unwrap_or_else(|| vec![0; size]);
        }
    }

    /// Cuts the current block off the stream (hashed inline when there is a codec).
    fn cut_block(&mut self) -> Arc<Block> {
        self.ensure_buffer();
        let block = Arc::new(Block {
            data: std::mem::take(&mut self.buf),
            len: self.filled,
            pool: self.pool.clone(),
        });
        self.filled = 0;
        self.count += block.len as u64;
        self.cut += 1;
        if let Some((codec, _)) = self.codec {
            self.block = codec.block_size(self.cut);
            if let Hashing::Inline(h) = &mut self.hashing {
                h.update(block.bytes());
            }
        }
        block
    }

    /// Hands the current block (full, or the last of a stream without a codec) to the
    /// hasher and to the codec or the output; with a codec it is held until the next one
    /// fills, and the one held before goes on.
    fn submit(&mut self) -> io::Result<()> {
        let block = self.cut_block();
        let Some((codec, threads)) = self.codec else {
            self.hash(&block)?;
            return match self.out.as_mut() {
                Some(out) => out.write_all(block.bytes()),
                None => Ok(()),
            };
        };
        if let Some(prev) = self.held.replace(block) {
            let len = prev.len;
            self.dispatch(codec, threads, prev, 0..len)?;
        }
        Ok(())
    }

    /// Gives a block or a piece of one to the compressors, in stream order.
    fn dispatch(
        &mut self,
        codec: Codec,
        threads: usize,
        block: Arc<Block>,
        range: std::ops::Range<usize>,
    ) -> io::Result<()> {
        let job = Job {
            index: self.next_index,
            block,
            range,
        };
        self.next_index += 1;
        if threads == 1 {
            let out = self.compress_here(codec, job.bytes())?;
            drop(job);
            return self.emit(out);
        }
        if self.workers.is_none() {
            self.workers = Some(Workers::start(codec, threads - 1, &self.outputs)?);
        }
        let workers = self.workers.as_ref().expect("just started");
        workers.push(job)?;
        self.in_flight += 1;
        // Compress one here when more blocks wait than the workers will soon take, while
        // leaving each a block queued behind the one it compresses: a worker that ran dry
        // would wait for this thread to finish its block and read the next (a timeline
        // of a zstd build with the threshold at `threads` showed the worker idle 29 ms
        // of 260, in gaps of 3–9 ms). And never hold more than a few blocks in memory.
        while self.workers.as_ref().is_some_and(|w| w.waiting() > threads) {
            self.help(codec)?;
        }
        self.collect_ready()?;
        while self.in_flight >= max_in_flight(codec, threads) {
            if !self.help(codec)? {
                self.collect_one()?;
            }
        }
        Ok(())
    }

    /// Compresses the oldest waiting block on this thread; false when none waits.
    fn help(&mut self, codec: Codec) -> io::Result<bool> {
        let Some(job) = self.workers.as_ref().and_then(Workers::take) else {
            return Ok(false);
        };
        self.in_flight -= 1;
        let out = self.compress_here(codec, job.bytes())?;
        self.pending.insert(job.index, out);
        self.emit_ready()?;
        Ok(true)
    }

    /// Compresses a block on this thread.
    fn compress_here(&mut self, codec: Codec, data: &[u8]) -> io::Result<Vec<u8>> {
        if self.inline.is_none() {
            self.inline = Some(codec.encoder()?);
        }
        let mut out = reuse(&self.outputs).unwrap_or_default();
        self.inline
            .as_mut()
            .expect("just made")
            .compress(data, &mut out)?;
        Ok(out)
    }

    fn hash(&mut self, block: &Arc<Block>) -> io::Result<()> {
        if let Hashing::Off = self.hashing {
            return Ok(());
        }
        if let Hashing::Inline(h) = &mut self.hashing {
            if block.len < self.block {
                // The last block of a stream that never filled one.
                h.update(block.bytes());
                return Ok(());
            }
            let h = std::mem::take(h);
            let (tx, rx) = mpsc::sync_channel::<Arc<Block>>(HASH_QUEUE);
            let worker = thread::spawn(move || {
                let mut h = h;
                for b in rx {
                    h.update(b.bytes());
                }
                h
            });
            self.hashing = Hashing::Thread { tx, worker };
        }
        match &self.hashing {
            Hashing::Thread { tx, .. } => tx
                .send(block.clone())
                .map_err(|_| io::Error::other("the hashing thread stopped")),
            _ => Err(io::Error::other("the stream was already finished")),
        }
    }

    /// Takes a worker's result, waiting for one.
    fn collect_one(&mut self) -> io::Result<()> {
        let done = self
            .workers
            .as_ref()
            .expect("workers exist")
            .results
            .recv()
            .map_err(|_| io::Error::other("a compression worker stopped"))??;
        self.accept(done)
    }

    /// Takes the results the workers have ready, without waiting.
    fn collect_ready(&mut self) -> io::Result<()> {
        while let Some(done) = self
            .workers
            .as_ref()
            .and_then(|w| w.results.try_recv().ok())
        {
            self.accept(done?)?;
        }
        Ok(())
    }

    fn accept(&mut self, done: Done) -> io::Result<()> {
        self.in_flight -= 1;
        self.pending.insert(done.index, done.out);
        self.emit_ready()
    }

    /// Writes every compressed block that is now in order.
    fn emit_ready(&mut self) -> io::Result<()> {
        while let Some(out) = self.pending.remove(&self.next_write) {
            self.emit(out)?;
        }
        Ok(())
    }

    fn emit(&mut self, out: Vec<u8>) -> io::Result<()> {
        self.next_write += 1;
        if let Some(w) = self.out.as_mut() {
            w.write_all(&out)?;
        }
        give_back(&self.outputs, out);
        Ok(())
    }

    /// Ends the stream: returns the output, the sha256 of the stream (none for
    /// [`Pipeline::stored`]) and its length.
    pub fn finish(mut self) -> io::Result<(Option<W>, Option<Digest>, u64)> {
        if let Some((codec, threads)) = self.codec {
            // The held block and the partial one after it, in pieces; an empty stream
            // still gets one (empty) frame, so it is a valid stream.
            let last = (self.filled > 0 || self.cut == 0).then(|| self.cut_block());
            let piece = codec.piece();
            for block in self.held.take().into_iter().chain(last) {
                let len = block.len;
                let mut start = 0;
                loop {
                    let end = len.min(start + piece);
                    self.dispatch(codec, threads, block.clone(), start..end)?;
                    start = end;
                    if start == len {
                        break;
                    }
                }
            }
            // Help with what waits, then wait for the rest.
            while self.help(codec)? {}
            while self.in_flight > 0 {
                self.collect_one()?;
            }
        } else if self.filled > 0 || self.cut == 0 {
            self.submit()?;
        }
        if let Some(mut w) = self.workers.take() {
            w.stop();
        }
        let h = match std::mem::replace(&mut self.hashing, Hashing::Finished) {
            Hashing::Off => None,
            Hashing::Inline(h) => Some(h),
            Hashing::Thread { tx, worker } => {
                drop(tx);
                Some(
                    worker
                        .join()
                        .map_err(|_| io::Error::other("the hashing thread panicked"))?,
                )
            }
            Hashing::Finished => return Err(io::Error::other("finished twice")),
        };
        Ok((self.out.take(), h.map(Digest::from_hasher), self.count))
    }
}

impl<W: Write> Write for Pipeline<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.ensure_buffer();
        let n = data.len().min(self.block - self.filled);
        self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        if self.filled == self.block {
            self.submit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for Pipeline<W> {
    fn drop(&mut self) {
        // Stopping the workers and closing the hash channel ends the threads.
        self.workers = None;
        if let Hashing::Thread { tx, worker } =
            std::mem::replace(&mut self.hashing, Hashing::Finished)
        {
            drop(tx);
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block starting with these bytes makes the worker compressing it panic.
    pub(super) const PANIC_MARK: &[u8] = b"\0nobase test: panic in a worker\0";
    /// Set by the worker that panics on a marked block.
    pub(super) static WORKER_PANICKED: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    fn compress(data: &[u8], codec: Option<Codec>, threads: u32) -> (Vec<u8>, Digest, u64) {
        let mut w = Pipeline::new(Some(Vec::new()), codec, threads);
        // Uneven writes and reads, to cross block boundaries mid-call.
        for (i, chunk) in data.chunks(777_777).enumerate() {
            if i % 2 == 0 {
                w.write_all(chunk).unwrap();
            } else {
                let mut r = chunk;
                assert_eq!(
                    w.read_from(&mut r, chunk.len() as u64 + 5).unwrap(),
                    chunk.len() as u64
                );
            }
        }
        let (out, d, n) = w.finish().unwrap();
        (out.unwrap(), d.unwrap(), n)
    }

    fn sample() -> Vec<u8> {
        let mut data = Vec::new();
        let mut x = 1u32;
        for i in 0..(9 << 20) + 12345 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push(if i % 3 == 0 {
                (x >> 24) as u8
            } else {
                b'a' + (i % 7) as u8
            });
        }
        data
    }

    #[test]
    fn a_worker_that_panics_fails_the_stream_instead_of_hanging_it() {
        // Every 64 KiB gzip block starts with the mark: whichever block a worker takes
        // first panics it (the main thread compresses marked blocks normally).
        let mut data = Vec::new();
        while data.len() < 40 << 16 {
            data.extend_from_slice(PANIC_MARK);
            data.resize(data.len().next_multiple_of(1 << 16), b'x');
        }
        for threads in [2, 3, 8] {
            WORKER_PANICKED.store(false, std::sync::atomic::Ordering::SeqCst);
            let data = data.clone();
            let (tx, rx) = mpsc::channel();
            thread::Builder::new()
                .name("feeder".into())
                .spawn(move || {
                    let mut w = Pipeline::new(Some(Vec::new()), Some(Codec::Gzip(4)), threads);
                    let r = w.write_all(&data).and_then(|()| w.finish().map(|_| ()));
                    let _ = tx.send(r);
                })
                .unwrap();
            let r = rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("{threads} threads: the stream hung"));
            let e = r.expect_err("a worker panicked, yet the stream succeeded");
            assert!(e.to_string().contains("worker panicked"), "{threads}: {e}");
        }
    }

    #[test]
    fn round_trips_and_is_identical_across_thread_counts() {
        let data = sample();
        let want = (Digest::of(&data), data.len() as u64);
        let (one, d, n) = compress(&data, Some(Codec::Gzip(4)), 1);
        assert_eq!((d, n), want);
        for t in [2, 3, 8] {
            let (other, d, n) = compress(&data, Some(Codec::Gzip(4)), t);
            assert!(other == one, "{t} threads gave other bytes than 1");
            assert_eq!((d, n), want);
        }
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // Empty input is a valid gzip of nothing.
        let (empty, d, n) = compress(b"", Some(Codec::Gzip(4)), 2);
        assert_eq!((d, n), (Digest::of(b""), 0));
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());

        // zstd frames: the same guarantees, one valid stream.
        let (z1, d, _) = compress(&data, Some(Codec::Zstd(3)), 1);
        assert_eq!(d, want.0);
        assert!(
            compress(&data, Some(Codec::Zstd(3)), 3).0 == z1,
            "zstd differs by threads"
        );
        // 1 MiB blocks for 4 MiB, one 4 MiB block, then 1 MiB + 12345 bytes: the last
        // full block and the partial one are cut in 1 MiB pieces, 4 + 4 + 2 frames.
        let mut frames = 0;
        let mut rest = &z1[..];
        while !rest.is_empty() {
            let n = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
            let size = zstd::zstd_safe::get_frame_content_size(rest)
                .unwrap()
                .unwrap();
            assert!(size <= 1 << 20, "frame {frames} holds {size} bytes");
            rest = &rest[n..];
            frames += 1;
        }
        assert_eq!(frames, 10);
        let mut back = Vec::new();
        zstd::stream::read::Decoder::new(&z1[..])
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);

        // No codec: the stream itself, hashed; without an output, only hashed.
        assert_eq!(
            compress(&data, None, 2),
            (data.clone(), want.0.clone(), want.1)
        );
        let mut h = Pipeline::<Vec<u8>>::new(None, None, 2);
        h.write_all(&data).unwrap();
        let (out, d, n) = h.finish().unwrap();
        assert!(out.is_none());
        assert_eq!((d.unwrap(), n), want);
        // Stored: the same bytes, not hashed here (the output hashes them).
        let mut st = Pipeline::stored(Vec::new());
        st.write_all(&data).unwrap();
        let (out, d, n) = st.finish().unwrap();
        assert_eq!((out.unwrap(), d, n), (data.clone(), None, want.1));
    }

    #[test]
    fn blocks_with_the_workers_stay_within_the_memory_cap() {
        for threads in [2, 8, 64, 1024] {
            for codec in [Codec::Gzip(4), Codec::Zstd(3)] {
                let n = max_in_flight(codec, threads);
                assert!(n >= 2 && n <= threads * 2 + 1, "{codec:?} {threads}: {n}");
                assert!(
                    n * codec.max_block() <= IN_FLIGHT_BYTES,
                    "{codec:?} {threads}: {n}"
                );
            }
        }
        assert_eq!(max_in_flight(Codec::Zstd(3), 2), 5);
    }

    #[test]
    fn small_streams_and_short_reads() {
        // Smaller than a block: one frame, the hash is the same.
        let (out, d, n) = compress(b"abc", Some(Codec::Zstd(3)), 2);
        assert_eq!((d, n), (Digest::of(b"abc"), 3));
        assert_eq!(zstd::decode_all(&out[..]).unwrap(), b"abc");
        // A reader that ends early: read_from says how much it got.
        let mut w = Pipeline::new(Some(Vec::new()), None, 1);
        let mut r = &b"12345"[..];
        assert_eq!(w.read_from(&mut r, 9).unwrap(), 5);
        let (out, _, n) = w.finish().unwrap();
        assert_eq!((out.unwrap(), n), (b"12345".to_vec(), 5));
    }
}
