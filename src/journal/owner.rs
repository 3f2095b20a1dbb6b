//! Which process holds a claim: `boot_id:pid:starttime`, so a claim left by a process that is no
//! longer running (crash, kill -9, power cut, reboot) can be told from one held by a live
//! process (e.g. `ingestd run` while `ingestd upload` starts). Linux `/proc` based; where it is
//! unavailable every other owner counts as dead.

use std::fs;

/// The identity of the current process.
pub fn current() -> String {
    let pid = std::process::id();
    format!(
        "{}:{}:{}",
        boot_id().unwrap_or_default(),
        pid,
        start_time(pid).unwrap_or_default()
    )
}

/// Whether the process that wrote `owner` (from [`current`]) is still running.
pub fn is_alive(owner: &str) -> bool {
    if owner == current() {
        return true;
    }
    let mut parts = owner.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(boot)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match (boot_id(), start_time(pid)) {
        (Some(b), Some(s)) => !boot.is_empty() && b == boot && s == start,
        _ => false,
    }
}

fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Field 22 of `/proc/PID/stat` (start time in clock ticks since boot).
fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_alive_and_strangers_are_not() {
        let me = current();
        assert!(is_alive(&me));
        let boot = boot_id().unwrap_or_default();
        // pid 1 exists but with another start time than claimed here.
        assert!(!is_alive(&format!("{boot}:1:999999999999")));
        assert!(!is_alive("another-boot:1:1"));
        assert!(!is_alive("garbage"));
        assert!(!is_alive(""));
    }
}
