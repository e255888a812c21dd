//! The disk seam. Every byte the log stores goes through these two traits, so tests can run
//! the real log code against memory, inject failures, and simulate a crash that loses
//! everything not yet fsynced.

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A file of a segment (or index). Positions are absolute byte offsets.
pub trait SegmentFile {
    async fn write_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<()>;
    /// Reads up to `len` bytes at `pos` (fewer at end of file).
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes>;
    /// fdatasync. A failure here is final for the log that called it.
    async fn sync(&self) -> io::Result<()>;
    async fn size(&self) -> io::Result<u64>;
    async fn truncate(&self, len: u64) -> io::Result<()>;
}

/// File-system operations. Whole-file helpers are for small files (indexes, snapshots,
/// checkpoints) and write through a temporary file and rename.
pub trait Disk: Clone + 'static {
    type File: SegmentFile + 'static;
    async fn open(&self, path: &Path, create: bool) -> io::Result<Self::File>;
    async fn remove(&self, path: &Path) -> io::Result<()>;
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    async fn write_file_atomic(&self, path: &Path, data: Vec<u8>) -> io::Result<()>;
    async fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;
    /// Atomically replaces `to` with `from` (rename(2)).
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
}

// ---------------------------------------------------------------------------------------
// StdDisk: blocking std::fs, for tools and tests on a real file system.

/// Blocking std::fs implementation. Not for shards (it blocks the executor); for tools,
/// recovery tests on real files, and offline inspection.
#[derive(Clone, Debug, Default)]
pub struct StdDisk;

#[derive(Debug)]
pub struct StdFile {
    file: std::fs::File,
}

impl SegmentFile for StdFile {
    async fn write_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(&buf, pos)
    }
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let size = self.file.metadata()?.len();
        let len = len.min(size.saturating_sub(pos) as usize);
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, pos)?;
        Ok(Bytes::from(buf))
    }
    async fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    async fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

impl Disk for StdDisk {
    type File = StdFile;
    async fn open(&self, path: &Path, create: bool) -> io::Result<StdFile> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(StdFile { file })
    }
    async fn remove(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            out.push(e?.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
    async fn write_file_atomic(&self, path: &Path, data: Vec<u8>) -> io::Result<()> {
        write_file_atomic_std(path, &data)
    }
    async fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)?;
        // The rename is durable only once the directory is.
        if let Some(dir) = to.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// Writes `data` to `path` through `path.tmp`, fsyncs it, renames, and fsyncs the directory.
pub fn write_file_atomic_std(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!(
        "{}tmp",
        path.extension()
            .map(|e| format!("{}.", e.to_string_lossy()))
            .unwrap_or_default()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// MemDisk: memory-backed, with fault injection and crash simulation.

#[derive(Debug, Default)]
struct MemFileData {
    /// What a reader sees (the page cache).
    data: Vec<u8>,
    /// What survives a crash (the platter): updated by `sync`.
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct MemDiskState {
    files: BTreeMap<PathBuf, Rc<RefCell<MemFileData>>>,
    dirs: std::collections::BTreeSet<PathBuf>,
}

/// In-memory disk. Lives on: one thread (tests).
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    state: Rc<RefCell<MemDiskState>>,
    faults: Rc<Faults>,
}

/// Switches for failure injection.
#[derive(Debug, Default)]
pub struct Faults {
    pub fail_sync: Cell<bool>,
    pub fail_write: Cell<bool>,
    pub syncs: Cell<u64>,
    pub writes: Cell<u64>,
}

#[derive(Debug, Clone)]
pub struct MemFile {
    data: Rc<RefCell<MemFileData>>,
    faults: Rc<Faults>,
}

impl MemDisk {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Simulates power loss: every file is cut back to what was last fsynced. Whole-file
    /// writes (`write_file_atomic`) are durable when they return.
    pub fn crash(&self) {
        for f in self.state.borrow().files.values() {
            let mut f = f.borrow_mut();
            f.data = f.durable.clone();
        }
    }

    /// Simulates a torn write: appends `garbage` to the visible and durable content of a file.
    pub fn append_garbage(&self, path: &Path, garbage: &[u8]) {
        let st = self.state.borrow();
        let mut f = st.files.get(path).expect("file exists").borrow_mut();
        f.data.extend_from_slice(garbage);
        f.durable = f.data.clone();
    }

    pub fn file_len(&self, path: &Path) -> Option<usize> {
        self.state
            .borrow()
            .files
            .get(path)
            .map(|f| f.borrow().data.len())
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.state.borrow().files.keys().cloned().collect()
    }
}

impl SegmentFile for MemFile {
    async fn write_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<()> {
        if self.faults.fail_write.get() {
            return Err(io::Error::other("injected write failure"));
        }
        self.faults.writes.set(self.faults.writes.get() + 1);
        let mut f = self.data.borrow_mut();
        let end = pos as usize + buf.len();
        if f.data.len() < end {
            f.data.resize(end, 0);
        }
        f.data[pos as usize..end].copy_from_slice(&buf);
        Ok(())
    }
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let f = self.data.borrow();
        let start = (pos as usize).min(f.data.len());
        let end = (start + len).min(f.data.len());
        Ok(Bytes::copy_from_slice(&f.data[start..end]))
    }
    async fn sync(&self) -> io::Result<()> {
        if self.faults.fail_sync.get() {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.faults.syncs.set(self.faults.syncs.get() + 1);
        let mut f = self.data.borrow_mut();
        f.durable = f.data.clone();
        Ok(())
    }
    async fn size(&self) -> io::Result<u64> {
        Ok(self.data.borrow().data.len() as u64)
    }
    async fn truncate(&self, len: u64) -> io::Result<()> {
        let mut f = self.data.borrow_mut();
        f.data.truncate(len as usize);
        let l = f.durable.len().min(len as usize);
        f.durable.truncate(l);
        Ok(())
    }
}

impl Disk for MemDisk {
    type File = MemFile;
    async fn open(&self, path: &Path, create: bool) -> io::Result<MemFile> {
        let mut st = self.state.borrow_mut();
        let data = match st.files.get(path) {
            Some(d) => d.clone(),
            None if create => {
                let d = Rc::new(RefCell::new(MemFileData::default()));
                st.files.insert(path.to_path_buf(), d.clone());
                d
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}", path.display()),
                ))
            }
        };
        Ok(MemFile {
            data,
            faults: self.faults.clone(),
        })
    }
    async fn remove(&self, path: &Path) -> io::Result<()> {
        self.state.borrow_mut().files.remove(path);
        Ok(())
    }
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.state.borrow();
        let mut out: Vec<String> = st
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        out.extend(
            st.dirs
                .iter()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())),
        );
        out.sort();
        Ok(out)
    }
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.state.borrow_mut().dirs.insert(dir.to_path_buf());
        Ok(())
    }
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        st.files.retain(|p, _| !p.starts_with(dir));
        st.dirs.retain(|p| !p.starts_with(dir));
        Ok(())
    }
    async fn write_file_atomic(&self, path: &Path, data: Vec<u8>) -> io::Result<()> {
        if self.faults.fail_write.get() {
            return Err(io::Error::other("injected write failure"));
        }
        let d = Rc::new(RefCell::new(MemFileData {
            data: data.clone(),
            durable: data,
        }));
        self.state.borrow_mut().files.insert(path.to_path_buf(), d);
        Ok(())
    }
    async fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        Ok(self
            .state
            .borrow()
            .files
            .get(path)
            .map(|f| f.borrow().data.clone()))
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        let f = st.files.remove(from).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{}", from.display()))
        })?;
        {
            // A rename is durable once done (the cleaner fsyncs the file first).
            let mut d = f.borrow_mut();
            d.durable = d.data.clone();
        }
        st.files.insert(to.to_path_buf(), f);
        Ok(())
    }
    fn exists(&self, path: &Path) -> bool {
        self.state.borrow().files.contains_key(path)
    }
}
