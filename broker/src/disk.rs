//! The storage seam on io_uring: segment files are glommio `BufferedFile`s (buffered I/O
//! through the shard's ring, so reads come from the page cache); small whole files
//! (indexes, snapshots, checkpoints) are written through a temporary file and renamed.
//!
//! Lives on: each shard (files are opened on, and stay with, the shard that owns them).

use bytes::Bytes;
use glommio::io::{BufferedFile, OpenOptions};
use sluice_storage::disk::{Disk, SegmentFile, StdDisk};
use std::io;
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct GlommioDisk;

pub struct GlommioFile {
    file: BufferedFile,
}

fn gio<T>(e: glommio::GlommioError<T>) -> io::Error {
    io::Error::other(e.to_string())
}

impl SegmentFile for GlommioFile {
    async fn write_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<()> {
        let len = buf.len();
        let n = self.file.write_at(buf, pos).await.map_err(gio)?;
        if n != len {
            // On a regular file a short buffered write means the disk is full (or failing):
            // report it, and the log stops taking writes rather than acknowledging a gap.
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {n} of {len} bytes at {pos}"),
            ));
        }
        Ok(())
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let r = self.file.read_at(pos, len).await.map_err(gio)?;
        Ok(Bytes::copy_from_slice(&r))
    }

    async fn sync(&self) -> io::Result<()> {
        self.file.fdatasync().await.map_err(gio)
    }

    async fn size(&self) -> io::Result<u64> {
        self.file.file_size().await.map_err(gio)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.truncate(len).await.map_err(gio)
    }
}

impl Disk for GlommioDisk {
    type File = GlommioFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<GlommioFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .buffered_open(path)
            .await
            .map_err(gio)?;
        Ok(GlommioFile { file })
    }
    // Directory and whole-file operations are rare (start-up, roll, retention) and small:
    // the blocking std implementation serves both disks.
    async fn remove(&self, path: &Path) -> io::Result<()> {
        StdDisk.remove(path).await
    }
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdDisk.list_dir(dir).await
    }
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdDisk.create_dir_all(dir).await
    }
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdDisk.remove_dir_all(dir).await
    }
    async fn write_file_atomic(&self, path: &Path, data: Vec<u8>) -> io::Result<()> {
        StdDisk.write_file_atomic(path, data).await
    }
    async fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        StdDisk.read_file(path).await
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdDisk.rename(from, to).await
    }
    fn exists(&self, path: &Path) -> bool {
        StdDisk.exists(path)
    }
}
