//! The start-up check of the open-file limit (RLIMIT_NOFILE, `ulimit -n`)
//! against what the node needs, and the default of
//! `gregor.log.max.open.segments`.
//!
//! What a node holds open:
//!
//! | what                                   | descriptors |
//! | -------------------------------------- | ----------- |
//! | segments in use (active or not)        | 3 each (`.log`, `.index`, `.timeindex`), at most `gregor.log.max.open.segments` of them |
//! | connections, listeners, metadata log, lock files, threads | [`RESERVED`], plus what the automatic cap leaves |
//!
//! The number of partitions does not enter: an idle partition holds no
//! descriptor (its active segment is closed like the others).
//!
//! At start the soft limit is raised to the hard limit when it is below
//! that (as the Go runtime and many servers do); if even the hard limit is
//! too low, the node refuses to start with a message naming the numbers.

/// Descriptors kept for connections, listeners and everything that is not
/// a segment.
pub const RESERVED: u64 = 1024;
pub use gregor_storage::segment_cache::MIN_AUTO_SEGMENTS;

/// What the check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdPlan {
    /// The soft limit to set (equal to the current one when unchanged).
    pub soft_limit: u64,
    /// `gregor.log.max.open.segments` in effect.
    pub max_open_segments: usize,
}

/// The open-file limit cannot be made high enough.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    #[error(
        "the open-file limit (ulimit -n) is {soft} (hard limit {hard}), but this node needs at \
         least {needed}: {} × 3 files, and {RESERVED} for connections and listeners. Raise the \
         limit (ulimit -n {needed}, or LimitNOFILE= in a systemd unit){}",
        if *.configured > 0 { format!("gregor.log.max.open.segments={}", .configured) }
        else { format!("at least {MIN_AUTO_SEGMENTS} open segments") },
        if *.configured > 0 { " or lower gregor.log.max.open.segments" } else { "" }
    )]
    TooLow {
        soft: u64,
        hard: u64,
        needed: u64,
        configured: u64,
    },
    #[error("reading the open-file limit (RLIMIT_NOFILE): {0}")]
    Read(std::io::Error),
}

/// Decides the soft limit and the segment cap, given the current `soft`
/// and `hard` limits and the configured cap (0: automatic). Pure, for tests.
pub fn plan(soft: u64, hard: u64, configured: u64) -> Result<FdPlan, FdLimitError> {
    let segments = if configured > 0 {
        configured
    } else {
        MIN_AUTO_SEGMENTS
    };
    let needed = RESERVED.saturating_add(segments.saturating_mul(3));
    // Raise to the hard limit when short of what the node needs, or when the
    // automatic cap would be small: more room costs nothing.
    let wanted = if configured > 0 {
        needed
    } else {
        needed.max(RESERVED + 2 * 3 * 4096)
    };
    let limit = if soft < wanted { hard.max(soft) } else { soft };
    if limit < needed {
        return Err(FdLimitError::TooLow {
            soft,
            hard,
            needed,
            configured,
        });
    }
    let max_open_segments = if configured > 0 {
        configured
    } else {
        // Half of what is left, so connections have room too.
        gregor_storage::segment_cache::auto_segment_cap(limit - RESERVED) as u64
    };
    Ok(FdPlan {
        soft_limit: limit,
        max_open_segments: usize::try_from(max_open_segments).unwrap_or(usize::MAX),
    })
}

/// Partition directories under `log_dirs` (what the node will load).
pub fn count_partition_dirs(log_dirs: &[std::path::PathBuf]) -> u64 {
    gregor_storage::manager::count_log_dirs(log_dirs) as u64
}

/// Reads RLIMIT_NOFILE, applies [`plan`] and raises the soft limit if it
/// decided so. Returns the plan (the limit in force and the segment cap), or
/// the error message to exit with.
pub fn check_and_raise(configured: u64) -> Result<FdPlan, FdLimitError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(FdLimitError::Read(std::io::Error::last_os_error()));
    }
    // rlim_t is u64 on 64-bit Linux but not on every target.
    #[allow(clippy::unnecessary_cast)]
    let (soft, hard) = (lim.rlim_cur as u64, lim.rlim_max as u64);
    // Linux refuses a soft limit above fs.nr_open even when the hard limit
    // is "unlimited"; 1Mi is its default.
    let hard_usable = if lim.rlim_max == libc::RLIM_INFINITY {
        1 << 20
    } else {
        hard
    };
    let p = plan(soft, hard_usable, configured)?;
    if p.soft_limit != soft {
        let new = libc::rlimit {
            rlim_cur: p.soft_limit as libc::rlim_t,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
            let e = std::io::Error::last_os_error();
            // Keep the current limit; the plan for it decides.
            tracing::warn!(error = %e, soft, target = p.soft_limit, "could not raise the open-file limit");
            return plan(soft, soft, configured);
        }
        tracing::info!(
            from = soft,
            to = p.soft_limit,
            "raised the open-file limit (RLIMIT_NOFILE) to the hard limit"
        );
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_room_keeps_the_limit_and_derives_the_cap() {
        let p = plan(100_000, 100_000, 0).unwrap();
        assert_eq!(p.soft_limit, 100_000);
        assert_eq!(p.max_open_segments as u64, (100_000 - RESERVED) / 6);
    }

    #[test]
    fn a_low_soft_limit_is_raised_to_the_hard_one() {
        let p = plan(1024, 65_536, 0).unwrap();
        assert_eq!(p.soft_limit, 65_536);
        assert_eq!(p.max_open_segments as u64, (65_536 - RESERVED) / 6);
        // An explicit cap that fits the soft limit leaves it alone.
        let p = plan(20_000, 65_536, 100).unwrap();
        assert_eq!(p.soft_limit, 20_000);
        assert_eq!(p.max_open_segments, 100);
    }

    #[test]
    fn too_low_a_hard_limit_is_an_error_naming_the_numbers() {
        let e = plan(1024, 1024, 0).unwrap_err().to_string();
        assert!(e.contains("needs at least 1072"), "{e}");
        let e = plan(20_000, 20_000, 7000).unwrap_err().to_string();
        assert!(e.contains("gregor.log.max.open.segments=7000"), "{e}");
        assert!(e.contains("lower gregor.log.max.open.segments"), "{e}");
    }

    #[test]
    fn the_automatic_cap_has_a_floor() {
        let p = plan(1100, 1100, 0).unwrap();
        assert_eq!(p.max_open_segments as u64, MIN_AUTO_SEGMENTS);
    }
}
