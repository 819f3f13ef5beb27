//! Process-level helpers: the descriptor limit, the shared monotonic clock
//! and parsers for the duration and rate flags.

use std::time::Duration;

/// Descriptors a process keeps free for its runtime, pipes, /proc reads and
/// the LMTP client, beyond its IMAP connections.
pub const DESCRIPTOR_RESERVE: u64 = 200;

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new
/// soft limit.
pub fn raise_descriptor_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and keeps no pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass and keeps no pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

/// Returns CLOCK_MONOTONIC in nanoseconds. Every process on the machine
/// reads the same clock, so a send time taken in the parent and a receive
/// time taken in a worker can be subtracted.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we pass and keeps no
    // pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
    }
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Parses a duration such as `60s`, `500ms`, `2m` or `1h`. A bare number
/// is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!(
            "invalid duration \"{text}\"; write a number with a unit, such as 60s, 500ms, 2m or 1h"
        )
    })?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in \"{text}\"; use ms, s, m or h"
            ));
        }
    };
    if !seconds.is_finite() || seconds > DURATION_MAX.as_secs_f64() {
        return Err(format!(
            "duration \"{text}\" is above the maximum of {} hours",
            DURATION_MAX.as_secs() / 3600
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Maximum duration any flag accepts, so every run ends within a day.
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);

/// Parses a rate such as `300/s` or `300` (per second).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().strip_suffix("/s").unwrap_or(text.trim());
    let rate: f64 = number.parse().map_err(|_| {
        format!("invalid rate \"{text}\"; write sessions per second, such as 300/s")
    })?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!("invalid rate \"{text}\"; it must be above 0"));
    }
    Ok(rate)
}

/// Returns the system page size in bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// Asks the kernel to kill this process with SIGKILL when the parent's
/// thread that started it exits, and exits at once if the parent
/// `expected_parent` is already gone.
pub fn exit_with_parent(expected_parent: u32) {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and changes only this
    // process's own death-signal setting.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    // SAFETY: getppid takes no arguments and is documented never to fail.
    let parent = unsafe { libc::getppid() };
    if parent as u32 != expected_parent {
        std::process::exit(3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_units() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    }

    #[test]
    fn duration_rejects_bad_input() {
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("invalid duration")
        );
        assert!(parse_duration("5d").unwrap_err().contains("unit"));
        assert!(parse_duration("25h").unwrap_err().contains("maximum"));
    }

    #[test]
    fn rate_forms() {
        assert_eq!(parse_rate("300/s").unwrap(), 300.0);
        assert_eq!(parse_rate("2.5").unwrap(), 2.5);
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
