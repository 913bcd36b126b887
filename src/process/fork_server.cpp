#include "webexec/process/fork_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio_ext.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "webexec/detail/mutex.hpp"
#include "webexec/detail/process_pool.hpp"
#include "webexec/errors.hpp"
#include "webexec/job_registry.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, for posix_spawn

namespace webexec::process {
namespace {

// The environment variable that tells a re-executed program to become a
// fork server: the number of its control socket.
constexpr const char* kServerEnv = "WEBEXEC_FORK_SERVER_FD";
// The control socket's number in a re-executed fork server.
constexpr int kServerControlFd = 3;
// How long a re-executed fork server may take to reach start_fork_server().
constexpr auto kHelloPatience = std::chrono::seconds(20);

// Host -> fork server requests and their replies (SOCK_SEQPACKET: one
// message each; a new worker's socket, slot memory and pidfd travel as
// SCM_RIGHTS).
struct Request {
  char op = 0;  // 'S' spawn, 'W' wait
  pid_t pid = 0;
};
struct Reply {
  pid_t pid = 0;  // negative errno on failure
  int status = 0;
};
// The first message of a re-executed fork server.
struct Hello {
  pid_t pid = 0;
  std::uint64_t jobs = 0;  // its registry's size: must equal the host's
};

// How the fork server is (re)started.
enum class Mode {
  none,    // not started
  reexec,  // start_fork_server() ran first in main: re-execute the program
  forked,  // started by init_app in a single-threaded host: fork it
};

// Host-side state of the fork server. Everything but jobs_known is guarded
// by mutex.
struct ForkServer {
  webexec::detail::Mutex mutex;
  Mode mode WEBEXEC_GUARDED_BY(mutex) = Mode::none;
  int control WEBEXEC_GUARDED_BY(mutex) = -1;
  pid_t pid WEBEXEC_GUARDED_BY(mutex) = -1;
  int pidfd WEBEXEC_GUARDED_BY(mutex) = -1;  // the fork server's, -1 if pidfd_open failed
  // Started by the current fork server, not reaped.
  std::set<pid_t> workers WEBEXEC_GUARDED_BY(mutex);
  std::set<pid_t> orphans WEBEXEC_GUARDED_BY(mutex);  // started by a dead one (reaped by init)
  std::vector<std::string> argv WEBEXEC_GUARDED_BY(mutex);  // for re-execution
  std::atomic<std::uint64_t> jobs_known{0};
};

// glibc 2.36's <sys/pidfd.h> lacks extern "C": call the kernel directly.
int open_pidfd(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
void signal_pidfd(int pidfd, int sig) noexcept {
  ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
}

ForkServer& server() {
  static ForkServer s;
  return s;
}

std::atomic<bool> running{false};

constexpr std::size_t kSlotBytes = 4096;
static_assert(webexec::detail::kSlotsPerWorker * sizeof(webexec::detail::StartSlot) <= kSlotBytes);
static_assert(webexec::detail::StartSlot::is_always_lock_free,
              "start slots are shared between processes: they must be lock-free");

// ------------------------------------------------------------------ fork server side

/// The signals a terminal or a service manager sends to a whole process
/// group or control group. The fork server and its workers ignore them: the
/// host decides when they end (README, "Signals").
constexpr std::array<int, 4> kGroupSignals = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/// Dispositions of a fork server: group signals ignored (workers inherit
/// that), SIGCHLD at its default (waitpid needs it), nothing blocked.
void set_fork_server_signals() {
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  action.sa_handler = SIG_IGN;
  for (const int sig : kGroupSignals) ::sigaction(sig, &action, nullptr);
  action.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &action, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

/// The descriptors a spawn reply carries: the worker's socket, its slot
/// memory and, if pidfd_open worked, its pidfd.
constexpr std::size_t kMaxReplyFds = 3;

/// Sends `reply`, with the first `count` of `fds` (none, or a worker's
/// socket, slot memory and maybe pidfd).
void send_reply(int control, const Reply& reply, const int* fds, std::size_t count) {
  iovec iov{const_cast<Reply*>(&reply),
            sizeof reply};  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(kMaxReplyFds * sizeof(int))> control_data{};
  if (count > 0 && count <= kMaxReplyFds) {
    msg.msg_control = control_data.data();
    msg.msg_controllen = CMSG_SPACE(count * sizeof(int));
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(count * sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), fds, count * sizeof(int));
  }
  while (::sendmsg(control, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

/// Kills worker `pid`'s process group (the worker and whatever its jobs
/// started), then reaps the worker; returns its wait status. The worker is
/// still unreaped (at worst a zombie), so its group id cannot have been
/// reused.
int kill_group_and_reap(pid_t pid, bool kill_worker_too) {
  if (kill_worker_too) ::kill(pid, SIGKILL);
  // Wait for the worker to exit without reaping it, so its pid (the group
  // id) stays reserved while the group is killed.
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  ::kill(-pid, SIGKILL);
  int status = -1;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

[[noreturn]] void fork_server_main(int control) {
  set_fork_server_signals();
  std::set<pid_t> workers;
  const pid_t self = ::getpid();
  for (;;) {
    Request request;
    const ssize_t n = ::recv(control, &request, sizeof request, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof request)) {
      // The host closed the channel (shut down or died): take the workers
      // and everything they started down.
      for (const pid_t pid : workers) ::kill(-pid, SIGKILL);
      for (const pid_t pid : workers) kill_group_and_reap(pid, true);
      ::_exit(0);
    }
    if (request.op == 'S') {
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        send_reply(control, Reply{-errno, 0}, nullptr, 0);
        continue;
      }
      // The page of start slots the host and this worker share.
      const int slots_fd = ::memfd_create("webexec-start-slots", MFD_CLOEXEC);
      void* slots = MAP_FAILED;
      if (slots_fd >= 0 && ::ftruncate(slots_fd, kSlotBytes) == 0) {
        slots = ::mmap(nullptr, kSlotBytes, PROT_READ | PROT_WRITE, MAP_SHARED, slots_fd, 0);
      }
      if (slots == MAP_FAILED) {
        const int error = errno;
        if (slots_fd >= 0) ::close(slots_fd);
        ::close(pair[0]);
        ::close(pair[1]);
        send_reply(control, Reply{-error, 0}, nullptr, 0);
        continue;
      }
      std::fflush(nullptr);  // nothing buffered here may be written twice
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::close(control);
        ::close(pair[0]);
        ::close(slots_fd);
        // Its own process group: a terminal's Ctrl-C does not reach it, and
        // killing the group kills what its jobs start.
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != self) ::_exit(0);
        detail::worker_main(pair[1], static_cast<webexec::detail::StartSlot*>(slots));
      }
      if (pid > 0) ::setpgid(pid, pid);  // also here, so the group exists before the reply
      ::munmap(slots, kSlotBytes);
      ::close(pair[1]);
      if (pid < 0) {
        send_reply(control, Reply{-errno, 0}, nullptr, 0);
      } else {
        workers.insert(pid);
        // The host learns that the worker exited from this pidfd, not from
        // EOF on its socket (a process its job forks inherits the socket).
        // Opened here, by the parent, before anything can reap the worker:
        // the pid cannot have been reused. None on kernels before 5.3.
        const int pidfd = open_pidfd(pid);
        const std::array<int, kMaxReplyFds> fds{pair[0], slots_fd, pidfd};
        send_reply(control, Reply{pid, 0}, fds.data(), pidfd >= 0 ? 3 : 2);
        if (pidfd >= 0) ::close(pidfd);
      }
      ::close(pair[0]);
      ::close(slots_fd);
    } else if (request.op == 'W') {
      int status = -1;
      if (workers.count(request.pid) != 0) {
        status = kill_group_and_reap(request.pid, false);
        workers.erase(request.pid);
      }
      send_reply(control, Reply{request.pid, status}, nullptr, 0);
    }
  }
}

/// In a program re-executed as a fork server (kServerEnv set to a
/// SOCK_SEQPACKET socket): becomes the fork server and never returns.
/// Otherwise returns.
void become_fork_server_if_asked() {
  const char* value = std::getenv(kServerEnv);
  if (value == nullptr) return;
  const int control = std::atoi(value);
  int type = 0;
  socklen_t length = sizeof type;
  if (control < 0 || ::getsockopt(control, SOL_SOCKET, SO_TYPE, &type, &length) != 0 ||
      type != SOCK_SEQPACKET) {
    return;  // not ours
  }
  ::unsetenv(kServerEnv);
  ::fcntl(control, F_SETFD, FD_CLOEXEC);
  // Output that static initialisation (or main, up to here) buffered is
  // the host's, which prints it itself: drop this copy.
  ::__fpurge(stdout);
  ::__fpurge(stderr);
  set_fork_server_signals();
  const Hello hello{::getpid(), JobRegistry::global().size()};
  if (::send(control, &hello, sizeof hello, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof hello)) {
    ::_exit(0);
  }
  fork_server_main(control);
}

// ------------------------------------------------------------------ host side

void flush_stdio() {
  std::cout.flush();
  std::cerr.flush();
  std::clog.flush();
  std::fflush(nullptr);
}

// A child forked from the host (not by webexec) must not talk to the
// parent's fork server, nor keep its control socket open (the fork server
// exits when the host's end closes).
// Not analysed: it runs in a child just after fork(), alone, where the lock
// may be held by a thread that no longer exists; it is remade, not taken.
void forget_fork_server_in_child() WEBEXEC_NO_THREAD_SAFETY_ANALYSIS {
  ForkServer& s = server();
  new (&s.mutex) webexec::detail::Mutex();  // the lock may have been held at fork
  if (s.control >= 0) ::close(s.control);
  if (s.pidfd >= 0) ::close(s.pidfd);
  s.control = -1;
  s.pidfd = -1;
  s.pid = -1;
  s.mode = Mode::none;
  // Fresh, empty containers (another thread may have been changing them);
  // the old nodes leak, once per fork.
  new (&s.workers) std::set<pid_t>();
  new (&s.orphans) std::set<pid_t>();
  new (&s.argv) std::vector<std::string>();
  s.jobs_known.store(0);
  running.store(false);
}

void install_atfork_once() {
  static std::once_flag atfork;
  std::call_once(atfork, [] { ::pthread_atfork(nullptr, nullptr, forget_fork_server_in_child); });
}

void check_single_threaded() {
  const int threads = thread_count();
  if (threads != 1) {
    throw InvalidStateError(
        "EXECUTOR_TYPE=process needs webexec::process::start_fork_server() as the first line of "
        "main(), before any thread starts: this process already runs " +
        std::to_string(threads) +
        " threads, and forking worker processes from it now would be unsafe");
  }
}

/// This program's command line, to re-execute it with.
std::vector<std::string> read_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  std::size_t at = 0;
  while (at < all.size()) {
    const std::size_t end = all.find('\0', at);
    argv.push_back(all.substr(at, end == std::string::npos ? std::string::npos : end - at));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  if (argv.empty()) argv.emplace_back("webexec-fork-server");
  return argv;
}

void adopt_locked(ForkServer& s, int control, pid_t pid) WEBEXEC_REQUIRES(s.mutex) {
  s.control = control;
  s.pid = pid;
  s.pidfd = open_pidfd(pid);
}

/// Kills and reaps fork server `pid` (a child of this process).
void kill_and_reap_server(pid_t pid, int pidfd) {
  if (pidfd >= 0) {
    signal_pidfd(pidfd, SIGKILL);
    siginfo_t info{};
    while (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) < 0 && errno == EINTR) {
    }
    ::close(pidfd);
  } else if (pid > 0) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

/// Re-executes this program (posix_spawn of /proc/self/exe with the same
/// command line) as a fork server, and waits for its hello. Safe in a host
/// that runs any number of threads: nothing of the host is copied.
void launch_reexec_locked(ForkServer& s) WEBEXEC_REQUIRES(s.mutex) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair for the fork server");
  }
  if (pair[1] == kServerControlFd) {  // dup2 onto itself would keep FD_CLOEXEC
    const int moved = ::fcntl(pair[1], F_DUPFD_CLOEXEC, kServerControlFd + 1);
    ::close(pair[1]);
    pair[1] = moved;
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attributes);
  ::posix_spawn_file_actions_adddup2(&actions, pair[1], kServerControlFd);
  // Only stdin, stdout, stderr and the control socket: none of the host's
  // other descriptors (listening sockets, client connections).
  ::posix_spawn_file_actions_addclosefrom_np(&actions, kServerControlFd + 1);
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigemptyset(&all);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaddset(&all, sig);
  }
  ::posix_spawnattr_setsigmask(&attributes, &none);
  ::posix_spawnattr_setsigdefault(&attributes, &all);
  ::posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv;
  for (auto& arg : s.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::string variable = std::string(kServerEnv) + "=" + std::to_string(kServerControlFd);
  std::vector<char*> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, kServerEnv, std::strlen(kServerEnv)) != 0) env.push_back(*e);
  }
  env.push_back(variable.data());
  env.push_back(nullptr);

  pid_t pid = -1;
  const int rc =
      ::posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, argv.data(), env.data());
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attributes);
  ::close(pair[1]);
  if (rc != 0) {
    ::close(pair[0]);
    throw std::system_error(rc, std::generic_category(), "re-executing the program as fork server");
  }
  const int pidfd = open_pidfd(pid);
  auto give_up = [&](const std::string& why) {
    ::close(pair[0]);
    kill_and_reap_server(pid, pidfd);
    throw BrokenProcessPool("the fork server (this program re-executed, pid " +
                            std::to_string(pid) + ") " + why);
  };
  // The hello, within a deadline.
  const auto deadline = std::chrono::steady_clock::now() + kHelloPatience;
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd fd{pair[0], POLLIN, 0};
    const int ready = ::poll(&fd, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
    if (ready > 0) break;
    if (ready < 0 && errno == EINTR) continue;
    give_up("did not start within " + std::to_string(kHelloPatience.count()) +
            " s: is webexec::process::start_fork_server() the first line of main()?");
  }
  Hello hello;
  ssize_t n = 0;
  while ((n = ::recv(pair[0], &hello, sizeof hello, 0)) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof hello)) {
    give_up(
        "exited before it started: is webexec::process::start_fork_server() called "
        "unconditionally, first in main()?");
  }
  const std::uint64_t expected = s.jobs_known.load();
  if (hello.jobs != expected) {
    give_up("registered " + std::to_string(hello.jobs) + " jobs, but the host had " +
            std::to_string(expected) +
            " when the fork server first started: register jobs only during static "
            "initialisation (WEBEXEC_REGISTER_JOB, namespace-scope executor.job)");
  }
  s.control = pair[0];
  s.pid = pid;
  s.pidfd = pidfd;
}

/// Forks the fork server from this (single-threaded) host.
void launch_forked_locked(ForkServer& s) WEBEXEC_REQUIRES(s.mutex) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair for the fork server");
  }
  flush_stdio();  // or the fork server's workers would print it again
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(pair[0]);
    ::close(pair[1]);
    throw std::system_error(error, std::generic_category(), "fork of the fork server");
  }
  if (pid == 0) {
    ::close(pair[0]);
    fork_server_main(pair[1]);
  }
  ::close(pair[1]);
  adopt_locked(s, pair[0], pid);
}

/// Starts a new fork server after the last one died.
void relaunch_locked(ForkServer& s) WEBEXEC_REQUIRES(s.mutex) {
  if (s.mode == Mode::reexec) {
    launch_reexec_locked(s);
    return;
  }
  const int threads = thread_count();
  if (threads != 1) {
    throw BrokenProcessPool(
        "the fork server died, and it cannot be restarted safely: this process runs " +
        std::to_string(threads) +
        " threads, so it cannot fork a new one, and it can only re-execute the program as a "
        "fork server if webexec::process::start_fork_server() is the first line of main()");
  }
  launch_forked_locked(s);
}

/// The fork server stopped answering: forget it, make sure it is dead and
/// reaped, and kill what its workers started (they die with it).
void forget_dead_server_locked(ForkServer& s) WEBEXEC_REQUIRES(s.mutex) {
  if (s.control >= 0) ::close(s.control);
  s.control = -1;
  kill_and_reap_server(s.pid, s.pidfd);
  s.pid = -1;
  s.pidfd = -1;
  for (const pid_t pid : s.workers) {
    // Not reaped by the dead server: the group id is still reserved while
    // any member lives, and that is what there is to kill.
    ::kill(-pid, SIGKILL);
    s.orphans.insert(pid);
  }
  s.workers.clear();
}

/// One request and its reply; nullopt if the fork server is dead (the
/// channel broke). Throws nothing.
std::optional<Reply> try_exchange_locked(ForkServer& s, const Request& request,
                                         std::array<int, kMaxReplyFds>* fds_out)
    WEBEXEC_REQUIRES(s.mutex) {
  if (s.control < 0) return std::nullopt;
  while (::send(s.control, &request, sizeof request, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) return std::nullopt;
  }
  Reply reply;
  iovec iov{&reply, sizeof reply};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(kMaxReplyFds * sizeof(int))> control_data{};
  msg.msg_control = control_data.data();
  msg.msg_controllen = control_data.size();
  ssize_t n = 0;
  while ((n = ::recvmsg(s.control, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  std::array<int, kMaxReplyFds> fds{-1, -1, -1};
  // Every descriptor received is either kept in `fds` or closed: out of
  // descriptors (EMFILE), the kernel delivers fewer and sets MSG_CTRUNC;
  // then none is kept, and spawn_worker() sees the worker without them.
  bool complete = n > 0 && (msg.msg_flags & MSG_CTRUNC) == 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n > 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    std::array<int, kMaxReplyFds> got{-1, -1, -1};
    const std::size_t kept = std::min(count, got.size());
    std::memcpy(got.data(), CMSG_DATA(c), kept * sizeof(int));
    // 2 descriptors, or 3 with the pidfd, in one message, once.
    if (complete && fds[0] < 0 && count >= 2 && count <= kMaxReplyFds &&
        c->cmsg_len == CMSG_LEN(count * sizeof(int))) {
      fds = got;
      continue;
    }
    complete = false;
    for (std::size_t i = 0; i < kept; ++i) {
      if (got[i] >= 0) ::close(got[i]);
    }
  }
  if (!complete) {
    for (int& fd : fds) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }
  if (n != static_cast<ssize_t>(sizeof reply)) {
    for (const int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
    return std::nullopt;
  }
  if (fds_out != nullptr) {
    *fds_out = fds;
  } else {
    for (const int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  return reply;
}

}  // namespace

int thread_count() noexcept {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

void start_fork_server() {
  become_fork_server_if_asked();  // in a re-executed fork server: never returns
  ForkServer& s = server();
  const webexec::detail::MutexLock lock(s.mutex);
  if (s.mode != Mode::none) return;
  check_single_threaded();
  install_atfork_once();
  s.argv = read_command_line();
  s.jobs_known.store(JobRegistry::global().size());
  s.mode = Mode::reexec;
  try {
    launch_reexec_locked(s);
  } catch (...) {
    s.mode = Mode::none;
    throw;
  }
  running.store(true);
}

bool fork_server_running() noexcept { return running.load(); }

namespace detail {

void start_fork_server_from_init_app() {
  become_fork_server_if_asked();
  ForkServer& s = server();
  const webexec::detail::MutexLock lock(s.mutex);
  if (s.mode != Mode::none) return;
  check_single_threaded();
  install_atfork_once();
  s.jobs_known.store(JobRegistry::global().size());
  s.mode = Mode::forked;
  try {
    launch_forked_locked(s);
  } catch (...) {
    s.mode = Mode::none;
    throw;
  }
  running.store(true);
}

SpawnedWorker spawn_worker() {
  ForkServer& s = server();
  const webexec::detail::MutexLock lock(s.mutex);
  if (s.mode == Mode::none) throw InvalidStateError("the fork server is not running");
  std::array<int, kMaxReplyFds> fds{-1, -1, -1};
  std::optional<Reply> reply;
  // A dead fork server is replaced once per call: the first attempt may
  // find out that it died, the second runs on its successor.
  for (int attempt = 0; attempt < 2 && !reply; ++attempt) {
    if (s.control < 0) relaunch_locked(s);  // throws BrokenProcessPool if it cannot
    reply = try_exchange_locked(s, Request{'S', 0}, &fds);
    if (!reply) forget_dead_server_locked(s);
  }
  if (!reply) throw BrokenProcessPool("the fork server died again as soon as it was restarted");
  if (reply->pid < 0 || fds[0] < 0 || fds[1] < 0) {
    for (const int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
    if (reply->pid > 0) {
      // Forked, but its descriptors did not arrive (out of descriptors
      // here): it must not live on unreaped.
      s.workers.insert(reply->pid);
      kill_worker(reply->pid);
      if (try_exchange_locked(s, Request{'W', reply->pid}, nullptr)) s.workers.erase(reply->pid);
      throw std::system_error(EMFILE, std::generic_category(),
                              "receiving a worker process's descriptors");
    }
    throw std::system_error(reply->pid < 0 ? -reply->pid : EIO, std::generic_category(),
                            "fork of a worker process");
  }
  s.workers.insert(reply->pid);
  void* slots = ::mmap(nullptr, kSlotBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
  ::close(fds[1]);
  if (slots == MAP_FAILED) {
    const int error = errno;
    ::close(fds[0]);
    if (fds[2] >= 0) ::close(fds[2]);
    kill_worker(reply->pid);
    if (try_exchange_locked(s, Request{'W', reply->pid}, nullptr)) s.workers.erase(reply->pid);
    throw std::system_error(error, std::generic_category(), "mapping a worker's start slots");
  }
  return SpawnedWorker{reply->pid, fds[0], static_cast<webexec::detail::StartSlot*>(slots), fds[2]};
}

int reap_worker(pid_t pid) {
  ForkServer& s = server();
  const webexec::detail::MutexLock lock(s.mutex);
  if (s.orphans.erase(pid) != 0) return kLostWithForkServer;
  if (s.workers.count(pid) == 0) return -1;
  const auto reply = try_exchange_locked(s, Request{'W', pid}, nullptr);
  if (!reply) {
    // The fork server died (its workers die with it, so their pools come
    // here first): replace it now rather than at the next spawn.
    forget_dead_server_locked(s);
    s.orphans.erase(pid);
    try {
      relaunch_locked(s);
    } catch (...) {  // NOLINT(bugprone-empty-catch): spawn_worker retries and reports why
    }
    return kLostWithForkServer;
  }
  s.workers.erase(pid);
  return reply->status;
}

void kill_worker(pid_t pid) noexcept {
  if (pid <= 0) return;
  if (::kill(-pid, SIGKILL) != 0) ::kill(pid, SIGKILL);
}

void unmap_slots(webexec::detail::StartSlot* slots) noexcept {
  if (slots != nullptr) ::munmap(slots, kSlotBytes);
}

std::string describe_wait_status(int status) {
  if (status == kLostWithForkServer) return "killed with its fork server, which died";
  if (status == -1) return "exit status unknown";
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) +
           (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
  }
  return "stopped (status " + std::to_string(status) + ")";
}

std::uint64_t jobs_known_to_workers() noexcept { return server().jobs_known.load(); }

pid_t fork_server_pid() noexcept {
  ForkServer& s = server();
  const webexec::detail::MutexLock lock(s.mutex);
  return s.pid;
}

}  // namespace detail
}  // namespace webexec::process
