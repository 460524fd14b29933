//! The workload a root tuple names: `program` (a path in the tree),
//! `arguments` (a vector of strings; older manifests made it a tuple keyed
//! "0", "1", ...), `environment` (a tuple of strings) and `mounts` (a
//! tuple from a volume's label or UUID text to the directory it is
//! mounted on, as Nanos's manifests write it: `mounts:(data:/data)`).
//!
//! Runs in kernel-lock/thread context only and takes no locks itself.

use crate::store::{NodeId, Store, Value, parse_decimal};
use crate::symbol::known;
use alloc::vec::Vec;

/// What to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// Path of the program in the tree, if named.
    pub program: Option<Vec<u8>>,
    /// Arguments, `argv[0]` first.
    pub arguments: Vec<Vec<u8>>,
    /// Environment variables, as (name, value).
    pub environment: Vec<(Vec<u8>, Vec<u8>)>,
    /// Volumes to mount, as (label or UUID, mount point), in tuple order.
    pub mounts: Vec<(Vec<u8>, Vec<u8>)>,
    /// The network address (`ipaddr`, `netmask`, `gateway`, dotted IPv4
    /// text as Nanos's manifests give them); no `ipaddr`: DHCP.
    pub ipaddr: Option<Vec<u8>>,
    pub netmask: Option<Vec<u8>>,
    pub gateway: Option<Vec<u8>>,
}

impl Workload {
    /// Reads the workload attributes of `root`.
    pub fn from_root(store: &Store, root: NodeId) -> Self {
        let program = store
            .get(root, known::PROGRAM)
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec);
        let arguments = match store.get(root, known::ARGUMENTS) {
            Some(Value::Vector(v)) => store
                .vector(*v)
                .iter()
                .filter_map(|s| s.as_ref().and_then(Value::as_bytes).map(<[u8]>::to_vec))
                .collect(),
            Some(Value::Tuple(t)) => {
                let mut numbered: Vec<(u64, Vec<u8>)> = store
                    .entries(*t)
                    .filter_map(|(k, v)| {
                        Some((
                            parse_decimal(store.symbols.name(k))?,
                            v.as_bytes()?.to_vec(),
                        ))
                    })
                    .collect();
                numbered.sort();
                numbered.into_iter().map(|(_, v)| v).collect()
            }
            _ => Vec::new(),
        };
        let environment = match store.get(root, known::ENVIRONMENT) {
            Some(Value::Tuple(t)) => store
                .entries(*t)
                .filter_map(|(k, v)| Some((store.symbols.name(k).to_vec(), v.as_bytes()?.to_vec())))
                .collect(),
            _ => Vec::new(),
        };
        let mounts = match store
            .symbols
            .find(b"mounts")
            .and_then(|m| store.get(root, m))
        {
            Some(Value::Tuple(t)) => store
                .entries(*t)
                .map(|(k, v)| {
                    (
                        store.symbols.name(k).to_vec(),
                        v.as_bytes().map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        let text = |name: &[u8]| {
            store
                .symbols
                .find(name)
                .and_then(|k| store.get(root, k))
                .and_then(Value::as_bytes)
                .map(<[u8]>::to_vec)
        };
        Workload {
            program,
            arguments,
            environment,
            mounts,
            ipaddr: text(b"ipaddr"),
            netmask: text(b"netmask"),
            gateway: text(b"gateway"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vector_and_legacy_tuple_arguments() {
        let mut s = Store::new();
        let root = s.new_tuple();
        s.set(
            root,
            known::PROGRAM,
            Some(Value::Str(b"/bin/hello".to_vec())),
        );
        let v = s.new_vector();
        s.vector_push(v, Some(Value::Str(b"hello".to_vec())));
        s.vector_push(v, Some(Value::Str(b"a".to_vec())));
        s.set(root, known::ARGUMENTS, Some(Value::Vector(v)));
        let env = s.new_tuple();
        let user = s.sym(b"USER");
        s.set(env, user, Some(Value::Str(b"cairn".to_vec())));
        s.set(root, known::ENVIRONMENT, Some(Value::Tuple(env)));
        let w = Workload::from_root(&s, root);
        assert_eq!(w.program.as_deref(), Some(&b"/bin/hello"[..]));
        assert_eq!(w.arguments, [b"hello".to_vec(), b"a".to_vec()]);
        assert_eq!(w.environment, [(b"USER".to_vec(), b"cairn".to_vec())]);

        let t = s.new_tuple();
        let (one, zero) = (s.sym(b"1"), s.sym(b"0"));
        s.set(t, one, Some(Value::Buf(b"b".to_vec())));
        s.set(t, zero, Some(Value::Buf(b"a".to_vec())));
        s.set(root, known::ARGUMENTS, Some(Value::Tuple(t)));
        assert_eq!(
            Workload::from_root(&s, root).arguments,
            [b"a".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn reads_the_mounts_of_a_manifest() {
        let m = crate::manifest::parse(
            b"(children:(data:(children:()) logs:(children:())) program:/x \
              mounts:(datavol:/data 00112233-4455-6677-8899-aabbccddeeff:/logs))",
        )
        .unwrap();
        let w = Workload::from_root(&m.store, m.root);
        assert_eq!(
            w.mounts,
            [
                (b"datavol".to_vec(), b"/data".to_vec()),
                (
                    b"00112233-4455-6677-8899-aabbccddeeff".to_vec(),
                    b"/logs".to_vec()
                )
            ]
        );
        let none = crate::manifest::parse(b"(program:/x)").unwrap();
        assert!(
            Workload::from_root(&none.store, none.root)
                .mounts
                .is_empty()
        );
    }
}
