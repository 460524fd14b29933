//! The kernel command line (`-append`): whitespace-separated `key=value`
//! words. Known keys: `log=error|warn|info|debug`, `test=<name>` (run one
//! in-kernel test and exit), `tests=list` (print the test catalogue),
//! `argv=<a>,<b>,...` (run the image's program with this argv instead of
//! the root tuple's `arguments`: one image, several command lines, as the
//! runtime tests of busybox applets need; `%2C`, `%20` and `%25` stand for
//! `,`, space and `%`), `program=<path>` (run this program of the image
//! instead of the root tuple's `program`, with `argv=` or the manifest's
//! arguments; `%20` etc. as in `argv=`), `profile=<hz>` (turn the
//! sampling profiler on: `crate::profile`).
//! Unknown words are reported, not fatal. Boot only.

use crate::console::Level;

#[derive(Clone, Copy, Default)]
pub struct Cmdline {
    pub log: Option<Level>,
    pub test: Option<&'static str>,
    pub list_tests: bool,
    pub argv: Option<&'static str>,
    pub program: Option<&'static str>,
    pub profile_hz: Option<u64>,
}

impl Cmdline {
    /// The `argv=` override, decoded.
    pub fn argv(&self) -> Option<alloc::vec::Vec<alloc::vec::Vec<u8>>> {
        self.argv.map(decode_argv)
    }

    /// The `program=` override, decoded.
    pub fn program(&self) -> Option<alloc::vec::Vec<u8>> {
        self.program
            .map(|p| decode_argv(p).into_iter().next().unwrap_or_default())
    }
}

/// `a,b%2Cc` → `["a", "b,c"]`.
pub fn decode_argv(v: &str) -> alloc::vec::Vec<alloc::vec::Vec<u8>> {
    v.split(',')
        .map(|a| {
            let b = a.as_bytes();
            let mut out = alloc::vec::Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    b[i],
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) {
                    (b'%', Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    (c, _, _) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            out
        })
        .collect()
}

/// Parses `line` (which lives for the whole run: it is copied into a
/// static by the boot code).
pub fn parse(line: &'static str) -> Cmdline {
    let mut c = Cmdline::default();
    for word in line.split_ascii_whitespace() {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        match key {
            "log" => match Level::parse(value) {
                Some(l) => c.log = Some(l),
                None => crate::println!("cmdline: unknown log level '{value}' ignored"),
            },
            "test" => c.test = Some(value),
            "tests" if value == "list" => c.list_tests = true,
            "argv" if !value.is_empty() => c.argv = Some(value),
            "program" if !value.is_empty() => c.program = Some(value),
            "profile" => match value.parse() {
                Ok(hz) => c.profile_hz = Some(hz),
                Err(_) => crate::println!("cmdline: bad profile rate '{value}' ignored"),
            },
            _ => crate::println!("cmdline: unknown word '{word}' ignored"),
        }
    }
    c
}
