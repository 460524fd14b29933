//! Signal bookkeeping: sigaction table rules, masks, default actions and
//! the 128 + N exit statuses.

use cairn_unix::Errno;
use cairn_unix::signal::*;

#[test]
fn sigaction_table() {
    let mut t = SigActions::new();
    let a = SigAction {
        handler: 0x401000,
        flags: SA_SIGINFO | SA_RESTORER | SA_RESTART | SA_ONSTACK,
        restorer: 0x402000,
        mask: SigSet::EMPTY.with(SIGKILL).with(SIGUSR1),
    };
    assert_eq!(
        t.rt_sigaction(SIGUSR2, Some(a), 8).unwrap(),
        SigAction::default()
    );
    let got = t.get(SIGUSR2).unwrap();
    assert_eq!(got.flags, a.flags, "SA_* flags are kept");
    assert!(
        !got.mask.contains(SIGKILL),
        "SIGKILL never in a handler mask"
    );
    assert!(got.mask.contains(SIGUSR1));
    assert_eq!(t.rt_sigaction(SIGUSR2, None, 8).unwrap(), got);
    assert_eq!(
        t.rt_sigaction(SIGKILL, Some(a), 8).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        t.rt_sigaction(SIGSTOP, Some(a), 8).unwrap_err(),
        Errno::EINVAL
    );
    assert!(t.rt_sigaction(SIGKILL, None, 8).is_ok());
    assert_eq!(t.rt_sigaction(0, None, 8).unwrap_err(), Errno::EINVAL);
    assert_eq!(t.rt_sigaction(65, None, 8).unwrap_err(), Errno::EINVAL);
    assert_eq!(
        t.rt_sigaction(SIGUSR1, None, 16).unwrap_err(),
        Errno::EINVAL
    );
    let ign = SigAction {
        handler: SIG_IGN,
        ..SigAction::default()
    };
    t.rt_sigaction(SIGPIPE, Some(ign), 8).unwrap();
    t.reset_for_exec();
    assert_eq!(t.get(SIGUSR2).unwrap(), SigAction::default());
    assert_eq!(t.get(SIGPIPE).unwrap().handler, SIG_IGN);
}

#[test]
fn masks() {
    let mut m = ThreadMask::default();
    let s = SigSet::EMPTY.with(SIGALRM).with(SIGKILL).with(SIGSTOP);
    assert_eq!(
        m.rt_sigprocmask(SIG_BLOCK, Some(s), 8).unwrap(),
        SigSet::EMPTY
    );
    assert!(m.blocked().contains(SIGALRM));
    assert!(!m.blocked().contains(SIGKILL) && !m.blocked().contains(SIGSTOP));
    m.rt_sigprocmask(SIG_BLOCK, Some(SigSet::EMPTY.with(SIGINT)), 8)
        .unwrap();
    m.rt_sigprocmask(SIG_UNBLOCK, Some(SigSet::EMPTY.with(SIGALRM)), 8)
        .unwrap();
    assert_eq!(m.blocked(), SigSet::EMPTY.with(SIGINT));
    m.rt_sigprocmask(SIG_SETMASK, Some(SigSet::from_bits(u64::MAX)), 8)
        .unwrap();
    assert_eq!(
        m.blocked(),
        SigSet::from_bits(u64::MAX).without(SigSet::UNBLOCKABLE)
    );
    assert_eq!(
        m.rt_sigprocmask(7, Some(SigSet::EMPTY), 8).unwrap_err(),
        Errno::EINVAL
    );
    // An unknown `how` without a set is only a query.
    assert!(m.rt_sigprocmask(7, None, 8).is_ok());
    assert_eq!(
        m.rt_sigprocmask(SIG_BLOCK, None, 4).unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn defaults_and_exit_status() {
    for s in [
        SIGSEGV, SIGBUS, SIGABRT, SIGALRM, SIGKILL, SIGTERM, SIGINT, SIGPIPE, SIGUSR1, SIGRTMIN, 64,
    ] {
        assert!(fatal_by_default(s), "{s}");
    }
    for s in [SIGCHLD, SIGURG, SIGWINCH, SIGCONT, SIGSTOP, SIGTSTP] {
        assert!(!fatal_by_default(s), "{s}");
    }
    assert_eq!(exit_status(SIGSEGV), 139);
    assert_eq!(exit_status(SIGBUS), 135);
    assert_eq!(exit_status(SIGABRT), 134);
    assert_eq!(exit_status(SIGALRM), 142);
    assert_eq!(exit_status(SIGKILL), 137);
}

#[test]
fn delivery_decisions() {
    let mut t = SigActions::new();
    let mut m = ThreadMask::default();
    let d = |t: &SigActions, m: &ThreadMask, s, o| deliver(t, m, s, o).unwrap();
    assert_eq!(d(&t, &m, SIGALRM, Origin::Sent), Delivery::Terminate(142));
    assert_eq!(d(&t, &m, SIGCHLD, Origin::Sent), Delivery::Ignore);
    m.rt_sigprocmask(
        SIG_BLOCK,
        Some(SigSet::EMPTY.with(SIGALRM).with(SIGSEGV)),
        8,
    )
    .unwrap();
    assert_eq!(d(&t, &m, SIGALRM, Origin::Sent), Delivery::Blocked);
    // A blocked or ignored fault is still fatal.
    assert_eq!(d(&t, &m, SIGSEGV, Origin::Fault), Delivery::Terminate(139));
    let ign = SigAction {
        handler: SIG_IGN,
        ..SigAction::default()
    };
    t.rt_sigaction(SIGBUS, Some(ign), 8).unwrap();
    assert_eq!(d(&t, &m, SIGBUS, Origin::Fault), Delivery::Terminate(135));
    assert_eq!(d(&t, &m, SIGBUS, Origin::Sent), Delivery::Ignore);
    let h = SigAction {
        handler: 0x401000,
        ..SigAction::default()
    };
    t.rt_sigaction(SIGUSR1, Some(h), 8).unwrap();
    assert_eq!(d(&t, &m, SIGUSR1, Origin::Sent), Delivery::Handler(h));
    assert_eq!(d(&t, &m, SIGKILL, Origin::Sent), Delivery::Terminate(137));
    assert_eq!(deliver(&t, &m, 0, Origin::Sent).unwrap_err(), Errno::EINVAL);
}

#[test]
fn altstack() {
    let mut s = AltStack::default();
    let new = AltStack {
        sp: 0x10000,
        size: 8192,
        flags: 0,
    };
    assert_eq!(s.sigaltstack(Some(new), false).unwrap().flags, SS_DISABLE);
    assert_eq!(s.sigaltstack(None, true).unwrap().flags, SS_ONSTACK);
    assert_eq!(s.sigaltstack(Some(new), true).unwrap_err(), Errno::EPERM);
    let small = AltStack { size: 100, ..new };
    assert_eq!(
        s.sigaltstack(Some(small), false).unwrap_err(),
        Errno::ENOMEM
    );
    let bad = AltStack { flags: 4, ..new };
    assert_eq!(s.sigaltstack(Some(bad), false).unwrap_err(), Errno::EINVAL);
    let off = AltStack {
        flags: SS_DISABLE,
        ..new
    };
    s.sigaltstack(Some(off), false).unwrap();
    assert_eq!(s, AltStack::default());
}
