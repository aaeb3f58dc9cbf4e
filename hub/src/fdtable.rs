//! Open-file limits for the hub process, settled before any thread starts.
//!
//! Every connection is a file descriptor. The soft `RLIMIT_NOFILE` is
//! raised to the hard limit. Then the kernel's descriptor table is grown
//! once to the size the hub may need: Linux grows it by doubling as
//! descriptors are opened, and in a multi-threaded process each growth
//! waits for an RCU grace period inside `accept()`, stalling that worker
//! for milliseconds. During the first connect storm a hub ever saw, those
//! stalls doubled its established clients' p99 latency (BENCHMARKS.md);
//! grown here, while the process has one thread, it costs nothing later.

use std::io;

/// Raises the soft open-files limit to the hard one and grows the
/// descriptor table to hold `want` descriptors (capped by the limit).
/// Returns the soft limit. Call before starting any thread.
pub fn prepare(want: usize) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    let soft = lim.rlim_cur;
    let top = u64::try_from(want)
        .unwrap_or(u64::MAX)
        .min(soft.saturating_sub(1));
    if top > 1024 {
        let Ok(top) = libc::c_int::try_from(top) else {
            return Ok(soft);
        };
        // SAFETY: duplicates stderr to the lowest free descriptor at or above
        // `top` (which makes the kernel grow the table) and closes the copy.
        unsafe {
            let fd = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, top);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::close(fd);
        }
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    fn fd_table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn grows_the_table_and_leaves_no_descriptor_open() {
        let soft = super::prepare(4096).unwrap();
        assert!(soft >= 1024);
        if soft > 4097 {
            assert!(
                fd_table_size() >= 4096,
                "table grown to {}",
                fd_table_size()
            );
        }
        // The probe was the lowest free descriptor at or above 4096; other
        // tests in this process never get that high.
        let high: Vec<u64> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd: &u64| fd >= 4096)
            .collect();
        assert!(high.is_empty(), "descriptors left open: {high:?}");
    }
}
