//! The state of a dedup step: an append-only log of fixed-size records (the truth: exact
//! dedup's content hashes, near dedup's MinHash signatures) and an index of 64-bit keys →
//! record numbers over it that lives mostly on disk, so memory stays bounded however much the
//! state holds.
//!
//! The index is a small log-structured merge tree: new keys go to an in-memory table; at a
//! commit where that table is full it is written out as a sorted segment file, and segments of
//! the same size class are merged. A lookup asks the table, then a split-block Bloom filter
//! over every key on disk (one cache line a lookup; grown by doubling at ~10 bits a key until
//! it reaches its memory budget, past which it only fills up: more false positives, never
//! more memory); only when the filter says yes are the segments read — the first key of each
//! 4 KB block (fences, in memory) says which block, one positioned read fetches it.
//!
//! Records are read back by number (positioned reads of the log, or the batch not yet
//! committed) so callers can confirm a candidate. Because every candidate is confirmed against
//! its record, stale keys never mislead: after a resume cuts the log back, keys that pointed
//! past the cut only cost a read.
//!
//! On disk, beside `NAME.log`: `NAME.idx/manifest.json` (the segments, and how many records
//! their keys cover) and `NAME.idx/seg-N.bin` (12-byte entries: key, record number, little
//! endian, sorted by key). The index is derived data: at open, records the manifest does not
//! cover are read from the log again; an index that does not match is rebuilt from the log.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use sbbf_rs_safe::Filter;
use serde::{Deserialize, Serialize};

const ENTRY: usize = 12;
const BLOCK_ENTRIES: usize = 341;
const BLOCK: usize = ENTRY * BLOCK_ENTRIES;

/// How a store is sized.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Keys held in memory before they are written out as a segment.
    pub table_keys: usize,
    /// The most memory the Bloom filter over the segments may take.
    pub filter_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            table_keys: 1 << 20,
            filter_bytes: 256 << 20,
        }
    }
}

/// Computes the index keys of one record.
pub type KeysOf = Box<dyn Fn(&[u8], &mut Vec<u64>) + Send>;

pub struct Store {
    log_path: PathBuf,
    log: File,
    rec: usize,
    /// Records durable in the log.
    committed: u64,
    /// Records pushed since the last commit, back to back.
    pending: Vec<u8>,
    index: Index,
    keys_of: KeysOf,
    keys_buf: Vec<u64>,
}

impl Store {
    /// Opens (or creates) `dir/NAME.log` of `rec`-byte records and its index.
    pub fn open(
        dir: &Path,
        name: &str,
        rec: usize,
        limits: StoreLimits,
        keys_of: KeysOf,
    ) -> std::io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        let log_path = dir.join(format!("{name}.log"));
        let log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)?;
        let bytes = log.metadata()?.len();
        if bytes % rec as u64 != 0 {
            // a record cut short (a crash mid-append before this layout was durable): drop it
            log.set_len(bytes - bytes % rec as u64)?;
        }
        let committed = bytes / rec as u64;
        let index = Index::open(dir.join(format!("{name}.idx")), limits)?;
        let mut s = Store {
            log_path,
            log,
            rec,
            committed,
            pending: Vec::new(),
            index,
            keys_of,
            keys_buf: Vec::new(),
        };
        s.catch_up()?;
        Ok(s)
    }

    /// Puts the keys of the records the index does not cover into its table.
    fn catch_up(&mut self) -> std::io::Result<()> {
        if self.index.covered > self.committed {
            // the log was cut below what the segments cover: their keys past the cut would
            // answer every later lookup of the same texts, so the index is built again
            self.index.clear()?;
        }
        let mut f = BufReader::with_capacity(1 << 20, File::open(&self.log_path)?);
        f.seek(SeekFrom::Start(self.index.covered * self.rec as u64))?;
        let mut buf = vec![0u8; self.rec];
        for ord in self.index.covered..self.committed {
            f.read_exact(&mut buf)?;
            self.keys_buf.clear();
            (self.keys_of)(&buf, &mut self.keys_buf);
            for &k in &self.keys_buf {
                self.index.insert(k, ord as u32);
            }
            if self.index.table.len() >= self.index.limits.table_keys {
                self.index.flush(ord + 1)?;
            }
        }
        Ok(())
    }

    /// Records held (committed and pending).
    pub fn len(&self) -> u64 {
        self.committed + (self.pending.len() / self.rec) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a record (durable at the next commit) and indexes it under its keys; returns
    /// its number.
    pub fn push(&mut self, record: &[u8]) -> u32 {
        debug_assert_eq!(record.len(), self.rec);
        let ord = self.len() as u32;
        self.pending.extend_from_slice(record);
        self.keys_buf.clear();
        (self.keys_of)(record, &mut self.keys_buf);
        for &k in &self.keys_buf {
            self.index.insert(k, ord);
        }
        ord
    }

    /// Record numbers indexed under `key` (added to `out`; records past the end left out).
    pub fn candidates(&self, key: u64, out: &mut Vec<u32>) -> std::io::Result<()> {
        let from = out.len();
        self.index.get(key, out)?;
        let len = self.len();
        let mut i = from;
        while i < out.len() {
            if (out[i] as u64) < len {
                i += 1;
            } else {
                out.swap_remove(i);
            }
        }
        Ok(())
    }

    /// Reads record `ord` into `buf`.
    pub fn record(&self, ord: u32, buf: &mut [u8]) -> std::io::Result<()> {
        let ord = ord as u64;
        if ord >= self.committed {
            let at = (ord - self.committed) as usize * self.rec;
            match self.pending.get(at..at + self.rec) {
                Some(r) => buf.copy_from_slice(r),
                None => return Err(std::io::Error::other(format!("record {ord} is not held"))),
            }
            Ok(())
        } else {
            self.log.read_exact_at(buf, ord * self.rec as u64)
        }
    }

    /// Makes the pending records durable; returns the log's length in bytes (the mark a
    /// checkpoint records).
    pub fn commit(&mut self) -> std::io::Result<u64> {
        if !self.pending.is_empty() {
            if let Err(e) = (&self.log).write_all(&self.pending) {
                // a full disk: the log keeps whole records only
                let _ = self.log.set_len(self.committed * self.rec as u64);
                return Err(e);
            }
            self.committed += (self.pending.len() / self.rec) as u64;
            self.pending.clear();
        }
        self.log.sync_data()?;
        if self.index.table.len() >= self.index.limits.table_keys {
            self.index.flush(self.committed)?;
        }
        Ok(self.committed * self.rec as u64)
    }

    /// Cuts the log back to `bytes` (a checkpoint's mark) and the index with it.
    pub fn restore(&mut self, bytes: u64) -> std::io::Result<()> {
        self.pending.clear();
        let now = self.log.metadata()?.len();
        if bytes > now || !bytes.is_multiple_of(self.rec as u64) {
            return Err(std::io::Error::other(format!(
                "{}: holds {now} bytes, the checkpoint expects {bytes}: the state folder was changed",
                self.log_path.display()
            )));
        }
        self.log.set_len(bytes)?;
        self.log.sync_data()?;
        self.committed = bytes / self.rec as u64;
        let keep = self.committed;
        self.index.table.retain(|_, o| (*o as u64) < keep);
        self.catch_up()
    }

    /// Memory the index holds now (table and filters, fences), for the benchmark's notes.
    pub fn index_memory(&self) -> usize {
        self.index.table.capacity() * 17
            + self.index.filter.as_bytes().len()
            + self
                .index
                .segs
                .iter()
                .map(|s| s.fences.len() * 8)
                .sum::<usize>()
    }

    /// Segment files on disk now.
    pub fn segments(&self) -> usize {
        self.index.segs.len()
    }
}

#[derive(Debug, Serialize, Deserialize, Default)]
struct Manifest {
    /// Records whose keys are all in the segments.
    covered: u64,
    next_id: u64,
    segments: Vec<SegMeta>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SegMeta {
    id: u64,
    level: u32,
    entries: u64,
}

struct Segment {
    meta: SegMeta,
    path: PathBuf,
    file: File,
    fences: Vec<u64>,
}

impl Segment {
    /// Opens a written segment: reads it once for its fences, passing each key to `each`.
    fn load(dir: &Path, meta: SegMeta, mut each: impl FnMut(u64)) -> std::io::Result<Segment> {
        let path = dir.join(format!("seg-{}.bin", meta.id));
        let file = File::open(&path)?;
        if file.metadata()?.len() != meta.entries * ENTRY as u64 {
            return Err(std::io::Error::other(format!(
                "{}: not the size its manifest gives",
                path.display()
            )));
        }
        let mut fences = Vec::with_capacity(meta.entries as usize / BLOCK_ENTRIES + 1);
        let mut r = BufReader::with_capacity(1 << 20, &file);
        let mut e = [0u8; ENTRY];
        for i in 0..meta.entries as usize {
            r.read_exact(&mut e)?;
            let (k, _) = decode(&e);
            if i % BLOCK_ENTRIES == 0 {
                fences.push(k);
            }
            each(k);
        }
        drop(r);
        Ok(Segment {
            meta,
            path,
            file,
            fences,
        })
    }

    /// Every key, in order (for rebuilding the filter).
    fn for_each_key(&self, mut each: impl FnMut(u64)) -> std::io::Result<()> {
        let mut r = BufReader::with_capacity(1 << 20, File::open(&self.path)?);
        let mut e = [0u8; ENTRY];
        for _ in 0..self.meta.entries {
            r.read_exact(&mut e)?;
            each(decode(&e).0);
        }
        Ok(())
    }

    fn get(&self, key: u64, out: &mut Vec<u32>, block: &mut Vec<u8>) -> std::io::Result<()> {
        // the first block that may hold it: equal keys may run over from the block before
        let mut b = self.fences.partition_point(|&f| f < key).saturating_sub(1);
        let entries = self.meta.entries as usize;
        while b < self.fences.len() && self.fences[b] <= key {
            let n = BLOCK_ENTRIES.min(entries - b * BLOCK_ENTRIES);
            block.resize(n * ENTRY, 0);
            self.file.read_exact_at(block, (b * BLOCK) as u64)?;
            let mut past = false;
            for e in block.chunks_exact(ENTRY) {
                let (k, o) = decode(e);
                if k == key {
                    out.push(o);
                } else if k > key {
                    past = true;
                    break;
                }
            }
            if past {
                break;
            }
            b += 1;
        }
        Ok(())
    }
}

/// Bits of filter per key while the budget allows (~1% false positives for a split-block
/// filter).
const FILTER_BITS_PER_KEY: usize = 12;

fn decode(e: &[u8]) -> (u64, u32) {
    let mut k = [0u8; 8];
    k.copy_from_slice(&e[..8]);
    let mut o = [0u8; 4];
    o.copy_from_slice(&e[8..12]);
    (u64::from_le_bytes(k), u32::from_le_bytes(o))
}

struct Index {
    dir: PathBuf,
    limits: StoreLimits,
    table: FxHashMap<u64, u32>,
    covered: u64,
    next_id: u64,
    segs: Vec<Segment>,
    /// Every key in the segments.
    filter: Filter,
    /// Keys the filter was sized for, and keys in it.
    filter_cap: u64,
    filter_keys: u64,
    block: std::cell::RefCell<Vec<u8>>,
}

impl Index {
    /// A filter for `keys` keys at [`FILTER_BITS_PER_KEY`], or as many as the budget holds.
    fn sized_filter(limits: &StoreLimits, keys: u64) -> (Filter, u64) {
        let most = (limits.filter_bytes * 8 / FILTER_BITS_PER_KEY).max(1024) as u64;
        let cap = keys.max(1 << 16).min(most);
        (Filter::new(FILTER_BITS_PER_KEY, cap as usize), cap)
    }

    fn open(dir: PathBuf, limits: StoreLimits) -> std::io::Result<Index> {
        std::fs::create_dir_all(&dir)?;
        let (filter, filter_cap) = Index::sized_filter(&limits, 0);
        let mut ix = Index {
            dir,
            limits,
            table: FxHashMap::default(),
            covered: 0,
            next_id: 0,
            segs: Vec::new(),
            filter,
            filter_cap,
            filter_keys: 0,
            block: std::cell::RefCell::new(Vec::with_capacity(BLOCK)),
        };
        let manifest: Option<Manifest> = std::fs::read(ix.dir.join("manifest.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(m) = manifest {
            let total: u64 = m.segments.iter().map(|s| s.entries).sum();
            let (mut filter, cap) = Index::sized_filter(&limits, total * 2);
            let mut segs = Vec::new();
            let mut ok = true;
            for meta in m.segments {
                match Segment::load(&ix.dir, meta, |k| {
                    filter.insert_hash(k);
                }) {
                    Ok(s) => segs.push(s),
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
            // an index that does not match its files is rebuilt from the log
            if ok {
                ix.covered = m.covered;
                ix.next_id = m.next_id;
                ix.segs = segs;
                ix.filter = filter;
                ix.filter_cap = cap;
                ix.filter_keys = total;
            }
        }
        // files no manifest names (a flush or merge cut short) are removed
        let named: Vec<PathBuf> = ix.segs.iter().map(|s| s.path.clone()).collect();
        for e in std::fs::read_dir(&ix.dir)?.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n != "manifest.json") && !named.contains(&p) {
                let _ = std::fs::remove_file(&p);
            }
        }
        Ok(ix)
    }

    fn insert(&mut self, key: u64, ord: u32) {
        self.table.entry(key).or_insert(ord);
    }

    /// Forgets every key (segments removed): the log is read again from the start.
    fn clear(&mut self) -> std::io::Result<()> {
        self.table.clear();
        let segs = std::mem::take(&mut self.segs);
        self.covered = 0;
        let (filter, cap) = Index::sized_filter(&self.limits, 0);
        self.filter = filter;
        self.filter_cap = cap;
        self.filter_keys = 0;
        self.save_manifest()?;
        for s in segs {
            let _ = std::fs::remove_file(&s.path);
        }
        Ok(())
    }

    fn get(&self, key: u64, out: &mut Vec<u32>) -> std::io::Result<()> {
        if let Some(&o) = self.table.get(&key) {
            out.push(o);
        }
        if self.segs.is_empty() || !self.filter.contains_hash(key) {
            return Ok(());
        }
        let mut block = self.block.borrow_mut();
        for s in &self.segs {
            s.get(key, out, &mut block)?;
        }
        Ok(())
    }

    fn save_manifest(&self) -> std::io::Result<()> {
        let m = Manifest {
            covered: self.covered,
            next_id: self.next_id,
            segments: self.segs.iter().map(|s| s.meta.clone()).collect(),
        };
        let tmp = self.dir.join("manifest.json.tmp");
        let bytes = serde_json::to_vec(&m).map_err(std::io::Error::other)?;
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, self.dir.join("manifest.json"))
    }

    /// Writes sorted entries as a new segment file (fsynced) and opens it.
    fn write_segment(
        &mut self,
        level: u32,
        entries: impl Iterator<Item = std::io::Result<(u64, u32)>>,
    ) -> std::io::Result<Segment> {
        let id = self.next_id;
        self.next_id += 1;
        let path = self.dir.join(format!("seg-{id}.bin"));
        let file = File::create(&path)?;
        let mut w = BufWriter::with_capacity(1 << 20, &file);
        let mut n = 0u64;
        let mut fences = Vec::new();
        for e in entries {
            let (k, o) = e?;
            if (n as usize).is_multiple_of(BLOCK_ENTRIES) {
                fences.push(k);
            }
            w.write_all(&k.to_le_bytes())?;
            w.write_all(&o.to_le_bytes())?;
            n += 1;
        }
        w.flush()?;
        drop(w);
        file.sync_data()?;
        Ok(Segment {
            meta: SegMeta {
                id,
                level,
                entries: n,
            },
            file: File::open(&path)?,
            path,
            fences,
        })
    }

    /// Writes the table out as a segment covering records below `covered`, then merges
    /// segments of the same size class.
    fn flush(&mut self, covered: u64) -> std::io::Result<()> {
        let mut entries: Vec<(u64, u32)> = self.table.drain().collect();
        entries.sort_unstable();
        let n = entries.len() as u64;
        if self.filter_keys + n > self.filter_cap {
            self.grow_filter(self.filter_keys + n)?;
        }
        for (k, _) in &entries {
            self.filter.insert_hash(*k);
        }
        self.filter_keys += n;
        let seg = self.write_segment(0, entries.into_iter().map(Ok))?;
        self.segs.push(seg);
        self.covered = covered;
        self.save_manifest()?;
        while self.segs.len() >= 2
            && self.segs[self.segs.len() - 1].meta.level
                == self.segs[self.segs.len() - 2].meta.level
        {
            let b = self.segs.pop().expect("two segments");
            let a = self.segs.pop().expect("two segments");
            let merged = self.write_segment(a.meta.level + 1, merge(&a, &b)?)?;
            self.segs.push(merged);
            self.save_manifest()?;
            let _ = std::fs::remove_file(&a.path);
            let _ = std::fs::remove_file(&b.path);
        }
        Ok(())
    }

    /// A filter twice the keys' size (within the budget), filled again from the segments.
    fn grow_filter(&mut self, keys: u64) -> std::io::Result<()> {
        let (mut filter, cap) = Index::sized_filter(&self.limits, keys * 2);
        if cap <= self.filter_cap {
            // at the budget: the filter stays as it is and fills up
            return Ok(());
        }
        for s in &self.segs {
            s.for_each_key(|k| {
                filter.insert_hash(k);
            })?;
        }
        self.filter = filter;
        self.filter_cap = cap;
        Ok(())
    }
}

/// The entries of two segments in key order (both kept where keys are equal).
fn merge(
    a: &Segment,
    b: &Segment,
) -> std::io::Result<impl Iterator<Item = std::io::Result<(u64, u32)>>> {
    struct Run {
        r: BufReader<File>,
        left: u64,
    }
    impl Run {
        fn next(&mut self) -> std::io::Result<Option<(u64, u32)>> {
            if self.left == 0 {
                return Ok(None);
            }
            self.left -= 1;
            let mut e = [0u8; ENTRY];
            self.r.read_exact(&mut e)?;
            Ok(Some(decode(&e)))
        }
    }
    let open = |s: &Segment| -> std::io::Result<Run> {
        Ok(Run {
            r: BufReader::with_capacity(1 << 20, File::open(&s.path)?),
            left: s.meta.entries,
        })
    };
    let (mut ra, mut rb) = (open(a)?, open(b)?);
    let mut ha = ra.next()?;
    let mut hb = rb.next()?;
    Ok(std::iter::from_fn(move || {
        let take_a = match (ha, hb) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => x <= y,
        };
        let (out, next) = if take_a {
            (ha, ra.next())
        } else {
            (hb, rb.next())
        };
        match next {
            Ok(n) => {
                if take_a {
                    ha = n;
                } else {
                    hb = n;
                }
                out.map(Ok)
            }
            Err(e) => {
                ha = None;
                hb = None;
                Some(Err(e))
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys8(r: &[u8], out: &mut Vec<u64>) {
        out.push(u64::from_le_bytes(r[..8].try_into().unwrap()) % 1000);
    }

    fn small() -> StoreLimits {
        StoreLimits {
            table_keys: 50,
            filter_bytes: 1 << 10,
        }
    }

    #[test]
    fn keys_are_found_in_the_table_in_segments_and_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path(), "t", 8, small(), Box::new(keys8)).unwrap();
        for i in 0..2000u64 {
            s.push(&i.to_le_bytes());
            if i % 37 == 0 {
                s.commit().unwrap();
            }
        }
        let mark = s.commit().unwrap();
        assert_eq!(mark, 2000 * 8);
        assert!(s.segments() >= 1, "the table was written out");
        let check = |s: &Store| {
            for key in [0u64, 1, 499, 999] {
                let mut out = Vec::new();
                s.candidates(key, &mut out).unwrap();
                out.sort();
                // key k is the key of records k, k+1000: the table keeps the first it saw,
                // segments keep every one
                assert!(out.contains(&(key as u32)), "{key}: {out:?}");
                let mut buf = [0u8; 8];
                s.record(key as u32, &mut buf).unwrap();
                assert_eq!(u64::from_le_bytes(buf), key);
            }
            let mut out = Vec::new();
            s.candidates(5000, &mut out).unwrap();
            assert!(out.is_empty());
        };
        check(&s);
        drop(s);
        let s = Store::open(dir.path(), "t", 8, small(), Box::new(keys8)).unwrap();
        assert_eq!(s.len(), 2000);
        check(&s);
    }

    #[test]
    fn restore_forgets_records_past_the_mark_and_a_lost_index_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path(), "t", 8, small(), Box::new(keys8)).unwrap();
        for i in 0..500u64 {
            s.push(&i.to_le_bytes());
        }
        let mark = s.commit().unwrap();
        for i in 500..900u64 {
            s.push(&i.to_le_bytes());
            if i % 100 == 0 {
                s.commit().unwrap();
            }
        }
        s.commit().unwrap();
        s.restore(mark).unwrap();
        assert_eq!(s.len(), 500);
        let mut out = Vec::new();
        s.candidates(700, &mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
        // a new record at a reused number is found under its own key
        let ord = s.push(&7700u64.to_le_bytes());
        assert_eq!(ord, 500);
        s.commit().unwrap();
        drop(s);
        // the index folder lost: rebuilt from the log
        std::fs::remove_dir_all(dir.path().join("t.idx")).unwrap();
        let s = Store::open(dir.path(), "t", 8, small(), Box::new(keys8)).unwrap();
        let mut out = Vec::new();
        s.candidates(700, &mut out).unwrap();
        assert_eq!(out, vec![500]);
        let mut out = Vec::new();
        s.candidates(499, &mut out).unwrap();
        assert_eq!(out, vec![499]);
    }
}
