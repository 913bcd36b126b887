#include "webexec/process/fork_server.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <system_error>

#include "webexec/detail/process_pool.hpp"
#include "webexec/errors.hpp"
#include "webexec/job_registry.hpp"

namespace webexec::process {
namespace {

// Host -> fork server requests and their replies (SOCK_SEQPACKET: one
// message each, the worker's socket travels as SCM_RIGHTS).
struct Request {
  char op = 0;  // 'S' spawn, 'W' wait
  pid_t pid = 0;
};
struct Reply {
  pid_t pid = 0;  // negative errno on failure
  int status = 0;
};

struct ForkServer {
  std::mutex mutex;
  int control = -1;  // guarded by mutex
  pid_t pid = -1;    // guarded by mutex
  std::uint64_t jobs_known = 0;
};

ForkServer& server() {
  static ForkServer s;
  return s;
}

std::atomic<bool> running{false};

constexpr std::size_t kSlotBytes = 4096;
static_assert(webexec::detail::kSlotsPerWorker * sizeof(webexec::detail::StartSlot) <= kSlotBytes);
static_assert(webexec::detail::StartSlot::is_always_lock_free,
              "start slots are shared between processes: they must be lock-free");

/// Sends `reply`, with `fds` (none, or a worker's socket and slot memory).
void send_reply(int control, const Reply& reply, const std::array<int, 2>* fds) {
  iovec iov{const_cast<Reply*>(&reply),
            sizeof reply};  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(2 * sizeof(int))> control_data{};
  if (fds != nullptr) {
    msg.msg_control = control_data.data();
    msg.msg_controllen = control_data.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(2 * sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), fds->data(), 2 * sizeof(int));
  }
  while (::sendmsg(control, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

[[noreturn]] void fork_server_main(int control, pid_t host) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != host) ::_exit(0);  // the host died before we could watch it
  std::set<pid_t> workers;
  const pid_t self = ::getpid();
  for (;;) {
    Request request;
    const ssize_t n = ::recv(control, &request, sizeof request, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof request)) {
      // The host closed the channel (shut down or died): take the workers down.
      for (const pid_t pid : workers) ::kill(pid, SIGKILL);
      for (const pid_t pid : workers) {
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
      }
      ::_exit(0);
    }
    if (request.op == 'S') {
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        send_reply(control, Reply{-errno, 0}, nullptr);
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
        send_reply(control, Reply{-error, 0}, nullptr);
        continue;
      }
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::close(control);
        ::close(pair[0]);
        ::close(slots_fd);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != self) ::_exit(0);
        detail::worker_main(pair[1], static_cast<webexec::detail::StartSlot*>(slots));
      }
      ::munmap(slots, kSlotBytes);
      ::close(pair[1]);
      if (pid < 0) {
        send_reply(control, Reply{-errno, 0}, nullptr);
      } else {
        workers.insert(pid);
        const std::array<int, 2> fds{pair[0], slots_fd};
        send_reply(control, Reply{pid, 0}, &fds);
      }
      ::close(pair[0]);
      ::close(slots_fd);
    } else if (request.op == 'W') {
      int status = -1;
      if (workers.count(request.pid) != 0) {
        while (::waitpid(request.pid, &status, 0) < 0 && errno == EINTR) {
        }
        workers.erase(request.pid);
      }
      send_reply(control, Reply{request.pid, status}, nullptr);
    }
  }
}

// A child forked from the host (not by webexec) must not talk to the
// parent's fork server.
void forget_fork_server_in_child() {
  ForkServer& s = server();
  new (&s.mutex) std::mutex();  // the lock may have been held at fork
  s.control = -1;
  s.pid = -1;
  running.store(false);
}

Reply exchange(const Request& request, std::array<int, 2>* fds_out) {
  ForkServer& s = server();
  if (s.control < 0) throw InvalidStateError("the fork server is not running");
  while (::send(s.control, &request, sizeof request, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "fork server");
  }
  Reply reply;
  iovec iov{&reply, sizeof reply};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(2 * sizeof(int))> control_data{};
  msg.msg_control = control_data.data();
  msg.msg_controllen = control_data.size();
  ssize_t n = 0;
  while ((n = ::recvmsg(s.control, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof reply)) {
    throw BrokenProcessPool("the fork server stopped answering (it died?)");
  }
  if (fds_out != nullptr) {
    *fds_out = {-1, -1};
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
          c->cmsg_len == CMSG_LEN(2 * sizeof(int))) {
        std::memcpy(fds_out->data(), CMSG_DATA(c), 2 * sizeof(int));
      }
    }
  }
  return reply;
}

int reap_locked(pid_t pid) { return exchange(Request{'W', pid}, nullptr).status; }

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
  ForkServer& s = server();
  const std::lock_guard lock(s.mutex);
  if (s.pid > 0) return;
  const int threads = thread_count();
  if (threads != 1) {
    throw InvalidStateError(
        "EXECUTOR_TYPE=process needs webexec::process::start_fork_server() as the first line of "
        "main(), before any thread starts: this process already runs " +
        std::to_string(threads) +
        " threads, and forking worker processes from it now would be unsafe");
  }
  static std::once_flag atfork;
  std::call_once(atfork, [] { ::pthread_atfork(nullptr, nullptr, forget_fork_server_in_child); });
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair for the fork server");
  }
  s.jobs_known = JobRegistry::global().size();
  const pid_t host = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(pair[0]);
    ::close(pair[1]);
    throw std::system_error(error, std::generic_category(), "fork of the fork server");
  }
  if (pid == 0) {
    ::close(pair[0]);
    fork_server_main(pair[1], host);
  }
  ::close(pair[1]);
  s.control = pair[0];
  s.pid = pid;
  running.store(true);
}

bool fork_server_running() noexcept { return running.load(); }

namespace detail {

SpawnedWorker spawn_worker() {
  ForkServer& s = server();
  const std::lock_guard lock(s.mutex);
  std::array<int, 2> fds{-1, -1};
  const Reply reply = exchange(Request{'S', 0}, &fds);
  if (reply.pid < 0 || fds[0] < 0 || fds[1] < 0) {
    for (const int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
    throw std::system_error(reply.pid < 0 ? -reply.pid : EIO, std::generic_category(),
                            "fork of a worker process");
  }
  void* slots = ::mmap(nullptr, kSlotBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
  ::close(fds[1]);
  if (slots == MAP_FAILED) {
    const int error = errno;
    ::close(fds[0]);
    ::kill(reply.pid, SIGKILL);
    reap_locked(reply.pid);
    throw std::system_error(error, std::generic_category(), "mapping a worker's start slots");
  }
  return SpawnedWorker{reply.pid, fds[0], static_cast<webexec::detail::StartSlot*>(slots)};
}

int reap_worker(pid_t pid) {
  ForkServer& s = server();
  const std::lock_guard lock(s.mutex);
  return reap_locked(pid);
}

void unmap_slots(webexec::detail::StartSlot* slots) noexcept {
  if (slots != nullptr) ::munmap(slots, kSlotBytes);
}

std::string describe_wait_status(int status) {
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

std::uint64_t jobs_known_to_workers() noexcept { return server().jobs_known; }

}  // namespace detail
}  // namespace webexec::process
