//! Process-wide memory settings for the binaries that run the service (and the local stack).

/// Turns transparent huge pages off for the whole process; call it first thing in `main`.
///
/// The allocator (mimalloc) asks for huge pages on its arena, so the first touch of any 2 MB
/// of heap makes the kernel zero all of it. The local stack is many threads each touching a
/// little of its own heap, so with huge pages a run over the sample data set held 162 MB of
/// anonymous memory for 37 MB in use, and spent a third of its system time zeroing pages
/// (more on a virtual machine that hands freed memory back to its host). Without them the
/// allocator's heaps grow 4 KB at a time as they are used.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages stay as the system sets them");
    }
}
