#include "webexec/detail/process_pool.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

#include "webexec/detail/demangle.hpp"
#include "webexec/errors.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/wire.hpp"

namespace webexec::detail {

namespace wire = webexec::process::detail;
using Clock = std::chrono::steady_clock;

namespace {

/// Jobs sent ahead to a worker, so it never waits for the dispatcher
/// between two jobs (round-trip latency hidden; throughput up ~2x).
constexpr std::size_t kPipelineDepth = 4;

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  StartSlot* slots = nullptr;  // shared with the worker process
  std::size_t next_slot = 0;
  wire::FrameBuffer buffer;
  // Jobs sent, oldest first; the front one runs once the worker says it
  // started; the rest wait in the socket, still pending (cancellable), and
  // are requeued if the worker dies.
  std::deque<std::unique_ptr<ProcessJob>> jobs;
  // True once the worker said the front job started.
  bool front_started = false;
  // Deadline of the front job, counted from when the worker started it.
  Clock::time_point deadline = Clock::time_point::max();
  int sent = 0;              // for max_tasks_per_child
  bool unreachable = false;  // a send failed: it is being killed

  [[nodiscard]] bool busy() const noexcept { return !jobs.empty(); }
};

Progress progress_from_json(const nlohmann::json& j) {
  Progress p;
  p.fraction = j.value("fraction", 0.0);
  p.message = j.value("message", std::string());
  if (j.contains("done")) p.done = j["done"].get<std::int64_t>();
  if (j.contains("total")) p.total = j["total"].get<std::int64_t>();
  return p;
}

void fail(ProcessJob& job, std::exception_ptr error) {
  if (job.state != nullptr && job.state->try_claim())
    job.state->finish_with_error(std::move(error));
}

std::string seconds(Clock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", s);
  return buf;
}

/// The dispatchers of pools destroyed from their own done callbacks: they
/// finish on their own, and are joined at the latest when static objects
/// are destroyed at exit (constructed after the fork server's state, so
/// destroyed before it), so none runs on while the process tears down.
class Orphans {
 public:
  Orphans() = default;
  Orphans(const Orphans&) = delete;
  Orphans& operator=(const Orphans&) = delete;
  ~Orphans() {
    std::vector<std::thread> threads;
    {
      const std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (auto& thread : threads) thread.join();
  }
  void adopt(std::thread thread) {
    const std::lock_guard lock(mutex_);
    threads_.push_back(std::move(thread));
  }

 private:
  std::mutex mutex_;
  std::vector<std::thread> threads_;  // guarded by mutex_
};

Orphans& orphans() {
  static Orphans instance;
  return instance;
}

}  // namespace

class ProcessPool::Impl {
 public:
  explicit Impl(ProcessPoolOptions options) : options_(std::move(options)) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    dispatcher_ = std::thread([this] {
      run();
      // See shutdown_and_delete_when_done(); orphans() holds the thread.
      if (delete_when_done_) delete this;  // NOLINT(cppcoreguidelines-owning-memory)
    });
    dispatcher_id_ = dispatcher_.get_id();
  }

  ~Impl() {
    if (!delete_when_done_) shutdown(true, false);  // never on the dispatcher thread
    ::close(wake_fd_);
  }

  [[nodiscard]] bool on_dispatcher_thread() const noexcept {
    return std::this_thread::get_id() == dispatcher_id_;
  }

  /// From a done callback (the dispatcher thread), which cannot join
  /// itself: stops new submits and lets the dispatcher finish the queued
  /// jobs, then delete this pool itself.
  void shutdown_and_delete_when_done() {
    delete_when_done_ = true;
    orphans().adopt(std::move(dispatcher_));
    shutdown(false, false);
  }

  void submit(std::unique_ptr<ProcessJob> job) {
    {
      const std::lock_guard lock(mutex_);
      if (shutdown_) throw ShutdownError("cannot schedule new futures after shutdown");
      pending_.push_back(std::move(job));
    }
    wake();
  }

  void shutdown(bool wait, bool cancel_futures) {
    std::uint64_t ticket = 0;
    {
      const std::lock_guard lock(mutex_);
      shutdown_ = true;
      cancel_pending_ = cancel_pending_ || cancel_futures;
      if (cancel_futures) ticket = ++cancel_requests_;
    }
    wake();
    // As in Python, queued futures are cancelled when shutdown returns, even
    // with wait=false: wait for the dispatcher to have cancelled them (it
    // owns the jobs queued in workers' sockets). From the dispatcher itself
    // (a done callback) that happens on its next turn instead.
    if (ticket != 0 && !on_dispatcher_thread()) {
      std::unique_lock lock(mutex_);
      cancelled_cv_.wait(lock, [&] { return cancels_done_ >= ticket || dispatcher_done_; });
    }
    if (wait) {
      if (on_dispatcher_thread()) {
        throw InvalidStateError(
            "shutdown(wait=true) called from a done callback of the same process pool would wait "
            "for itself; use shutdown(wait=false)");
      }
      // One thread joins; the others wait here until it has.
      const std::lock_guard join_lock(join_mutex_);
      if (dispatcher_.joinable()) dispatcher_.join();
    }
  }

  [[nodiscard]] int max_workers() const noexcept { return options_.max_workers; }
  [[nodiscard]] bool is_shutdown() const {
    const std::lock_guard lock(mutex_);
    return shutdown_;
  }

  [[nodiscard]] std::vector<pid_t> worker_pids() const {
    const std::lock_guard lock(mutex_);
    return pids_;
  }

 private:
  void wake() const {
    const std::uint64_t one = 1;
    while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

  void publish_pids() {
    std::vector<pid_t> pids;
    for (const auto& w : workers_) pids.push_back(w->pid);
    const std::lock_guard lock(mutex_);
    pids_ = std::move(pids);
  }

  Worker* spawn() {
    const auto spawned = webexec::process::detail::spawn_worker();
    auto worker = std::make_unique<Worker>();
    worker->pid = spawned.pid;
    worker->fd = spawned.fd;
    worker->slots = spawned.slots;
    workers_.push_back(std::move(worker));
    publish_pids();
    return workers_.back().get();
  }

  /// Closes, kills if asked, reaps and forgets `w`; returns its wait status.
  int remove(Worker* w, bool kill) {
    if (kill) webexec::process::detail::kill_worker(w->pid);  // and what its jobs started
    ::close(w->fd);
    for (auto& job : w->jobs) job->detach_slot(*job->state);  // before the slots go
    webexec::process::detail::unmap_slots(w->slots);
    int status = -1;
    try {
      status = webexec::process::detail::reap_worker(w->pid);
    } catch (...) {  // NOLINT(bugprone-empty-catch): the fork server is gone; so is the worker
    }
    std::erase_if(workers_, [w](const auto& p) { return p.get() == w; });
    publish_pids();
    return status;
  }

  /// The worker died or must die: fail the job it was running (with
  /// `override_error`, or a BrokenProcessPool naming pid and status), put
  /// the jobs that never started back in the queue, and reap it.
  void bury(Worker* w, bool kill, const std::string& what_happened,
            const std::exception_ptr& override_error = nullptr) {
    const bool started = w->front_started;
    for (auto& job : w->jobs) job->detach_slot(*job->state);
    std::deque<std::unique_ptr<ProcessJob>> jobs = std::move(w->jobs);
    const pid_t pid = w->pid;
    const int status = remove(w, kill);
    if (jobs.empty()) return;
    std::unique_ptr<ProcessJob> running;
    // A job the worker never started (it died idle, e.g. killed from
    // outside) is not its victim: it goes back to the queue like the rest.
    if (started || override_error) {
      running = std::move(jobs.front());
      jobs.pop_front();
    }
    if (!jobs.empty()) {
      const std::lock_guard lock(mutex_);
      for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) pending_.push_front(std::move(*it));
    }
    if (!running) return;
    if (override_error) {
      fail(*running, override_error);
      return;
    }
    fail(*running, std::make_exception_ptr(BrokenProcessPool(
                       "worker process " + std::to_string(pid) + " " + what_happened + " (" +
                       webexec::process::detail::describe_wait_status(status) +
                       ") while running job '" + running->name + "'; the pool replaced it")));
  }

  /// Sends `job` to `w`, with a fresh start slot. A job cancelled since it
  /// was queued is dropped instead.
  void send(Worker* w, std::unique_ptr<ProcessJob> job) {
    const std::size_t slot = w->next_slot++ % kSlotsPerWorker;
    if (!job->attach_slot(*job->state, &w->slots[slot])) return;  // cancelled
    job->id = next_id_++;
    job->request["id"] = job->id;
    job->request["slot"] = slot;
    const bool sent = wire::write_frame(w->fd, job->request);
    w->jobs.push_back(std::move(job));
    ++w->sent;
    if (!sent) {
      // The worker is dying or dead. Do not bury it here: what it wrote
      // before (results, "started") is still unread. Make sure it dies,
      // send it nothing more, and let the poll loop read to EOF; the job
      // just queued was never started, so it will run elsewhere.
      w->unreachable = true;
      webexec::process::detail::kill_worker(w->pid);
    }
  }

  [[nodiscard]] bool can_take(const Worker& w) const {
    if (w.unreachable || w.jobs.size() >= kPipelineDepth) return false;
    return options_.max_tasks_per_child <= 0 || w.sent < options_.max_tasks_per_child;
  }

  void dispatch() {
    for (;;) {
      // Prefer an idle worker, then start one, then pipeline.
      Worker* target = nullptr;
      for (const auto& w : workers_) {
        if (!w->busy() && can_take(*w)) {
          target = w.get();
          break;
        }
      }
      const bool may_spawn = static_cast<int>(workers_.size()) < options_.max_workers;
      if (target == nullptr && !may_spawn) {
        for (const auto& w : workers_) {
          if (can_take(*w) && (target == nullptr || w->jobs.size() < target->jobs.size())) {
            target = w.get();
          }
        }
      }
      std::unique_ptr<ProcessJob> job;
      {
        const std::lock_guard lock(mutex_);
        if (pending_.empty()) return;
        if (target == nullptr && !may_spawn) return;
        job = std::move(pending_.front());
        pending_.pop_front();
      }
      if (job->state->done()) continue;  // cancelled while queued
      if (target == nullptr) {
        try {
          target = spawn();
        } catch (...) {
          fail(*job, std::make_exception_ptr(BrokenProcessPool(
                         "could not start a worker process for job '" + job->name +
                         "': " + webexec::detail::what(std::current_exception()))));
          continue;
        }
      }
      send(target, std::move(job));
    }
  }

  void handle_message(Worker* w, const nlohmann::json& message) {
    if (!w->busy() || message.value("id", std::uint64_t{0}) != w->jobs.front()->id) {
      bury(w, true, "sent a message for no job it was running, so it was killed");
      return;
    }
    if (message.contains("started")) {
      // The worker won the start slot: from now on the job runs.
      // Running first, then no slot: cancel() must never see a job with
      // neither (it would cancel a started job).
      ProcessJob& job = *w->jobs.front();
      static_cast<void>(job.state->set_running_or_notify_cancel());
      job.detach_slot(*job.state);
      w->front_started = true;
      w->deadline = job.timeout ? Clock::now() + *job.timeout : Clock::time_point::max();
      return;
    }
    if (message.contains("skipped")) {
      // Cancelled while it waited in the worker's socket; the canceller
      // completed its future.
      std::unique_ptr<ProcessJob> job = std::move(w->jobs.front());
      w->jobs.pop_front();
      job->detach_slot(*job->state);
      return;
    }
    if (message.contains("progress")) {
      if (w->jobs.front()->progress) {
        w->jobs.front()->progress->set(progress_from_json(message["progress"]));
      }
      return;
    }
    std::unique_ptr<ProcessJob> job = std::move(w->jobs.front());
    w->jobs.pop_front();
    w->front_started = false;
    w->deadline = Clock::time_point::max();
    if (message.value("ok", false)) {
      job->complete(*job->state, message.value("result", nlohmann::json()));
    } else {
      const nlohmann::json error = message.value("error", nlohmann::json::object());
      fail(*job,
           std::make_exception_ptr(RemoteTaskError(error.value("type", std::string("unknown")),
                                                   error.value("message", std::string()))));
    }
    if (options_.max_tasks_per_child > 0 && w->sent >= options_.max_tasks_per_child && !w->busy()) {
      remove(w, false);  // recycled; a fresh worker starts on demand
    }
  }

  void handle_readable(Worker* w) {
    const auto status = w->buffer.fill(w->fd);
    for (;;) {
      bool garbage = false;
      auto message = w->buffer.next(garbage);
      if (garbage) {
        bury(w, true, "sent a malformed message, so it was killed");
        return;
      }
      if (!message) break;
      const pid_t pid = w->pid;
      handle_message(w, *message);
      // handle_message may have removed the worker.
      if (std::none_of(workers_.begin(), workers_.end(),
                       [pid](const auto& p) { return p->pid == pid; })) {
        return;
      }
    }
    if (status == wire::FrameBuffer::Status::eof) bury(w, false, "died");
  }

  void run() {
    for (;;) {
      std::deque<std::unique_ptr<ProcessJob>> cancelled;
      bool stopping = false;
      bool cancel_queued = false;
      std::uint64_t cancel_ticket = 0;
      {
        const std::lock_guard lock(mutex_);
        if (cancel_pending_) cancelled.swap(pending_);
        cancel_queued = cancel_pending_;
        cancel_ticket = cancel_requests_;
        stopping = shutdown_;
      }
      if (cancel_queued) {
        // Jobs waiting in a worker's socket are still pending too: cancel
        // them through their start slots; the workers will skip them.
        // Last to first: a worker that skips a cancelled job must not find
        // the next one still pending.
        for (const auto& w : workers_) {
          const std::size_t first = w->front_started ? 1 : 0;
          for (std::size_t i = w->jobs.size(); i > first; --i) {
            static_cast<void>(w->jobs[i - 1]->state->cancel());
          }
        }
      }
      for (auto& job : cancelled) {
        // Queued jobs are pending; should one not be cancellable, fail it
        // rather than drop it.
        if (!job->state->cancel()) {
          fail(*job, std::make_exception_ptr(CancelledError(
                         "job '" + job->name +
                         "' was cancelled by shutdown(cancel_futures=true) before it started")));
        }
      }
      cancelled.clear();
      if (cancel_queued) {
        {
          const std::lock_guard lock(mutex_);
          cancels_done_ = cancel_ticket;
        }
        cancelled_cv_.notify_all();
      }

      dispatch();

      bool busy = false;
      Clock::time_point next_deadline = Clock::time_point::max();
      for (const auto& w : workers_) {
        busy = busy || w->busy();
        next_deadline = std::min(next_deadline, w->deadline);
      }
      if (stopping && !busy) {
        const std::lock_guard lock(mutex_);
        if (pending_.empty()) break;
      }

      std::vector<pollfd> fds;
      fds.push_back({wake_fd_, POLLIN, 0});
      for (const auto& w : workers_) fds.push_back({w->fd, POLLIN, 0});
      int timeout_ms = -1;
      if (next_deadline != Clock::time_point::max()) {
        const auto left = next_deadline - Clock::now();
        timeout_ms = static_cast<int>(
            std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(left).count()));
      }
      const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
      if (ready < 0 && errno != EINTR) break;

      if ((fds[0].revents & POLLIN) != 0) {
        std::uint64_t drained = 0;
        while (::read(wake_fd_, &drained, sizeof drained) > 0) {
        }
      }
      // Handle events by pid: handlers may remove workers from the list.
      std::vector<pid_t> readable;
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents != 0) readable.push_back(workers_[i - 1]->pid);
      }
      for (const pid_t pid : readable) {
        if (Worker* w = find(pid)) {
          try {
            handle_readable(w);
          } catch (...) {
            if (Worker* still = find(pid))
              bury(still, true, "could not be handled, so it was killed");
          }
        }
      }
      const auto now = Clock::now();
      std::vector<pid_t> late;
      for (const auto& w : workers_) {
        if (w->busy() && w->deadline <= now) late.push_back(w->pid);
      }
      for (const pid_t pid : late) {
        Worker* w = find(pid);
        if (w == nullptr) continue;
        const auto limit = w->jobs.front()->timeout.value_or(Clock::duration::zero());
        const std::string name = w->jobs.front()->name;
        bury(w, true, "timed out",
             std::make_exception_ptr(TimeoutError(
                 "job '" + name + "' exceeded its time limit of " + seconds(limit) +
                 " s; its worker process " + std::to_string(pid) + " was killed and replaced")));
      }
    }
    while (!workers_.empty()) bury(workers_.back().get(), workers_.back()->busy(), "stopped");
    {
      const std::lock_guard lock(mutex_);
      dispatcher_done_ = true;
    }
    cancelled_cv_.notify_all();
  }

  Worker* find(pid_t pid) {
    for (const auto& w : workers_) {
      if (w->pid == pid) return w.get();
    }
    return nullptr;
  }

  const ProcessPoolOptions options_;
  int wake_fd_ = -1;
  mutable std::mutex mutex_;
  std::deque<std::unique_ptr<ProcessJob>> pending_;  // guarded by mutex_
  bool shutdown_ = false;                            // guarded by mutex_
  bool cancel_pending_ = false;                      // guarded by mutex_
  std::uint64_t cancel_requests_ = 0;                // guarded by mutex_
  std::uint64_t cancels_done_ = 0;                   // guarded by mutex_
  bool dispatcher_done_ = false;                     // guarded by mutex_
  std::condition_variable cancelled_cv_;
  std::vector<pid_t> pids_;                       // guarded by mutex_
  std::vector<std::unique_ptr<Worker>> workers_;  // dispatcher thread only
  std::uint64_t next_id_ = 1;                     // dispatcher thread only
  std::mutex join_mutex_;                         // held while joining the dispatcher
  bool delete_when_done_ = false;                 // dispatcher thread only
  std::thread dispatcher_;
  std::thread::id dispatcher_id_;  // set once in the constructor
};

ProcessPool::ProcessPool(ProcessPoolOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
ProcessPool::~ProcessPool() {
  // Destroyed from one of its own done callbacks, the dispatcher runs this
  // very code and cannot be joined: it finishes and deletes the pool.
  if (impl_ && impl_->on_dispatcher_thread()) impl_.release()->shutdown_and_delete_when_done();
}
void ProcessPool::submit(std::unique_ptr<ProcessJob> job) { impl_->submit(std::move(job)); }
void ProcessPool::shutdown(bool wait, bool cancel_futures) {
  impl_->shutdown(wait, cancel_futures);
}
int ProcessPool::max_workers() const noexcept { return impl_->max_workers(); }
bool ProcessPool::is_shutdown() const { return impl_->is_shutdown(); }
std::vector<pid_t> ProcessPool::worker_pids() const { return impl_->worker_pids(); }

}  // namespace webexec::detail
