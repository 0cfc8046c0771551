//! A client's POSIX shared-memory region, shared by the shared-memory tests and the
//! round-trip bench (`#[path]`-included there).

/// A POSIX shared-memory object of `len` bytes, unlinked on drop.
pub struct Shm {
    pub key: String,
    pub ptr: *mut u8,
    pub len: usize,
}

impl Shm {
    pub fn new(len: usize) -> Self {
        let key = format!("/lalarand-shm-{}-{len}", std::process::id());
        let c = std::ffi::CString::new(key.clone()).unwrap();
        // SAFETY: test-only libc calls, each checked.
        unsafe {
            let fd = libc::shm_open(c.as_ptr(), libc::O_CREAT | libc::O_RDWR, 0o600);
            assert!(fd >= 0);
            assert_eq!(libc::ftruncate(fd, len as libc::off_t), 0);
            let p = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
            assert_ne!(p, libc::MAP_FAILED);
            libc::close(fd);
            Self { key, ptr: p.cast(), len }
        }
    }

    #[allow(dead_code)] // the bench writes through `ptr`
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping made in `new`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.key.clone()).unwrap();
        // SAFETY: the mapping and name made in `new`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
            libc::shm_unlink(c.as_ptr());
        }
    }
}
