//! Import progress on stderr: shown when stderr is a terminal or when
//! asked for, at most a few times a second, and finished with a newline.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A byte and file counter that prints itself now and then.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    total_bytes: u64,
    total_files: u64,
    bytes: u64,
    files: u64,
    last: Option<Instant>,
    started: Instant,
}

impl Progress {
    /// A counter towards `total_bytes` in `total_files`; prints only if
    /// `forced` or stderr is a terminal.
    pub fn new(total_bytes: u64, total_files: u64, forced: bool) -> Self {
        Progress {
            enabled: forced || std::io::stderr().is_terminal(),
            total_bytes,
            total_files,
            bytes: 0,
            files: 0,
            last: None,
            started: Instant::now(),
        }
    }

    /// Counts `bytes` more of the current file.
    pub fn add_bytes(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.show(false);
    }

    /// Counts a finished file.
    pub fn file_done(&mut self) {
        self.files += 1;
        self.show(false);
    }

    /// Prints the final line.
    pub fn finish(&mut self) {
        self.show(true);
        if self.enabled {
            eprintln!();
        }
    }

    fn show(&mut self, force: bool) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if !force
            && self
                .last
                .is_some_and(|l| now - l < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(now);
        let secs = (now - self.started).as_secs_f64().max(1e-6);
        let mib = self.bytes as f64 / (1024.0 * 1024.0);
        let pct = if self.total_bytes > 0 {
            100.0 * self.bytes as f64 / self.total_bytes as f64
        } else {
            100.0
        };
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\rimporting: {}/{} files, {:.1} MiB ({:.0}%), {:.1} MiB/s",
            self.files,
            self.total_files,
            mib,
            pct,
            mib / secs
        );
        let _ = err.flush();
    }
}
