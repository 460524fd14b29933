//! The Nanos manifest syntax (`tuple_parser.c`), e.g.
//! `(children:(bin:(children:(hello:(contents:(host:hello))))) program:/bin/hello arguments:[hello a] environment:(USER:cairn))`:
//! a tuple is `(name:value ...)`, a vector `[value ...]`, anything else a
//! string — bare (ending at whitespace or one of `()[]`) or quoted with `\`
//! escaping the next character. Names end at whitespace, `()[]:|/`. `#`
//! starts a comment wherever whitespace may stand. A later duplicate name
//! replaces an earlier one. Errors carry a line and column and render with a
//! caret under the spot.
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::store::{NodeId, Store, Value};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A manifest syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// Byte offset.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl ManifestError {
    /// The message, the offending line of `source` and a caret under the spot.
    pub fn render(&self, source: &[u8]) -> String {
        let line_start = source[..self.offset.min(source.len())]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let line_end = source[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(source.len(), |p| line_start + p);
        let text = String::from_utf8_lossy(&source[line_start..line_end]);
        let mut caret = String::new();
        for _ in 1..self.column {
            caret.push(' ');
        }
        caret.push('^');
        format!("{self}\n{text}\n{caret}")
    }
}

/// A parsed manifest: its values live in `store`, the top tuple is `root`.
#[derive(Debug)]
pub struct Manifest {
    /// The values.
    pub store: Store,
    /// The top-level tuple.
    pub root: NodeId,
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    store: Store,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Parser<'_> {
    fn error(&self, at: usize, message: impl Into<String>) -> ManifestError {
        let at = at.min(self.src.len());
        let before = &self.src[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        ManifestError {
            line,
            column,
            offset: at,
            message: message.into(),
        }
    }

    fn skip_space(&mut self) {
        while let Some(&b) = self.src.get(self.pos) {
            if is_space(b) {
                self.pos += 1;
            } else if b == b'#' {
                while self.src.get(self.pos).is_some_and(|&c| c != b'\n') {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn quoted(&mut self) -> Result<Vec<u8>, ManifestError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error(open, "unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(c) = self.peek() else {
                        return Err(self.error(open, "unterminated quoted string"));
                    };
                    out.push(c);
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn bare(&mut self, stop: &[u8]) -> Vec<u8> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| !is_space(b) && !stop.contains(&b))
        {
            self.pos += 1;
        }
        self.src[start..self.pos].to_vec()
    }

    /// A tuple's next name and its ':' (`None` at its closing ')').
    fn name(&mut self, open: usize) -> Result<Option<Vec<u8>>, ManifestError> {
        self.skip_space();
        let name_at = self.pos;
        let name = match self.peek() {
            None => return Err(self.error(open, "unclosed '(': tuple never ends")),
            Some(b')') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b'"') => self.quoted()?,
            Some(_) => self.bare(b"()[]:|/"),
        };
        if name.is_empty() {
            let c = self.peek().map_or('?', char::from);
            return Err(self.error(name_at, format!("expected a name, found '{c}'")));
        }
        self.skip_space();
        match self.peek() {
            Some(b':') => self.pos += 1,
            None => {
                return Err(self.error(self.pos, "unexpected end of manifest, expected ':'"));
            }
            Some(c) => {
                return Err(self.error(
                    self.pos,
                    format!("expected ':' after name, found '{}'", char::from(c)),
                ));
            }
        }
        Ok(Some(name))
    }

    /// Starts a value: a string is read whole, a tuple or vector is
    /// opened (a new frame for [`Parser::tree`] to fill).
    fn start_value(&mut self) -> Result<Started, ManifestError> {
        self.skip_space();
        match self.peek() {
            None => Err(self.error(self.pos, "unexpected end of manifest, expected a value")),
            Some(b'(') => Ok(Started::Open(self.open(true))),
            Some(b'[') => Ok(Started::Open(self.open(false))),
            Some(b'"') => Ok(Started::Done(Value::Str(self.quoted()?))),
            Some(b')') | Some(b']') => Err(self.error(self.pos, "expected a value")),
            Some(_) => Ok(Started::Done(Value::Str(self.bare(b"()[]")))),
        }
    }

    fn open(&mut self, tuple: bool) -> Frame {
        let open = self.pos;
        self.pos += 1;
        let node = if tuple {
            self.store.new_tuple()
        } else {
            self.store.new_vector()
        };
        Frame {
            node,
            tuple,
            open,
            name: None,
        }
    }

    /// Parses the tuple at `pos` and everything nested in it. Iterative,
    /// with the open tuples and vectors on a heap-allocated stack: nesting
    /// is limited by memory only, never by the thread's stack (Nanos's
    /// mkfs accepts manifests nested thousands of levels deep).
    fn tree(&mut self) -> Result<NodeId, ManifestError> {
        let mut stack = alloc::vec![self.open(true)];
        loop {
            let top = stack.last().expect("an open frame");
            let (open, tuple) = (top.open, top.tuple);
            // The next member of the innermost open tuple or vector, or
            // its end.
            let name = if tuple {
                self.name(open)?
            } else {
                self.skip_space();
                match self.peek() {
                    None => return Err(self.error(open, "unclosed '[': vector never ends")),
                    Some(b']') => {
                        self.pos += 1;
                        None
                    }
                    Some(_) => Some(Vec::new()),
                }
            };
            let (value, parent) = match name {
                // Closed: it becomes a value of the frame below.
                None => {
                    let done = stack.pop().expect("an open frame");
                    let v = if done.tuple {
                        Value::Tuple(done.node)
                    } else {
                        Value::Vector(done.node)
                    };
                    if stack.is_empty() {
                        return Ok(done.node);
                    }
                    (v, stack.len() - 1)
                }
                Some(name) => match self.start_value()? {
                    Started::Done(v) => {
                        stack.last_mut().expect("an open frame").name = Some(name);
                        (v, stack.len() - 1)
                    }
                    Started::Open(f) => {
                        stack.last_mut().expect("an open frame").name = Some(name);
                        stack.push(f);
                        continue;
                    }
                },
            };
            let p = &mut stack[parent];
            let name = p.name.take().expect("a pending member");
            if p.tuple {
                let sym = self.store.sym(&name);
                self.store.set(p.node, sym, Some(value));
            } else {
                self.store.vector_push(p.node, Some(value));
            }
        }
    }
}

/// A tuple or vector being parsed.
struct Frame {
    node: NodeId,
    tuple: bool,
    /// Where its '(' or '[' is (for "never ends" errors).
    open: usize,
    /// The member whose value is being parsed (a tuple's name; empty for a
    /// vector's item).
    name: Option<Vec<u8>>,
}

enum Started {
    Done(Value),
    Open(Frame),
}

/// Parses a manifest: one top-level tuple, then only whitespace/comments.
pub fn parse(src: &[u8]) -> Result<Manifest, ManifestError> {
    let mut p = Parser {
        src,
        pos: 0,
        store: Store::new(),
    };
    p.skip_space();
    match p.peek() {
        Some(b'(') => {}
        None => return Err(p.error(p.pos, "empty manifest, expected '('")),
        Some(c) => {
            return Err(p.error(
                p.pos,
                format!("a manifest starts with '(', found '{}'", char::from(c)),
            ));
        }
    }
    let root = p.tree()?;
    p.skip_space();
    if p.pos < src.len() {
        return Err(p.error(p.pos, "unexpected text after the manifest's closing ')'"));
    }
    Ok(Manifest {
        store: p.store,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbol::known;

    #[test]
    fn parses_the_nanos_example() {
        let src = b"(children:(bin:(children:(hello:(contents:(host:path/to/hello)))) etc:(children:()))\n program:/bin/hello arguments:[hello a b] environment:(USER:cairn PWD:/) imagesize:64M)";
        let m = parse(src).unwrap();
        let s = &m.store;
        assert_eq!(
            s.get(m.root, known::PROGRAM),
            Some(&Value::Str(b"/bin/hello".to_vec()))
        );
        let Some(Value::Vector(args)) = s.get(m.root, known::ARGUMENTS) else {
            panic!("no vector")
        };
        assert_eq!(s.vector(*args).len(), 3);
        let c = s.get_tuple(m.root, known::CHILDREN).unwrap();
        let bin = s.get_tuple(c, s.symbols.find(b"bin").unwrap()).unwrap();
        let bc = s.get_tuple(bin, known::CHILDREN).unwrap();
        let hello = s.get_tuple(bc, s.symbols.find(b"hello").unwrap()).unwrap();
        let contents = s.get_tuple(hello, known::CONTENTS).unwrap();
        assert_eq!(
            s.get(contents, known::HOST),
            Some(&Value::Str(b"path/to/hello".to_vec()))
        );
        let env = s.get_tuple(m.root, known::ENVIRONMENT).unwrap();
        assert_eq!(
            s.get(env, s.symbols.find(b"PWD").unwrap()),
            Some(&Value::Str(b"/".to_vec()))
        );
    }

    #[test]
    fn quotes_comments_and_escapes() {
        let src = b"# comment\n(\"a b\":\"x \\\" y\" # trailing\n c:[\"1 2\" (d:e)])";
        let m = parse(src).unwrap();
        let s = &m.store;
        let ab = s.symbols.find(b"a b").unwrap();
        assert_eq!(s.get(m.root, ab), Some(&Value::Str(b"x \" y".to_vec())));
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let src = b"(children:(\n  bin x))";
        let e = parse(src).unwrap_err();
        assert_eq!((e.line, e.column), (2, 7));
        let r = e.render(src);
        assert!(r.contains("  bin x))\n      ^"), "{r}");
        let e = parse(b"(a:(b:c)").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        assert!(parse(b"(a:b) x").is_err());
        assert!(parse(b"").is_err());
        let deep: Vec<u8> = core::iter::repeat_n(b"(a:".as_slice(), 1000)
            .flatten()
            .copied()
            .collect();
        assert!(parse(&deep).unwrap_err().message.contains("unexpected end"));
    }

    /// Nanos's mkfs accepts manifests nested far deeper than 256 levels;
    /// so does this parser, without recursion (a recursive one overflows
    /// the thread's stack long before memory runs out).
    #[test]
    fn parses_deep_nesting() {
        let n = 100_000;
        let mut src = alloc::vec::Vec::new();
        src.extend_from_slice(b"(v:[");
        for _ in 0..n {
            src.extend_from_slice(b"(a:");
        }
        src.extend_from_slice(b"leaf");
        src.extend(core::iter::repeat_n(b')', n));
        src.extend_from_slice(b" x] b:y)");
        let m = parse(&src).unwrap();
        let s = &m.store;
        let Some(Value::Vector(v)) = s.get(m.root, s.symbols.find(b"v").unwrap()) else {
            panic!("no vector")
        };
        let items = s.vector(*v);
        assert_eq!(items.len(), 2);
        let a = s.symbols.find(b"a").unwrap();
        let Some(Value::Tuple(mut t)) = items[0].clone() else {
            panic!("no tuple")
        };
        for _ in 1..n {
            t = s.get_tuple(t, a).unwrap();
        }
        assert_eq!(s.get(t, a), Some(&Value::Str(b"leaf".to_vec())));
        assert_eq!(items[1], Some(Value::Str(b"x".to_vec())));
        assert_eq!(
            s.get(m.root, s.symbols.find(b"b").unwrap()),
            Some(&Value::Str(b"y".to_vec()))
        );
    }
}
