//! The system shared-memory extension: a client registers a POSIX shared-memory object
//! (`key`, as `shm_open` names it) at an offset and size, then names the region in an input's
//! or output's parameters (`shared_memory_region`, `shared_memory_offset`,
//! `shared_memory_byte_size`). Inputs are read where they lie (fp32 handed to the engine as a
//! view, no copy); outputs are written into the region once.

use crate::error::{Code, ProtocolError};
use lalarand_runtime::serve::{ByteBuffer, InputBuffer};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A mapping of a shared-memory object, unmapped when the last user drops it.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory shared with other processes; the server reads inputs
// and writes outputs through raw pointers within `len` and never hands out `&mut`.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps all of the shared-memory object `key` read-write.
    fn open(key: &str) -> Result<Self, String> {
        let ckey = std::ffi::CString::new(key).map_err(|_| "the key contains a NUL byte".to_string())?;
        // SAFETY: plain libc calls on a valid C string; every result is checked.
        unsafe {
            let fd = libc::shm_open(ckey.as_ptr(), libc::O_RDWR, 0);
            if fd < 0 {
                return Err(format!("shm_open: {}", std::io::Error::last_os_error()));
            }
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 {
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                return Err(format!("fstat: {e}"));
            }
            let len = st.st_size as usize;
            if len == 0 {
                libc::close(fd);
                return Err("the object is empty (ftruncate it to its size first)".into());
            }
            let ptr =
                libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
            libc::close(fd);
            if ptr == libc::MAP_FAILED {
                return Err(format!("mmap: {}", std::io::Error::last_os_error()));
            }
            Ok(Self { ptr: ptr.cast(), len })
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are the mapping made in `open`, unmapped once.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// A registered region: `byte_size` bytes at `offset` of the object `key`.
#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    pub key: String,
    pub offset: u64,
    pub byte_size: u64,
    map: Arc<Mapping>,
}

impl Region {
    /// `len` bytes at `offset` within the region, or an error naming the region and its size.
    fn check(&self, offset: u64, len: u64) -> Result<usize, ProtocolError> {
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > self.byte_size) {
            return Err(ProtocolError::invalid(format!(
                "shared memory region {:?}: {len} bytes at offset {offset} do not fit in its {} bytes",
                self.name, self.byte_size
            )));
        }
        Ok((self.offset + offset) as usize)
    }

    /// A view of `len` bytes at `offset` (of the region) as an input tensor's memory.
    pub fn view(&self, offset: u64, len: u64) -> Result<ShmView, ProtocolError> {
        let at = self.check(offset, len)?;
        Ok(ShmView { map: self.map.clone(), at, len: len as usize })
    }

    /// Writes `bytes` at `offset` (of the region).
    pub fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), ProtocolError> {
        let at = self.check(offset, bytes.len() as u64)?;
        // SAFETY: `check` kept [at, at + len) inside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.ptr.add(at), bytes.len()) };
        Ok(())
    }
}

/// Bytes of a region, kept mapped while a job reads them.
#[derive(Debug, Clone)]
pub struct ShmView {
    map: Arc<Mapping>,
    at: usize,
    len: usize,
}

impl ShmView {
    /// Whether the view can be read as f32 in place (4-byte aligned).
    pub fn is_f32_aligned(&self) -> bool {
        (self.map.ptr as usize + self.at).is_multiple_of(std::mem::align_of::<f32>()) && self.len.is_multiple_of(4)
    }
}

impl ByteBuffer for ShmView {
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: [at, at + len) is inside the mapping, which `map` keeps alive.
        unsafe { std::slice::from_raw_parts(self.map.ptr.add(self.at), self.len) }
    }
}

impl InputBuffer for ShmView {
    /// Only called on views that are [`ShmView::is_f32_aligned`] (the decoder copies others).
    fn as_f32(&self) -> &[f32] {
        assert!(self.is_f32_aligned(), "an unaligned shared-memory view read as f32");
        // SAFETY: aligned (asserted) and inside the mapping; f32 has no invalid bit patterns.
        unsafe { std::slice::from_raw_parts(self.map.ptr.add(self.at).cast::<f32>(), self.len / 4) }
    }
}

/// The registered regions, by name.
#[derive(Debug, Default)]
pub struct Registry {
    regions: Mutex<BTreeMap<String, Region>>,
}

impl Registry {
    /// Registers `name`: `byte_size` bytes at `offset` of the object `key`.
    pub fn register(&self, name: &str, key: &str, offset: u64, byte_size: u64) -> Result<(), ProtocolError> {
        if name.is_empty() {
            return Err(ProtocolError::invalid("shared memory region: the name is empty"));
        }
        let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        if regions.contains_key(name) {
            return Err(ProtocolError::new(
                Code::AlreadyExists,
                format!("shared memory region {name:?} is already registered; unregister it first"),
            ));
        }
        let map = Mapping::open(key)
            .map_err(|e| ProtocolError::invalid(format!("shared memory region {name:?}: key {key:?}: {e}")))?;
        if offset.checked_add(byte_size).is_none_or(|end| end > map.len as u64) || byte_size == 0 {
            return Err(ProtocolError::invalid(format!(
                "shared memory region {name:?}: {byte_size} bytes at offset {offset} do not fit in the {} bytes of {key:?}",
                map.len
            )));
        }
        let region = Region { name: name.into(), key: key.into(), offset, byte_size, map: Arc::new(map) };
        regions.insert(name.into(), region);
        Ok(())
    }

    /// Unregisters `name` (every region when empty). Jobs still reading it keep it mapped.
    pub fn unregister(&self, name: &str) {
        let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        if name.is_empty() {
            regions.clear();
        } else {
            regions.remove(name);
        }
    }

    /// The region called `name`.
    pub fn get(&self, name: &str) -> Result<Region, ProtocolError> {
        let regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        regions.get(name).cloned().ok_or_else(|| {
            ProtocolError::not_found(format!(
                "shared memory region {name:?} is not registered (register it first; registered: {})",
                regions.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Every region (`name` empty) or the one called `name`.
    pub fn status(&self, name: &str) -> Result<Vec<Region>, ProtocolError> {
        if name.is_empty() {
            let regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
            return Ok(regions.values().cloned().collect());
        }
        Ok(vec![self.get(name)?])
    }
}
