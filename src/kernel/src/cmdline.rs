//! The kernel command line (`-append`): whitespace-separated `key=value`
//! words. Known keys: `log=error|warn|info|debug`, `test=<name>` (run one
//! in-kernel test and exit), `tests=list` (print the test catalogue).
//! Unknown words are reported, not fatal. Boot only.

use crate::console::Level;

#[derive(Clone, Copy, Default)]
pub struct Cmdline {
    pub log: Option<Level>,
    pub test: Option<&'static str>,
    pub list_tests: bool,
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
            _ => crate::println!("cmdline: unknown word '{word}' ignored"),
        }
    }
    c
}
