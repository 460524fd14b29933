//! The AF_UNIX receive queue and names, as programs see them.

use cairn_unix::Errno;
use cairn_unix::unixsock::{Queue, SockType, UnixAddr, absolute};

type Q = Queue<u32, u8>;

fn read(q: &mut Q, len: usize) -> Option<(Vec<u8>, usize, Option<u32>)> {
    let mut b = vec![0u8; len];
    q.pop(&mut b, false).map(|r| {
        b.truncate(r.n);
        (b, r.full, r.rights)
    })
}

#[test]
fn stream_reads_across_writes_and_keeps_order() {
    let mut q = Q::new(SockType::Stream, 16);
    assert_eq!(q.push(b"abc", None, None), Ok(3));
    assert_eq!(q.push(b"defg", None, None), Ok(4));
    assert_eq!(q.readable_bytes(), 7);
    assert_eq!(read(&mut q, 5).unwrap().0, b"abcde");
    assert_eq!(read(&mut q, 5).unwrap().0, b"fg");
    assert!(q.pop(&mut [0u8; 4], false).is_none(), "empty: wait");
}

#[test]
fn stream_write_takes_what_fits_then_eagain() {
    let mut q = Q::new(SockType::Stream, 8);
    assert_eq!(q.push(b"0123456789", None, None), Ok(8));
    assert!(!q.writable());
    assert_eq!(q.push(b"x", None, None), Err(Errno::EAGAIN));
    assert_eq!(read(&mut q, 3).unwrap().0, b"012");
    assert!(q.writable());
    assert_eq!(q.push(b"xyzw", None, None), Ok(3));
    assert_eq!(read(&mut q, 100).unwrap().0, b"34567xyz");
}

#[test]
fn stream_peek_does_not_consume() {
    let mut q = Q::new(SockType::Stream, 64);
    q.push(b"hello", None, None).unwrap();
    q.push(b" world", None, None).unwrap();
    let mut b = [0u8; 8];
    let r = q.pop(&mut b, true).unwrap();
    assert_eq!(&b[..r.n], b"hello wo");
    assert_eq!(read(&mut q, 64).unwrap().0, b"hello world");
}

#[test]
fn eof_after_data_and_epipe_without_reader() {
    let mut q = Q::new(SockType::Stream, 64);
    q.push(b"last", None, None).unwrap();
    q.set_eof();
    assert!(q.readable());
    assert_eq!(read(&mut q, 64).unwrap().0, b"last");
    let r = read(&mut q, 64).unwrap();
    assert_eq!(r.0.len(), 0, "end of file");
    let mut q = Q::new(SockType::Stream, 64);
    q.push(b"x", Some(7), None).unwrap();
    assert_eq!(q.close_reader(), vec![7], "descriptors in flight come back");
    assert_eq!(q.push(b"y", None, None), Err(Errno::EPIPE));
    assert!(q.writable(), "a write would not wait (it fails)");
}

#[test]
fn messages_keep_boundaries_and_truncate() {
    for ty in [SockType::Dgram, SockType::Seqpacket] {
        let mut q = Q::new(ty, 64);
        q.push(b"one", None, Some(1)).unwrap();
        q.push(b"", None, Some(2)).unwrap();
        q.push(b"three33", None, Some(3)).unwrap();
        assert_eq!(
            q.readable_bytes(),
            if ty == SockType::Dgram { 3 } else { 10 }
        );
        assert_eq!(read(&mut q, 64).unwrap().0, b"one");
        let mut b = [0u8; 4];
        let r = q.pop(&mut b, false).unwrap();
        assert_eq!((r.n, r.from), (0, Some(2)), "an empty message is a message");
        let (d, full, _) = read(&mut q, 4).unwrap();
        assert_eq!(
            (d.as_slice(), full),
            (&b"thre"[..], 7),
            "truncated, rest dropped"
        );
        assert!(q.pop(&mut b, false).is_none());
        assert_eq!(q.bytes(), 0);
    }
}

#[test]
fn messages_all_or_nothing() {
    let mut q = Q::new(SockType::Dgram, 10);
    assert_eq!(q.push(&[0; 11], None, None), Err(Errno::EMSGSIZE));
    assert_eq!(q.push(&[0; 6], None, None), Ok(6));
    assert_eq!(q.push(&[0; 6], None, None), Err(Errno::EAGAIN));
    assert_eq!(q.push(&[0; 4], None, None), Ok(4));
}

#[test]
fn stream_rights_arrive_with_their_bytes() {
    let mut q = Q::new(SockType::Stream, 64);
    q.push(b"aa", None, None).unwrap();
    q.push(b"bb", Some(1), None).unwrap();
    q.push(b"cc", Some(2), None).unwrap();
    q.push(b"dd", None, None).unwrap();
    assert_eq!(
        read(&mut q, 64).unwrap(),
        (b"aa".to_vec(), 2, None),
        "stops before rights"
    );
    assert_eq!(read(&mut q, 1).unwrap(), (b"b".to_vec(), 1, Some(1)));
    assert_eq!(read(&mut q, 64).unwrap(), (b"b".to_vec(), 1, None));
    assert_eq!(read(&mut q, 64).unwrap(), (b"cc".to_vec(), 2, Some(2)));
    assert_eq!(read(&mut q, 64).unwrap(), (b"dd".to_vec(), 2, None));
}

#[test]
fn addresses_decode_and_encode() {
    let mut sa = vec![1u8, 0];
    sa.extend_from_slice(b"/tmp/s\0junk");
    assert_eq!(
        UnixAddr::decode(&sa, sa.len()),
        Ok(UnixAddr::Path(b"/tmp/s".to_vec()))
    );
    assert_eq!(
        UnixAddr::Path(b"/tmp/s".to_vec()).encode(),
        b"\x01\0/tmp/s\0"
    );
    let ab = b"\x01\0\0name";
    assert_eq!(
        UnixAddr::decode(ab, 7),
        Ok(UnixAddr::Abstract(b"name".to_vec()))
    );
    assert_eq!(UnixAddr::Abstract(b"name".to_vec()).encode(), ab);
    assert_eq!(UnixAddr::decode(b"\x01\0", 2), Ok(UnixAddr::Unnamed));
    assert_eq!(UnixAddr::Unnamed.encode().len(), 2);
    assert_eq!(UnixAddr::decode(b"\x02\0/x", 4), Err(Errno::EINVAL));
    assert_eq!(UnixAddr::decode(b"\x01", 1), Err(Errno::EINVAL));
    assert_eq!(UnixAddr::decode(&[1; 200], 111), Err(Errno::EINVAL));
}

#[test]
fn path_keys_are_absolute_and_clean() {
    assert_eq!(absolute(b"/srv", b"sock"), b"/srv/sock");
    assert_eq!(absolute(b"/srv/a", b"../b//./s"), b"/srv/b/s");
    assert_eq!(absolute(b"/x", b"/abs"), b"/abs");
    assert_eq!(absolute(b"/", b".."), b"/");
    let k = UnixAddr::Path(b"s".to_vec()).key(b"/d").unwrap();
    assert_eq!(k, UnixAddr::Path(b"/d/s".to_vec()));
    assert_eq!(UnixAddr::Unnamed.key(b"/"), None);
}
