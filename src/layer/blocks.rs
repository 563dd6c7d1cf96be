//! Block-parallel compression: the input is cut into fixed-size blocks, each compressed
//! on a worker into a complete, independent frame, and the frames are written in order.
//!
//! * gzip: 256 KiB blocks, each a gzip member made by libdeflate. Concatenated members are
//!   valid gzip (RFC 1952 §2.2) that Go's, zlib's and GNU gzip's readers read whole;
//!   eStargz layers are built the same way.
//! * zstd: 4 MiB blocks, each a zstd frame; concatenated frames are one valid zstd
//!   stream (RFC 8878 §3.1).
//!
//! Blocks depend only on the data, so the bytes are identical whatever the number of
//! threads, and the work spreads evenly over every core.
//!
//! Why libdeflate rather than flate2's zlib-rs (DESIGN.md's choice) for gzip: measured
//! on a 90 MB Go binary in 1 MiB blocks, libdeflate level 4 made 27.9 MB in 0.70 s of
//! CPU where zlib-rs needed level 4 and 0.96 s for 28.4 MB; umoci's output was 28.8 MB.
//! flate2 still does all decompression.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;

/// A block codec: makes one complete, independent frame of a block.
#[derive(Clone, Copy, Debug)]
pub enum Codec {
    /// gzip members at a libdeflate level (1–12).
    Gzip(u32),
    /// zstd frames at a zstd level.
    Zstd(i32),
}

impl Codec {
    fn block_size(&self) -> usize {
        match self {
            // 256 KiB: a static hello world (~750 KiB) spreads over both cores (build
            // 17.7 -> 13.2 ms) for 0.6% more bytes on a 90 MB binary than 1 MiB blocks,
            // still 2.5% under umoci; 128 KiB was no faster and 1.4% larger.
            Codec::Gzip(_) => 256 << 10,
            Codec::Zstd(_) => 4 << 20,
        }
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
    /// One block as one frame. libdeflate's gzip header has no name and mtime 0, and
    /// zstd frames carry no time either: nothing from the host reaches the bytes.
    fn compress(&mut self, job: Job) -> io::Result<Done> {
        let out = match self {
            Encoder::Gzip(c) => {
                let mut out = vec![0; c.gzip_compress_bound(job.data.len())];
                let n = c
                    .gzip_compress(&job.data, &mut out)
                    .map_err(|e| io::Error::other(format!("gzip compression failed: {e:?}")))?;
                out.truncate(n);
                out
            }
            Encoder::Zstd(c) => c.compress(&job.data)?,
        };
        Ok(Done {
            index: job.index,
            out,
        })
    }
}

struct Job {
    index: u64,
    data: Vec<u8>,
}

struct Done {
    index: u64,
    out: Vec<u8>,
}

/// A writer that compresses blocks on `threads` workers (inline when 1).
pub struct ParallelBlocks<W: Write> {
    inner: Option<W>,
    buf: Vec<u8>,
    next_index: u64,
    next_write: u64,
    inline: Option<Encoder>,
    block: usize,
    jobs: Option<mpsc::SyncSender<Job>>,
    results: Option<mpsc::Receiver<io::Result<Done>>>,
    workers: Vec<thread::JoinHandle<()>>,
    pending: BTreeMap<u64, Vec<u8>>,
    in_flight: usize,
    max_in_flight: usize,
    /// The codec and thread count, until the workers are started.
    codec: Option<(Codec, usize)>,
}

impl<W: Write> ParallelBlocks<W> {
    /// Starts a stream of `codec` frames into `inner` with `threads` workers.
    pub fn new(inner: W, codec: Codec, threads: u32) -> io::Result<Self> {
        let threads = threads.max(1) as usize;
        let block = codec.block_size();
        let mut me = ParallelBlocks {
            inner: Some(inner),
            buf: Vec::with_capacity(block),
            block,
            next_index: 0,
            next_write: 0,
            inline: None,
            jobs: None,
            results: None,
            workers: Vec::new(),
            pending: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: threads * 2,
            codec: None,
        };
        // Workers start when the first block fills: a layer smaller than one block is
        // compressed inline at `finish`, without the cost of starting threads. The bytes
        // are the same either way.
        me.inline = Some(codec.encoder()?);
        me.codec = Some((codec, threads));
        Ok(me)
    }

    fn start_workers(&mut self) -> io::Result<()> {
        let Some((codec, threads)) = self.codec.take() else {
            return Ok(());
        };
        if threads == 1 {
            return Ok(());
        }
        self.inline = None;
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
        let (res_tx, res_rx) = mpsc::channel();
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        for _ in 0..threads {
            let rx = job_rx.clone();
            let tx = res_tx.clone();
            let mut c = codec.encoder()?;
            self.workers.push(thread::spawn(move || loop {
                let job = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                if tx.send(c.compress(job)).is_err() {
                    return;
                }
            }));
        }
        self.jobs = Some(job_tx);
        self.results = Some(res_rx);
        Ok(())
    }

    /// Hands the buffered block to a worker (or compresses it inline).
    fn submit(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.block));
        let job = Job {
            index: self.next_index,
            data,
        };
        self.next_index += 1;
        if let Some(c) = self.inline.as_mut() {
            let done = c.compress(job)?;
            return self.emit(done.out);
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
        self.pending.insert(done.index, done.out);
        while let Some(out) = self.pending.remove(&self.next_write) {
            self.emit(out)?;
        }
        Ok(())
    }

    fn emit(&mut self, out: Vec<u8>) -> io::Result<()> {
        self.next_write += 1;
        self.inner.as_mut().expect("not finished").write_all(&out)
    }

    /// Compresses what is buffered and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        // An empty stream still gets one (empty) frame, so it is a valid stream.
        if !self.buf.is_empty() || self.next_index == 0 {
            self.submit()?;
        }
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        Ok(self.inner.take().expect("finish runs once"))
    }
}

impl<W: Write> Write for ParallelBlocks<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.block - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.block {
            self.start_workers()?;
            self.submit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParallelBlocks<W> {
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
        compress(data, Codec::Gzip(4), threads)
    }

    fn compress(data: &[u8], codec: Codec, threads: u32) -> Vec<u8> {
        let mut w = ParallelBlocks::new(Vec::new(), codec, threads).unwrap();
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
        for i in 0..(9 << 20) + 12345 {
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
        flate2::read::MultiGzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // Empty input is a valid gzip of nothing.
        let empty = gz(b"", 2);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());

        // zstd frames: the same guarantees, one valid stream.
        let z1 = compress(&data, Codec::Zstd(3), 1);
        assert!(
            compress(&data, Codec::Zstd(3), 3) == z1,
            "zstd differs by threads"
        );
        let mut back = Vec::new();
        zstd::stream::read::Decoder::new(&z1[..])
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }
}
