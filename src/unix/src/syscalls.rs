//! x86-64 Linux system-call numbers and their names.
//!
//! Owns: the number → name table (generated from the kernel's
//! `asm/unistd_64.h`, numbers 0..=334 and 424..=467) and [`OnceLog`], the
//! "log each unsupported syscall once" bitmap.
//!
//! Contexts: any (pure data; [`OnceLog`] is plain state owned by the
//! caller, which in the kernel keeps it under the kernel lock). Locks: none.

/// Highest syscall number this table knows.
pub const MAX_KNOWN: u64 = 467;

/// `read`
pub const READ: u64 = 0;
/// `write`
pub const WRITE: u64 = 1;
/// `open`
pub const OPEN: u64 = 2;
/// `close`
pub const CLOSE: u64 = 3;
/// `stat`
pub const STAT: u64 = 4;
/// `fstat`
pub const FSTAT: u64 = 5;
/// `lstat`
pub const LSTAT: u64 = 6;
/// `poll`
pub const POLL: u64 = 7;
/// `lseek`
pub const LSEEK: u64 = 8;
/// `mmap`
pub const MMAP: u64 = 9;
/// `mprotect`
pub const MPROTECT: u64 = 10;
/// `munmap`
pub const MUNMAP: u64 = 11;
/// `brk`
pub const BRK: u64 = 12;
/// `rt_sigaction`
pub const RT_SIGACTION: u64 = 13;
/// `rt_sigprocmask`
pub const RT_SIGPROCMASK: u64 = 14;
/// `rt_sigreturn`
pub const RT_SIGRETURN: u64 = 15;
/// `ioctl`
pub const IOCTL: u64 = 16;
/// `pread64`
pub const PREAD64: u64 = 17;
/// `pwrite64`
pub const PWRITE64: u64 = 18;
/// `readv`
pub const READV: u64 = 19;
/// `writev`
pub const WRITEV: u64 = 20;
/// `access`
pub const ACCESS: u64 = 21;
/// `pipe`
pub const PIPE: u64 = 22;
/// `select`
pub const SELECT: u64 = 23;
/// `sched_yield`
pub const SCHED_YIELD: u64 = 24;
/// `mremap`
pub const MREMAP: u64 = 25;
/// `msync`
pub const MSYNC: u64 = 26;
/// `mincore`
pub const MINCORE: u64 = 27;
/// `madvise`
pub const MADVISE: u64 = 28;
/// `shmget`
pub const SHMGET: u64 = 29;
/// `shmat`
pub const SHMAT: u64 = 30;
/// `shmctl`
pub const SHMCTL: u64 = 31;
/// `dup`
pub const DUP: u64 = 32;
/// `dup2`
pub const DUP2: u64 = 33;
/// `pause`
pub const PAUSE: u64 = 34;
/// `nanosleep`
pub const NANOSLEEP: u64 = 35;
/// `getitimer`
pub const GETITIMER: u64 = 36;
/// `alarm`
pub const ALARM: u64 = 37;
/// `setitimer`
pub const SETITIMER: u64 = 38;
/// `getpid`
pub const GETPID: u64 = 39;
/// `sendfile`
pub const SENDFILE: u64 = 40;
/// `socket`
pub const SOCKET: u64 = 41;
/// `connect`
pub const CONNECT: u64 = 42;
/// `accept`
pub const ACCEPT: u64 = 43;
/// `sendto`
pub const SENDTO: u64 = 44;
/// `recvfrom`
pub const RECVFROM: u64 = 45;
/// `sendmsg`
pub const SENDMSG: u64 = 46;
/// `recvmsg`
pub const RECVMSG: u64 = 47;
/// `shutdown`
pub const SHUTDOWN: u64 = 48;
/// `bind`
pub const BIND: u64 = 49;
/// `listen`
pub const LISTEN: u64 = 50;
/// `getsockname`
pub const GETSOCKNAME: u64 = 51;
/// `getpeername`
pub const GETPEERNAME: u64 = 52;
/// `socketpair`
pub const SOCKETPAIR: u64 = 53;
/// `setsockopt`
pub const SETSOCKOPT: u64 = 54;
/// `getsockopt`
pub const GETSOCKOPT: u64 = 55;
/// `clone`
pub const CLONE: u64 = 56;
/// `fork`
pub const FORK: u64 = 57;
/// `vfork`
pub const VFORK: u64 = 58;
/// `execve`
pub const EXECVE: u64 = 59;
/// `exit`
pub const EXIT: u64 = 60;
/// `wait4`
pub const WAIT4: u64 = 61;
/// `kill`
pub const KILL: u64 = 62;
/// `uname`
pub const UNAME: u64 = 63;
/// `semget`
pub const SEMGET: u64 = 64;
/// `semop`
pub const SEMOP: u64 = 65;
/// `semctl`
pub const SEMCTL: u64 = 66;
/// `shmdt`
pub const SHMDT: u64 = 67;
/// `msgget`
pub const MSGGET: u64 = 68;
/// `msgsnd`
pub const MSGSND: u64 = 69;
/// `msgrcv`
pub const MSGRCV: u64 = 70;
/// `msgctl`
pub const MSGCTL: u64 = 71;
/// `fcntl`
pub const FCNTL: u64 = 72;
/// `flock`
pub const FLOCK: u64 = 73;
/// `fsync`
pub const FSYNC: u64 = 74;
/// `fdatasync`
pub const FDATASYNC: u64 = 75;
/// `truncate`
pub const TRUNCATE: u64 = 76;
/// `ftruncate`
pub const FTRUNCATE: u64 = 77;
/// `getdents`
pub const GETDENTS: u64 = 78;
/// `getcwd`
pub const GETCWD: u64 = 79;
/// `chdir`
pub const CHDIR: u64 = 80;
/// `fchdir`
pub const FCHDIR: u64 = 81;
/// `rename`
pub const RENAME: u64 = 82;
/// `mkdir`
pub const MKDIR: u64 = 83;
/// `rmdir`
pub const RMDIR: u64 = 84;
/// `creat`
pub const CREAT: u64 = 85;
/// `link`
pub const LINK: u64 = 86;
/// `unlink`
pub const UNLINK: u64 = 87;
/// `symlink`
pub const SYMLINK: u64 = 88;
/// `readlink`
pub const READLINK: u64 = 89;
/// `chmod`
pub const CHMOD: u64 = 90;
/// `fchmod`
pub const FCHMOD: u64 = 91;
/// `chown`
pub const CHOWN: u64 = 92;
/// `fchown`
pub const FCHOWN: u64 = 93;
/// `lchown`
pub const LCHOWN: u64 = 94;
/// `umask`
pub const UMASK: u64 = 95;
/// `gettimeofday`
pub const GETTIMEOFDAY: u64 = 96;
/// `getrlimit`
pub const GETRLIMIT: u64 = 97;
/// `getrusage`
pub const GETRUSAGE: u64 = 98;
/// `sysinfo`
pub const SYSINFO: u64 = 99;
/// `times`
pub const TIMES: u64 = 100;
/// `ptrace`
pub const PTRACE: u64 = 101;
/// `getuid`
pub const GETUID: u64 = 102;
/// `syslog`
pub const SYSLOG: u64 = 103;
/// `getgid`
pub const GETGID: u64 = 104;
/// `setuid`
pub const SETUID: u64 = 105;
/// `setgid`
pub const SETGID: u64 = 106;
/// `geteuid`
pub const GETEUID: u64 = 107;
/// `getegid`
pub const GETEGID: u64 = 108;
/// `setpgid`
pub const SETPGID: u64 = 109;
/// `getppid`
pub const GETPPID: u64 = 110;
/// `getpgrp`
pub const GETPGRP: u64 = 111;
/// `setsid`
pub const SETSID: u64 = 112;
/// `setreuid`
pub const SETREUID: u64 = 113;
/// `setregid`
pub const SETREGID: u64 = 114;
/// `getgroups`
pub const GETGROUPS: u64 = 115;
/// `setgroups`
pub const SETGROUPS: u64 = 116;
/// `setresuid`
pub const SETRESUID: u64 = 117;
/// `getresuid`
pub const GETRESUID: u64 = 118;
/// `setresgid`
pub const SETRESGID: u64 = 119;
/// `getresgid`
pub const GETRESGID: u64 = 120;
/// `getpgid`
pub const GETPGID: u64 = 121;
/// `setfsuid`
pub const SETFSUID: u64 = 122;
/// `setfsgid`
pub const SETFSGID: u64 = 123;
/// `getsid`
pub const GETSID: u64 = 124;
/// `capget`
pub const CAPGET: u64 = 125;
/// `capset`
pub const CAPSET: u64 = 126;
/// `rt_sigpending`
pub const RT_SIGPENDING: u64 = 127;
/// `rt_sigtimedwait`
pub const RT_SIGTIMEDWAIT: u64 = 128;
/// `rt_sigqueueinfo`
pub const RT_SIGQUEUEINFO: u64 = 129;
/// `rt_sigsuspend`
pub const RT_SIGSUSPEND: u64 = 130;
/// `sigaltstack`
pub const SIGALTSTACK: u64 = 131;
/// `utime`
pub const UTIME: u64 = 132;
/// `mknod`
pub const MKNOD: u64 = 133;
/// `uselib`
pub const USELIB: u64 = 134;
/// `personality`
pub const PERSONALITY: u64 = 135;
/// `ustat`
pub const USTAT: u64 = 136;
/// `statfs`
pub const STATFS: u64 = 137;
/// `fstatfs`
pub const FSTATFS: u64 = 138;
/// `sysfs`
pub const SYSFS: u64 = 139;
/// `getpriority`
pub const GETPRIORITY: u64 = 140;
/// `setpriority`
pub const SETPRIORITY: u64 = 141;
/// `sched_setparam`
pub const SCHED_SETPARAM: u64 = 142;
/// `sched_getparam`
pub const SCHED_GETPARAM: u64 = 143;
/// `sched_setscheduler`
pub const SCHED_SETSCHEDULER: u64 = 144;
/// `sched_getscheduler`
pub const SCHED_GETSCHEDULER: u64 = 145;
/// `sched_get_priority_max`
pub const SCHED_GET_PRIORITY_MAX: u64 = 146;
/// `sched_get_priority_min`
pub const SCHED_GET_PRIORITY_MIN: u64 = 147;
/// `sched_rr_get_interval`
pub const SCHED_RR_GET_INTERVAL: u64 = 148;
/// `mlock`
pub const MLOCK: u64 = 149;
/// `munlock`
pub const MUNLOCK: u64 = 150;
/// `mlockall`
pub const MLOCKALL: u64 = 151;
/// `munlockall`
pub const MUNLOCKALL: u64 = 152;
/// `vhangup`
pub const VHANGUP: u64 = 153;
/// `modify_ldt`
pub const MODIFY_LDT: u64 = 154;
/// `pivot_root`
pub const PIVOT_ROOT: u64 = 155;
/// `_sysctl`
pub const _SYSCTL: u64 = 156;
/// `prctl`
pub const PRCTL: u64 = 157;
/// `arch_prctl`
pub const ARCH_PRCTL: u64 = 158;
/// `adjtimex`
pub const ADJTIMEX: u64 = 159;
/// `setrlimit`
pub const SETRLIMIT: u64 = 160;
/// `chroot`
pub const CHROOT: u64 = 161;
/// `sync`
pub const SYNC: u64 = 162;
/// `acct`
pub const ACCT: u64 = 163;
/// `settimeofday`
pub const SETTIMEOFDAY: u64 = 164;
/// `mount`
pub const MOUNT: u64 = 165;
/// `umount2`
pub const UMOUNT2: u64 = 166;
/// `swapon`
pub const SWAPON: u64 = 167;
/// `swapoff`
pub const SWAPOFF: u64 = 168;
/// `reboot`
pub const REBOOT: u64 = 169;
/// `sethostname`
pub const SETHOSTNAME: u64 = 170;
/// `setdomainname`
pub const SETDOMAINNAME: u64 = 171;
/// `iopl`
pub const IOPL: u64 = 172;
/// `ioperm`
pub const IOPERM: u64 = 173;
/// `create_module`
pub const CREATE_MODULE: u64 = 174;
/// `init_module`
pub const INIT_MODULE: u64 = 175;
/// `delete_module`
pub const DELETE_MODULE: u64 = 176;
/// `get_kernel_syms`
pub const GET_KERNEL_SYMS: u64 = 177;
/// `query_module`
pub const QUERY_MODULE: u64 = 178;
/// `quotactl`
pub const QUOTACTL: u64 = 179;
/// `nfsservctl`
pub const NFSSERVCTL: u64 = 180;
/// `getpmsg`
pub const GETPMSG: u64 = 181;
/// `putpmsg`
pub const PUTPMSG: u64 = 182;
/// `afs_syscall`
pub const AFS_SYSCALL: u64 = 183;
/// `tuxcall`
pub const TUXCALL: u64 = 184;
/// `security`
pub const SECURITY: u64 = 185;
/// `gettid`
pub const GETTID: u64 = 186;
/// `readahead`
pub const READAHEAD: u64 = 187;
/// `setxattr`
pub const SETXATTR: u64 = 188;
/// `lsetxattr`
pub const LSETXATTR: u64 = 189;
/// `fsetxattr`
pub const FSETXATTR: u64 = 190;
/// `getxattr`
pub const GETXATTR: u64 = 191;
/// `lgetxattr`
pub const LGETXATTR: u64 = 192;
/// `fgetxattr`
pub const FGETXATTR: u64 = 193;
/// `listxattr`
pub const LISTXATTR: u64 = 194;
/// `llistxattr`
pub const LLISTXATTR: u64 = 195;
/// `flistxattr`
pub const FLISTXATTR: u64 = 196;
/// `removexattr`
pub const REMOVEXATTR: u64 = 197;
/// `lremovexattr`
pub const LREMOVEXATTR: u64 = 198;
/// `fremovexattr`
pub const FREMOVEXATTR: u64 = 199;
/// `tkill`
pub const TKILL: u64 = 200;
/// `time`
pub const TIME: u64 = 201;
/// `futex`
pub const FUTEX: u64 = 202;
/// `sched_setaffinity`
pub const SCHED_SETAFFINITY: u64 = 203;
/// `sched_getaffinity`
pub const SCHED_GETAFFINITY: u64 = 204;
/// `set_thread_area`
pub const SET_THREAD_AREA: u64 = 205;
/// `io_setup`
pub const IO_SETUP: u64 = 206;
/// `io_destroy`
pub const IO_DESTROY: u64 = 207;
/// `io_getevents`
pub const IO_GETEVENTS: u64 = 208;
/// `io_submit`
pub const IO_SUBMIT: u64 = 209;
/// `io_cancel`
pub const IO_CANCEL: u64 = 210;
/// `get_thread_area`
pub const GET_THREAD_AREA: u64 = 211;
/// `lookup_dcookie`
pub const LOOKUP_DCOOKIE: u64 = 212;
/// `epoll_create`
pub const EPOLL_CREATE: u64 = 213;
/// `epoll_ctl_old`
pub const EPOLL_CTL_OLD: u64 = 214;
/// `epoll_wait_old`
pub const EPOLL_WAIT_OLD: u64 = 215;
/// `remap_file_pages`
pub const REMAP_FILE_PAGES: u64 = 216;
/// `getdents64`
pub const GETDENTS64: u64 = 217;
/// `set_tid_address`
pub const SET_TID_ADDRESS: u64 = 218;
/// `restart_syscall`
pub const RESTART_SYSCALL: u64 = 219;
/// `semtimedop`
pub const SEMTIMEDOP: u64 = 220;
/// `fadvise64`
pub const FADVISE64: u64 = 221;
/// `timer_create`
pub const TIMER_CREATE: u64 = 222;
/// `timer_settime`
pub const TIMER_SETTIME: u64 = 223;
/// `timer_gettime`
pub const TIMER_GETTIME: u64 = 224;
/// `timer_getoverrun`
pub const TIMER_GETOVERRUN: u64 = 225;
/// `timer_delete`
pub const TIMER_DELETE: u64 = 226;
/// `clock_settime`
pub const CLOCK_SETTIME: u64 = 227;
/// `clock_gettime`
pub const CLOCK_GETTIME: u64 = 228;
/// `clock_getres`
pub const CLOCK_GETRES: u64 = 229;
/// `clock_nanosleep`
pub const CLOCK_NANOSLEEP: u64 = 230;
/// `exit_group`
pub const EXIT_GROUP: u64 = 231;
/// `epoll_wait`
pub const EPOLL_WAIT: u64 = 232;
/// `epoll_ctl`
pub const EPOLL_CTL: u64 = 233;
/// `tgkill`
pub const TGKILL: u64 = 234;
/// `utimes`
pub const UTIMES: u64 = 235;
/// `vserver`
pub const VSERVER: u64 = 236;
/// `mbind`
pub const MBIND: u64 = 237;
/// `set_mempolicy`
pub const SET_MEMPOLICY: u64 = 238;
/// `get_mempolicy`
pub const GET_MEMPOLICY: u64 = 239;
/// `mq_open`
pub const MQ_OPEN: u64 = 240;
/// `mq_unlink`
pub const MQ_UNLINK: u64 = 241;
/// `mq_timedsend`
pub const MQ_TIMEDSEND: u64 = 242;
/// `mq_timedreceive`
pub const MQ_TIMEDRECEIVE: u64 = 243;
/// `mq_notify`
pub const MQ_NOTIFY: u64 = 244;
/// `mq_getsetattr`
pub const MQ_GETSETATTR: u64 = 245;
/// `kexec_load`
pub const KEXEC_LOAD: u64 = 246;
/// `waitid`
pub const WAITID: u64 = 247;
/// `add_key`
pub const ADD_KEY: u64 = 248;
/// `request_key`
pub const REQUEST_KEY: u64 = 249;
/// `keyctl`
pub const KEYCTL: u64 = 250;
/// `ioprio_set`
pub const IOPRIO_SET: u64 = 251;
/// `ioprio_get`
pub const IOPRIO_GET: u64 = 252;
/// `inotify_init`
pub const INOTIFY_INIT: u64 = 253;
/// `inotify_add_watch`
pub const INOTIFY_ADD_WATCH: u64 = 254;
/// `inotify_rm_watch`
pub const INOTIFY_RM_WATCH: u64 = 255;
/// `migrate_pages`
pub const MIGRATE_PAGES: u64 = 256;
/// `openat`
pub const OPENAT: u64 = 257;
/// `mkdirat`
pub const MKDIRAT: u64 = 258;
/// `mknodat`
pub const MKNODAT: u64 = 259;
/// `fchownat`
pub const FCHOWNAT: u64 = 260;
/// `futimesat`
pub const FUTIMESAT: u64 = 261;
/// `newfstatat`
pub const NEWFSTATAT: u64 = 262;
/// `unlinkat`
pub const UNLINKAT: u64 = 263;
/// `renameat`
pub const RENAMEAT: u64 = 264;
/// `linkat`
pub const LINKAT: u64 = 265;
/// `symlinkat`
pub const SYMLINKAT: u64 = 266;
/// `readlinkat`
pub const READLINKAT: u64 = 267;
/// `fchmodat`
pub const FCHMODAT: u64 = 268;
/// `faccessat`
pub const FACCESSAT: u64 = 269;
/// `pselect6`
pub const PSELECT6: u64 = 270;
/// `ppoll`
pub const PPOLL: u64 = 271;
/// `unshare`
pub const UNSHARE: u64 = 272;
/// `set_robust_list`
pub const SET_ROBUST_LIST: u64 = 273;
/// `get_robust_list`
pub const GET_ROBUST_LIST: u64 = 274;
/// `splice`
pub const SPLICE: u64 = 275;
/// `tee`
pub const TEE: u64 = 276;
/// `sync_file_range`
pub const SYNC_FILE_RANGE: u64 = 277;
/// `vmsplice`
pub const VMSPLICE: u64 = 278;
/// `move_pages`
pub const MOVE_PAGES: u64 = 279;
/// `utimensat`
pub const UTIMENSAT: u64 = 280;
/// `epoll_pwait`
pub const EPOLL_PWAIT: u64 = 281;
/// `signalfd`
pub const SIGNALFD: u64 = 282;
/// `timerfd_create`
pub const TIMERFD_CREATE: u64 = 283;
/// `eventfd`
pub const EVENTFD: u64 = 284;
/// `fallocate`
pub const FALLOCATE: u64 = 285;
/// `timerfd_settime`
pub const TIMERFD_SETTIME: u64 = 286;
/// `timerfd_gettime`
pub const TIMERFD_GETTIME: u64 = 287;
/// `accept4`
pub const ACCEPT4: u64 = 288;
/// `signalfd4`
pub const SIGNALFD4: u64 = 289;
/// `eventfd2`
pub const EVENTFD2: u64 = 290;
/// `epoll_create1`
pub const EPOLL_CREATE1: u64 = 291;
/// `dup3`
pub const DUP3: u64 = 292;
/// `pipe2`
pub const PIPE2: u64 = 293;
/// `inotify_init1`
pub const INOTIFY_INIT1: u64 = 294;
/// `preadv`
pub const PREADV: u64 = 295;
/// `pwritev`
pub const PWRITEV: u64 = 296;
/// `rt_tgsigqueueinfo`
pub const RT_TGSIGQUEUEINFO: u64 = 297;
/// `perf_event_open`
pub const PERF_EVENT_OPEN: u64 = 298;
/// `recvmmsg`
pub const RECVMMSG: u64 = 299;
/// `fanotify_init`
pub const FANOTIFY_INIT: u64 = 300;
/// `fanotify_mark`
pub const FANOTIFY_MARK: u64 = 301;
/// `prlimit64`
pub const PRLIMIT64: u64 = 302;
/// `name_to_handle_at`
pub const NAME_TO_HANDLE_AT: u64 = 303;
/// `open_by_handle_at`
pub const OPEN_BY_HANDLE_AT: u64 = 304;
/// `clock_adjtime`
pub const CLOCK_ADJTIME: u64 = 305;
/// `syncfs`
pub const SYNCFS: u64 = 306;
/// `sendmmsg`
pub const SENDMMSG: u64 = 307;
/// `setns`
pub const SETNS: u64 = 308;
/// `getcpu`
pub const GETCPU: u64 = 309;
/// `process_vm_readv`
pub const PROCESS_VM_READV: u64 = 310;
/// `process_vm_writev`
pub const PROCESS_VM_WRITEV: u64 = 311;
/// `kcmp`
pub const KCMP: u64 = 312;
/// `finit_module`
pub const FINIT_MODULE: u64 = 313;
/// `sched_setattr`
pub const SCHED_SETATTR: u64 = 314;
/// `sched_getattr`
pub const SCHED_GETATTR: u64 = 315;
/// `renameat2`
pub const RENAMEAT2: u64 = 316;
/// `seccomp`
pub const SECCOMP: u64 = 317;
/// `getrandom`
pub const GETRANDOM: u64 = 318;
/// `memfd_create`
pub const MEMFD_CREATE: u64 = 319;
/// `kexec_file_load`
pub const KEXEC_FILE_LOAD: u64 = 320;
/// `bpf`
pub const BPF: u64 = 321;
/// `execveat`
pub const EXECVEAT: u64 = 322;
/// `userfaultfd`
pub const USERFAULTFD: u64 = 323;
/// `membarrier`
pub const MEMBARRIER: u64 = 324;
/// `mlock2`
pub const MLOCK2: u64 = 325;
/// `copy_file_range`
pub const COPY_FILE_RANGE: u64 = 326;
/// `preadv2`
pub const PREADV2: u64 = 327;
/// `pwritev2`
pub const PWRITEV2: u64 = 328;
/// `pkey_mprotect`
pub const PKEY_MPROTECT: u64 = 329;
/// `pkey_alloc`
pub const PKEY_ALLOC: u64 = 330;
/// `pkey_free`
pub const PKEY_FREE: u64 = 331;
/// `statx`
pub const STATX: u64 = 332;
/// `io_pgetevents`
pub const IO_PGETEVENTS: u64 = 333;
/// `rseq`
pub const RSEQ: u64 = 334;
/// `pidfd_send_signal`
pub const PIDFD_SEND_SIGNAL: u64 = 424;
/// `io_uring_setup`
pub const IO_URING_SETUP: u64 = 425;
/// `io_uring_enter`
pub const IO_URING_ENTER: u64 = 426;
/// `io_uring_register`
pub const IO_URING_REGISTER: u64 = 427;
/// `open_tree`
pub const OPEN_TREE: u64 = 428;
/// `move_mount`
pub const MOVE_MOUNT: u64 = 429;
/// `fsopen`
pub const FSOPEN: u64 = 430;
/// `fsconfig`
pub const FSCONFIG: u64 = 431;
/// `fsmount`
pub const FSMOUNT: u64 = 432;
/// `fspick`
pub const FSPICK: u64 = 433;
/// `pidfd_open`
pub const PIDFD_OPEN: u64 = 434;
/// `clone3`
pub const CLONE3: u64 = 435;
/// `close_range`
pub const CLOSE_RANGE: u64 = 436;
/// `openat2`
pub const OPENAT2: u64 = 437;
/// `pidfd_getfd`
pub const PIDFD_GETFD: u64 = 438;
/// `faccessat2`
pub const FACCESSAT2: u64 = 439;
/// `process_madvise`
pub const PROCESS_MADVISE: u64 = 440;
/// `epoll_pwait2`
pub const EPOLL_PWAIT2: u64 = 441;
/// `mount_setattr`
pub const MOUNT_SETATTR: u64 = 442;
/// `quotactl_fd`
pub const QUOTACTL_FD: u64 = 443;
/// `landlock_create_ruleset`
pub const LANDLOCK_CREATE_RULESET: u64 = 444;
/// `landlock_add_rule`
pub const LANDLOCK_ADD_RULE: u64 = 445;
/// `landlock_restrict_self`
pub const LANDLOCK_RESTRICT_SELF: u64 = 446;
/// `memfd_secret`
pub const MEMFD_SECRET: u64 = 447;
/// `process_mrelease`
pub const PROCESS_MRELEASE: u64 = 448;
/// `futex_waitv`
pub const FUTEX_WAITV: u64 = 449;
/// `set_mempolicy_home_node`
pub const SET_MEMPOLICY_HOME_NODE: u64 = 450;
/// `cachestat`
pub const CACHESTAT: u64 = 451;
/// `fchmodat2`
pub const FCHMODAT2: u64 = 452;
/// `map_shadow_stack`
pub const MAP_SHADOW_STACK: u64 = 453;
/// `futex_wake`
pub const FUTEX_WAKE: u64 = 454;
/// `futex_wait`
pub const FUTEX_WAIT: u64 = 455;
/// `futex_requeue`
pub const FUTEX_REQUEUE: u64 = 456;
/// `statmount`
pub const STATMOUNT: u64 = 457;
/// `listmount`
pub const LISTMOUNT: u64 = 458;
/// `lsm_get_self_attr`
pub const LSM_GET_SELF_ATTR: u64 = 459;
/// `lsm_set_self_attr`
pub const LSM_SET_SELF_ATTR: u64 = 460;
/// `lsm_list_modules`
pub const LSM_LIST_MODULES: u64 = 461;
/// `mseal`
pub const MSEAL: u64 = 462;
/// `setxattrat`
pub const SETXATTRAT: u64 = 463;
/// `getxattrat`
pub const GETXATTRAT: u64 = 464;
/// `listxattrat`
pub const LISTXATTRAT: u64 = 465;
/// `removexattrat`
pub const REMOVEXATTRAT: u64 = 466;
/// `open_tree_attr`
pub const OPEN_TREE_ATTR: u64 = 467;

/// Names of syscalls 0..=334.
static LOW: [&str; 335] = [
    "read",
    "write",
    "open",
    "close",
    "stat",
    "fstat",
    "lstat",
    "poll",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "access",
    "pipe",
    "select",
    "sched_yield",
    "mremap",
    "msync",
    "mincore",
    "madvise",
    "shmget",
    "shmat",
    "shmctl",
    "dup",
    "dup2",
    "pause",
    "nanosleep",
    "getitimer",
    "alarm",
    "setitimer",
    "getpid",
    "sendfile",
    "socket",
    "connect",
    "accept",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "shutdown",
    "bind",
    "listen",
    "getsockname",
    "getpeername",
    "socketpair",
    "setsockopt",
    "getsockopt",
    "clone",
    "fork",
    "vfork",
    "execve",
    "exit",
    "wait4",
    "kill",
    "uname",
    "semget",
    "semop",
    "semctl",
    "shmdt",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "fcntl",
    "flock",
    "fsync",
    "fdatasync",
    "truncate",
    "ftruncate",
    "getdents",
    "getcwd",
    "chdir",
    "fchdir",
    "rename",
    "mkdir",
    "rmdir",
    "creat",
    "link",
    "unlink",
    "symlink",
    "readlink",
    "chmod",
    "fchmod",
    "chown",
    "fchown",
    "lchown",
    "umask",
    "gettimeofday",
    "getrlimit",
    "getrusage",
    "sysinfo",
    "times",
    "ptrace",
    "getuid",
    "syslog",
    "getgid",
    "setuid",
    "setgid",
    "geteuid",
    "getegid",
    "setpgid",
    "getppid",
    "getpgrp",
    "setsid",
    "setreuid",
    "setregid",
    "getgroups",
    "setgroups",
    "setresuid",
    "getresuid",
    "setresgid",
    "getresgid",
    "getpgid",
    "setfsuid",
    "setfsgid",
    "getsid",
    "capget",
    "capset",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "rt_sigsuspend",
    "sigaltstack",
    "utime",
    "mknod",
    "uselib",
    "personality",
    "ustat",
    "statfs",
    "fstatfs",
    "sysfs",
    "getpriority",
    "setpriority",
    "sched_setparam",
    "sched_getparam",
    "sched_setscheduler",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "mlock",
    "munlock",
    "mlockall",
    "munlockall",
    "vhangup",
    "modify_ldt",
    "pivot_root",
    "_sysctl",
    "prctl",
    "arch_prctl",
    "adjtimex",
    "setrlimit",
    "chroot",
    "sync",
    "acct",
    "settimeofday",
    "mount",
    "umount2",
    "swapon",
    "swapoff",
    "reboot",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "create_module",
    "init_module",
    "delete_module",
    "get_kernel_syms",
    "query_module",
    "quotactl",
    "nfsservctl",
    "getpmsg",
    "putpmsg",
    "afs_syscall",
    "tuxcall",
    "security",
    "gettid",
    "readahead",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "tkill",
    "time",
    "futex",
    "sched_setaffinity",
    "sched_getaffinity",
    "set_thread_area",
    "io_setup",
    "io_destroy",
    "io_getevents",
    "io_submit",
    "io_cancel",
    "get_thread_area",
    "lookup_dcookie",
    "epoll_create",
    "epoll_ctl_old",
    "epoll_wait_old",
    "remap_file_pages",
    "getdents64",
    "set_tid_address",
    "restart_syscall",
    "semtimedop",
    "fadvise64",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "clock_settime",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "exit_group",
    "epoll_wait",
    "epoll_ctl",
    "tgkill",
    "utimes",
    "vserver",
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    "kexec_load",
    "waitid",
    "add_key",
    "request_key",
    "keyctl",
    "ioprio_set",
    "ioprio_get",
    "inotify_init",
    "inotify_add_watch",
    "inotify_rm_watch",
    "migrate_pages",
    "openat",
    "mkdirat",
    "mknodat",
    "fchownat",
    "futimesat",
    "newfstatat",
    "unlinkat",
    "renameat",
    "linkat",
    "symlinkat",
    "readlinkat",
    "fchmodat",
    "faccessat",
    "pselect6",
    "ppoll",
    "unshare",
    "set_robust_list",
    "get_robust_list",
    "splice",
    "tee",
    "sync_file_range",
    "vmsplice",
    "move_pages",
    "utimensat",
    "epoll_pwait",
    "signalfd",
    "timerfd_create",
    "eventfd",
    "fallocate",
    "timerfd_settime",
    "timerfd_gettime",
    "accept4",
    "signalfd4",
    "eventfd2",
    "epoll_create1",
    "dup3",
    "pipe2",
    "inotify_init1",
    "preadv",
    "pwritev",
    "rt_tgsigqueueinfo",
    "perf_event_open",
    "recvmmsg",
    "fanotify_init",
    "fanotify_mark",
    "prlimit64",
    "name_to_handle_at",
    "open_by_handle_at",
    "clock_adjtime",
    "syncfs",
    "sendmmsg",
    "setns",
    "getcpu",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "finit_module",
    "sched_setattr",
    "sched_getattr",
    "renameat2",
    "seccomp",
    "getrandom",
    "memfd_create",
    "kexec_file_load",
    "bpf",
    "execveat",
    "userfaultfd",
    "membarrier",
    "mlock2",
    "copy_file_range",
    "preadv2",
    "pwritev2",
    "pkey_mprotect",
    "pkey_alloc",
    "pkey_free",
    "statx",
    "io_pgetevents",
    "rseq",
];

/// Names of syscalls 424..=467.
static HIGH: [&str; 44] = [
    "pidfd_send_signal",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "pidfd_open",
    "clone3",
    "close_range",
    "openat2",
    "pidfd_getfd",
    "faccessat2",
    "process_madvise",
    "epoll_pwait2",
    "mount_setattr",
    "quotactl_fd",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "memfd_secret",
    "process_mrelease",
    "futex_waitv",
    "set_mempolicy_home_node",
    "cachestat",
    "fchmodat2",
    "map_shadow_stack",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    "statmount",
    "listmount",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "mseal",
    "setxattrat",
    "getxattrat",
    "listxattrat",
    "removexattrat",
    "open_tree_attr",
];

/// The name of syscall `nr`, or `None` for a number x86-64 Linux does not
/// define (what a workload passes in `rax` is arbitrary: this never panics).
pub fn name(nr: u64) -> Option<&'static str> {
    match nr {
        0..=334 => LOW.get(usize::try_from(nr).ok()?).copied(),
        424..=MAX_KNOWN => HIGH.get(usize::try_from(nr - 424).ok()?).copied(),
        _ => None,
    }
}

/// Remembers which syscall numbers were already reported, so that an
/// unsupported syscall is logged once by number and name and then only
/// answered with ENOSYS. Numbers above [`OnceLog::TRACKED`] share one slot.
#[derive(Clone, Debug)]
pub struct OnceLog {
    seen: [u64; 8],
}

impl Default for OnceLog {
    fn default() -> Self {
        Self::new()
    }
}

impl OnceLog {
    /// Numbers below this have a bit each; all larger ones share the last bit.
    pub const TRACKED: u64 = 511;

    /// A log that has seen nothing.
    pub const fn new() -> Self {
        Self { seen: [0; 8] }
    }

    /// True the first time `nr` is passed (the caller then logs it, e.g.
    /// `"unsupported syscall {nr} ({})", name(nr).unwrap_or("unknown")`),
    /// false afterwards.
    pub fn first_time(&mut self, nr: u64) -> bool {
        let slot = nr.min(Self::TRACKED);
        let (word, bit) = ((slot / 64) as usize, slot % 64);
        let Some(w) = self.seen.get_mut(word) else {
            return false;
        };
        let fresh = *w & (1 << bit) == 0;
        *w |= 1 << bit;
        fresh
    }
}
