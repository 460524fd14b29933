//! Extended attributes: TFS stores none, so every name is unsupported, as
//! on a Linux filesystem without xattr support: `getxattr` and `setxattr`
//! families fail with `EOPNOTSUPP` (what `ls` and `cp -a` expect when a
//! filesystem has no xattrs; `ENOSYS` made `ls -l` report an error), the
//! list is empty and removal fails with `EOPNOTSUPP`. The file (or
//! descriptor) must still exist: a bad path or descriptor gets its own
//! error first.
//!
//! Kernel-lock context, in the calling thread. No locks of its own.

use super::SysResult;
use super::fs::{AT_FDCWD, faccessat, get_file};
use cairn_unix::errno::Errno;

/// What an xattr call names.
#[derive(Clone, Copy)]
pub enum Target {
    /// A user path.
    Path(u64),
    /// A descriptor.
    Fd(i32),
}

/// The target exists.
fn check(t: Target) -> Result<(), Errno> {
    match t {
        Target::Fd(fd) => get_file(fd).map(|_| ()),
        Target::Path(p) => faccessat(AT_FDCWD, p, 0, 0).map(|_| ()),
    }
}

/// `getxattr`, `lgetxattr`, `fgetxattr`, `setxattr`, `lsetxattr`,
/// `fsetxattr`, `removexattr`, `lremovexattr`, `fremovexattr`.
pub fn unsupported(t: Target) -> SysResult {
    check(t)?;
    Err(Errno::EOPNOTSUPP)
}

/// `listxattr`, `llistxattr`, `flistxattr`: no names.
pub fn list(t: Target) -> SysResult {
    check(t)?;
    Ok(0)
}
