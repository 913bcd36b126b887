// The host side of EXECUTOR_TYPE=process: submit() and shutdown() run on
// any thread; everything else runs on the pool's dispatcher thread (see
// detail/process_pool.hpp and docs/design.md, "Worker processes").
#include "webexec/detail/process_pool.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <deque>
#include <limits>
#include <system_error>
#include <thread>

#include "webexec/detail/demangle.hpp"
#include "webexec/detail/executor_settings.hpp"
#include "webexec/detail/mutex.hpp"
#include "webexec/errors.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/wire.hpp"

namespace webexec::detail {

namespace wire = webexec::process::detail;
using Clock = std::chrono::steady_clock;

namespace {

/// Jobs sent ahead to a worker, so it never waits for the dispatcher
/// between two jobs (round-trip latency hidden; throughput up ~2x). Entries
/// of revoked jobs count until the worker acknowledges them.
constexpr std::size_t kPipelineDepth = 4;

/// A worker whose next job (or revoked entry) has waited this long without
/// the worker saying "started" or "skipped", and without taking any bytes
/// of a frame still being written to it, is unresponsive (stopped with
/// SIGSTOP, or stuck outside a job): its jobs are taken back and it is
/// killed and replaced. The bound is fixed, whatever a job's time limit (a
/// fresh worker under load may take longer than a short limit to pick its
/// first job up); time the dispatcher itself spent busy (in done
/// callbacks) does not count. A healthy idle worker answers within
/// microseconds.
constexpr Clock::duration kUnresponsiveAfter = std::chrono::seconds(2);

/// After a worker could not be started, no other start is tried for this
/// long while live workers remain (jobs wait for them instead of failing).
constexpr Clock::duration kSpawnBackoff = std::chrono::seconds(1);

/// One job frame sent to a worker, until the worker acknowledges it.
struct Sent {
  /// The job; null once revoked (taken back to run elsewhere: the worker
  /// will answer `skipped`).
  std::unique_ptr<ProcessJob> job;
  std::uint64_t id = 0;    ///< the frame's job id
  std::uint16_t slot = 0;  ///< its start slot, reserved until acknowledged
  bool revoking = false;   ///< slot moved to revoked; the job is not yet taken
};

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  int pidfd = -1;              // readable once the process exited; -1 if none
  StartSlot* slots = nullptr;  // shared with the worker process
  std::size_t next_slot = 0;
  wire::FrameReader reader;
  wire::OutBuffer out;  // frames not yet taken by the socket
  // Job frames sent, oldest first, each answered in order: the front one
  // runs once the worker says it started; the rest wait in the socket,
  // still pending (cancellable, revocable), and are requeued if the worker
  // dies.
  std::deque<Sent> jobs;
  // True once the worker said the front job started (or its start slot
  // said so: see handle_unresponsive()).
  bool front_started = false;
  // The front job was taken as started from its slot; its `started` frame
  // is still to come and is accepted once.
  bool started_frame_owed = false;
  // Deadline of the front job, counted from when the worker started it.
  Clock::time_point deadline = Clock::time_point::max();
  // Since when the front entry waits for its answer: the later of the
  // moment it became the front and the worker's last sign of life (a
  // frame, or bytes taken from a backlog).
  Clock::time_point waiting_since{};
  int sent = 0;              // for max_tasks_per_child (revoked jobs do not count)
  bool unreachable = false;  // a send failed: it is being killed

  explicit Worker(std::size_t max_payload) : reader(max_payload) {}

  [[nodiscard]] bool busy() const noexcept { return !jobs.empty(); }
};

std::atomic<std::uint64_t> revoked_total{0};

/// A job whose workers die before starting it this many times fails
/// instead of being requeued forever.
constexpr int kMaxLosses = 3;

/// Bytes read from one worker per turn of the loop, so one busy worker
/// cannot keep the dispatcher from the others and from deadlines.
constexpr std::size_t kReadBudget = 4U << 20U;

/// `now + limit`, saturated at time_point::max().
Clock::time_point deadline_after(Clock::time_point now, Clock::duration limit) {
  if (limit > Clock::time_point::max() - now) return Clock::time_point::max();
  return now + limit;
}

/// Milliseconds until `deadline` for poll(): rounded up, in [0, INT_MAX].
int poll_timeout(Clock::time_point deadline, Clock::time_point now) {
  if (deadline == Clock::time_point::max()) return -1;
  if (deadline <= now) return 0;
  const auto left = deadline - now;  // positive, no overflow: both are real time points
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms >= INT_MAX ? INT_MAX : static_cast<int>(ms);
}

/// EXECUTOR_PROPAGATE_EXCEPTIONS: hands the exception a job threw in its
/// worker to the app's error handler, as the thread path does
/// (ExecutorAttachment::invoke), with the same executor name and label.
void report_job_error(ProcessJob& job, const std::exception_ptr& error) noexcept {
  const TaskContext* ctx = job.state != nullptr ? job.state->task_context() : nullptr;
  if (ctx == nullptr || ctx->block() == nullptr) return;
  const ExecutorSettings* settings = ctx->block()->executor;
  if (settings != nullptr && settings->propagate_exceptions) {
    report_task_error(*settings, ctx->label(), error);
  }
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
      const MutexLock lock(mutex_);
      threads.swap(threads_);
    }
    for (auto& thread : threads) thread.join();
  }
  void adopt(std::thread thread) {
    const MutexLock lock(mutex_);
    threads_.push_back(std::move(thread));
  }

 private:
  Mutex mutex_;
  std::vector<std::thread> threads_ WEBEXEC_GUARDED_BY(mutex_);
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
    job->counters = &counters_;  // counts its outcome when the job is dropped
    {
      const MutexLock lock(mutex_);
      if (shutdown_) throw ShutdownError("cannot schedule new futures after shutdown");
    }
    // Encode here, in the caller's thread: a failure fails this future
    // only, and the dispatcher never serialises.
    try {
      job->request["limit"] = options_.max_payload;
      job->body = std::make_shared<const std::string>(wire::encode_body(job->request));
    } catch (...) {
      RemoteCounters::bump(counters_.submitted);
      fail(*job, std::make_exception_ptr(std::invalid_argument(
                     "job '" + job->name + "' cannot be encoded for a worker process: " +
                     webexec::detail::what(std::current_exception()))));
      return;
    }
    job->request = nlohmann::json();
    if (job->body->size() > options_.max_payload) {
      RemoteCounters::bump(counters_.submitted);
      fail(*job, std::make_exception_ptr(PayloadTooLargeError(
                     "job '" + job->name + "' is " + std::to_string(job->body->size()) +
                     " bytes encoded (arguments and context), over EXECUTOR_MAX_PAYLOAD = " +
                     std::to_string(options_.max_payload) + " bytes; nothing ran")));
      return;
    }
    {
      const MutexLock lock(mutex_);
      if (shutdown_) throw ShutdownError("cannot schedule new futures after shutdown");
      pending_.push_back(std::move(job));
      RemoteCounters::bump(counters_.submitted);
    }
    wake();
  }

  void shutdown(bool wait, bool cancel_futures) {
    std::uint64_t ticket = 0;
    {
      const MutexLock lock(mutex_);
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
      UniqueLock lock(mutex_);
      while (cancels_done_ < ticket && !dispatcher_done_) cancelled_cv_.wait(lock.native());
    }
    if (wait) {
      if (on_dispatcher_thread()) {
        throw InvalidStateError(
            "shutdown(wait=true) called from a done callback of the same process pool would wait "
            "for itself; use shutdown(wait=false)");
      }
      // One thread joins; the others wait here until it has.
      const MutexLock join_lock(join_mutex_);
      if (dispatcher_.joinable()) dispatcher_.join();
    }
  }

  [[nodiscard]] int max_workers() const noexcept { return options_.max_workers; }
  [[nodiscard]] bool is_shutdown() const {
    const MutexLock lock(mutex_);
    return shutdown_;
  }

  [[nodiscard]] std::vector<pid_t> worker_pids() const {
    const MutexLock lock(mutex_);
    return pids_;
  }

  [[nodiscard]] EngineStats stats() const noexcept { return counters_.snapshot(); }

 private:
  void wake() const {
    const std::uint64_t one = 1;
    while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

  void publish_pids() {
    std::vector<pid_t> pids;
    for (const auto& w : workers_) pids.push_back(w->pid);
    const MutexLock lock(mutex_);
    pids_ = std::move(pids);
  }

  Worker* spawn() {
    const auto spawned = webexec::process::detail::spawn_worker();
    auto worker = std::make_unique<Worker>(options_.max_payload);
    worker->pid = spawned.pid;
    worker->fd = spawned.fd;
    worker->pidfd = spawned.pidfd;
    worker->slots = spawned.slots;
    // The dispatcher never blocks on a socket.
    const int flags = ::fcntl(worker->fd, F_GETFL);
    if (flags < 0 || ::fcntl(worker->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
      const int error = errno;
      webexec::process::detail::kill_worker(worker->pid);
      ::close(worker->fd);
      if (worker->pidfd >= 0) ::close(worker->pidfd);
      webexec::process::detail::unmap_slots(worker->slots);
      try {
        static_cast<void>(webexec::process::detail::reap_worker(worker->pid));
      } catch (...) {  // NOLINT(bugprone-empty-catch): the fork server is gone; so is the worker
      }
      throw std::system_error(error, std::generic_category(), "fcntl(O_NONBLOCK)");
    }
    workers_.push_back(std::move(worker));
    publish_pids();
    return workers_.back().get();
  }

  /// Closes, kills if asked, reaps and forgets `w`; returns its wait status.
  int remove(Worker* w, bool kill) {
    if (kill) webexec::process::detail::kill_worker(w->pid);  // and what its jobs started
    ::close(w->fd);
    if (w->pidfd >= 0) ::close(w->pidfd);
    for (auto& sent : w->jobs) {  // before the slots go
      if (sent.job != nullptr) sent.job->detach_slot(*sent.job->state);
    }
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
    // Revoked entries hold no job (it is back in the queue already).
    const bool front_is_job = !w->jobs.empty() && w->jobs.front().job != nullptr;
    // A job whose slot reads started was claimed by the worker, whatever
    // frames are still unread: it never runs again (it may have had
    // effects). Read before remove() unmaps the slots.
    const bool started =
        w->front_started || (front_is_job && w->slots[w->jobs.front().slot].load(
                                                 std::memory_order_acquire) == kSlotStarted);
    std::deque<std::unique_ptr<ProcessJob>> jobs;
    std::vector<std::unique_ptr<ProcessJob>> claimed;  // started, but not in front
    for (std::size_t i = 0; i < w->jobs.size(); ++i) {
      Sent& sent = w->jobs[i];
      if (sent.job == nullptr) continue;
      const bool behind_and_claimed =
          i > 0 && w->slots[sent.slot].load(std::memory_order_acquire) == kSlotStarted;
      sent.job->detach_slot(*sent.job->state);
      if (behind_and_claimed) {
        claimed.push_back(std::move(sent.job));
      } else {
        jobs.push_back(std::move(sent.job));
      }
    }
    w->jobs.clear();
    const pid_t pid = w->pid;
    const int status = remove(w, kill);
    if (!stopping_workers_) RemoteCounters::bump(counters_.restarts);
    for (auto& job : claimed) {
      fail(*job, std::make_exception_ptr(BrokenProcessPool(
                     "worker process " + std::to_string(pid) + " " + what_happened + " (" +
                     webexec::process::detail::describe_wait_status(status) +
                     ") while running job '" + job->name + "'; the pool replaced it")));
    }
    if (jobs.empty()) return;
    std::unique_ptr<ProcessJob> running;
    // A job the worker never started (it died idle, e.g. killed from
    // outside) is not its victim: it goes back to the queue like the rest,
    // unless workers keep dying with it in front (it may be what kills
    // them before they can say it started).
    if (front_is_job && (started || override_error)) {
      running = std::move(jobs.front());
      jobs.pop_front();
    } else if (front_is_job && ++jobs.front()->losses >= kMaxLosses) {
      std::unique_ptr<ProcessJob> lost = std::move(jobs.front());
      jobs.pop_front();
      RemoteCounters::bump(counters_.dead_lettered);
      fail(*lost, std::make_exception_ptr(BrokenProcessPool(
                      "job '" + lost->name + "' was next in " + std::to_string(kMaxLosses) +
                      " worker processes that each died before starting it (the last, " +
                      std::to_string(pid) + ", " + what_happened + ": " +
                      webexec::process::detail::describe_wait_status(status) +
                      "); it was not retried again")));
    }
    RemoteCounters::bump(counters_.redeliveries, jobs.size());
    requeue_front(jobs);
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
    const auto slot16 = static_cast<std::uint16_t>(slot);
    w->out.push(wire::frame_header(wire::Kind::job, job->id, slot16, job->body->size()), job->body);
    if (w->jobs.empty()) w->waiting_since = Clock::now();  // it waits for the answer from now
    const std::uint64_t id = job->id;
    w->jobs.push_back(Sent{std::move(job), id, slot16, false});
    ++w->sent;
    if (w->out.flush(w->fd) == wire::OutBuffer::Status::error) {
      // The worker is dying or dead. Do not bury it here: what it wrote
      // before (results, "started") is still unread. Make sure it dies,
      // send it nothing more, and let the poll loop read to EOF; the job
      // just queued was never started, so it will run elsewhere.
      mark_unreachable(w);
    }
  }

  void mark_unreachable(Worker* w) {
    w->unreachable = true;
    w->out.clear();
    webexec::process::detail::kill_worker(w->pid);  // and what its jobs started
  }

  [[nodiscard]] bool can_take(const Worker& w) const {
    if (w.unreachable || w.jobs.size() >= kPipelineDepth) return false;
    return options_.max_tasks_per_child <= 0 || w.sent < options_.max_tasks_per_child;
  }

  /// Puts jobs that never started back at the head of the queue, in order.
  void requeue_front(std::deque<std::unique_ptr<ProcessJob>>& jobs) {
    if (jobs.empty()) return;
    const MutexLock lock(mutex_);
    for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) pending_.push_front(std::move(*it));
    jobs.clear();
  }

  /// Puts one job that never started back at the head of the queue.
  void requeue_front(std::unique_ptr<ProcessJob> job) {
    const MutexLock lock(mutex_);
    pending_.push_front(std::move(job));
  }

  /// Moves the start slots of the jobs `w` has not started, at positions
  /// `from` and later, to `revoked`, last first (the worker takes them in
  /// order, so it cannot get past this sweep). A slot the worker claimed or
  /// cancel() took first is left as it is. The jobs stay in their entries
  /// until take_revoked() or bury().
  static void revoke_slots(Worker& w, std::size_t from) {
    for (std::size_t i = w.jobs.size(); i > from; --i) {
      Sent& sent = w.jobs[i - 1];
      if (sent.job == nullptr || sent.revoking || (i == 1 && w.front_started)) continue;
      std::uint32_t expected = kSlotPending;
      sent.revoking = w.slots[sent.slot].compare_exchange_strong(expected, kSlotRevoked,
                                                                 std::memory_order_acq_rel);
    }
  }

  /// Takes the jobs whose slots revoke_slots() revoked out of `w`, oldest
  /// first. Their entries stay, empty, until the worker answers `skipped`,
  /// so the slot is not reused before and they count against the depth.
  static std::deque<std::unique_ptr<ProcessJob>> take_revoked(Worker& w) {
    std::deque<std::unique_ptr<ProcessJob>> out;
    for (Sent& sent : w.jobs) {
      if (!sent.revoking || sent.job == nullptr) continue;
      sent.job->detach_slot(*sent.job->state);
      out.push_back(std::move(sent.job));
      --w.sent;  // it did not run here
    }
    revoked_total.fetch_add(out.size(), std::memory_order_relaxed);
    return out;
  }

  /// No job may wait behind another in a worker while a worker is idle or
  /// may be started: takes back every job queued behind another one and
  /// puts them at the head of the queue, oldest first, for dispatch() to
  /// send again (to the idle or new workers first). True if it took any.
  bool rebalance() {
    // Jobs (not empty revoked entries) queued behind another one.
    const auto has_queued = [](const auto& w) {
      return !w->unreachable && w->jobs.size() >= 2 &&
             std::any_of(w->jobs.begin() + 1, w->jobs.end(),
                         [](const Sent& s) { return s.job != nullptr && !s.revoking; });
    };
    if (std::none_of(workers_.begin(), workers_.end(), has_queued)) return false;
    // Revoke only for a worker that exists: revoked entries count against
    // the depth until acknowledged, which a worker running a long job
    // cannot do, so revoking for a worker that then fails to start would
    // only take room away.
    const bool idle = std::any_of(workers_.begin(), workers_.end(),
                                  [this](const auto& w) { return !w->busy() && can_take(*w); });
    if (!idle) {
      if (!may_spawn()) return false;
      try {
        static_cast<void>(spawn_or_back_off());
      } catch (...) {
        return false;  // may_spawn() backs off; the jobs stay where they are
      }
    }
    std::deque<std::unique_ptr<ProcessJob>> taken;
    for (const auto& w : workers_) {
      if (w->jobs.size() < 2 || w->unreachable) continue;
      revoke_slots(*w, 1);
      for (auto& job : take_revoked(*w)) taken.push_back(std::move(job));
    }
    if (taken.empty()) return false;
    std::sort(taken.begin(), taken.end(),
              [](const auto& a, const auto& b) { return a->id < b->id; });
    requeue_front(taken);
    return true;
  }

  /// When `w` is unresponsive if its front entry is still unanswered.
  [[nodiscard]] static Clock::time_point answer_deadline(const Worker& w) {
    if (w.jobs.empty() || w.front_started) return Clock::time_point::max();
    return deadline_after(w.waiting_since, kUnresponsiveAfter);
  }

  /// Whether a worker may be started now: below max_workers, and not just
  /// after a failed start while live workers can take the jobs.
  [[nodiscard]] bool may_spawn() const {
    if (static_cast<int>(workers_.size()) >= options_.max_workers) return false;
    return workers_.empty() || Clock::now() >= spawn_backoff_until_;
  }

  /// Starts a worker; after a failure, may_spawn() backs off for a while.
  Worker* spawn_or_back_off() {
    try {
      return spawn();
    } catch (...) {
      spawn_backoff_until_ = Clock::now() + kSpawnBackoff;
      throw;
    }
  }

  /// The front job of `w` is started (its slot says so) but its `started`
  /// frame was not read: does what that frame does, and expects it once.
  void adopt_started_front(Worker* w) {
    ProcessJob& job = *w->jobs.front().job;
    static_cast<void>(job.state->set_running_or_notify_cancel());
    job.detach_slot(*job.state);
    w->front_started = true;
    w->started_frame_owed = true;
    w->deadline =
        job.timeout ? deadline_after(Clock::now(), *job.timeout) : Clock::time_point::max();
  }

  /// `w` left its front entry unanswered past kUnresponsiveAfter: takes back
  /// what it has not started (so it cannot start it while being killed),
  /// then kills and replaces it, unless it claimed its front job meanwhile.
  void handle_unresponsive(Worker* w) {
    revoke_slots(*w, 0);
    const Sent& front = w->jobs.front();
    if (front.job != nullptr && !front.revoking &&
        w->slots[front.slot].load(std::memory_order_acquire) == kSlotStarted) {
      // It claimed the front job: the slot is authoritative, whether or not
      // its "started" ever comes (it may be stopped right after the claim):
      // the job runs, under its time limit. The jobs behind go elsewhere.
      adopt_started_front(w);
      auto taken = take_revoked(*w);
      requeue_front(taken);
      return;
    }
    const bool claimed_later = std::any_of(w->jobs.begin() + 1, w->jobs.end(), [w](const Sent& s) {
      return s.job != nullptr && !s.revoking &&
             w->slots[s.slot].load(std::memory_order_acquire) == kSlotStarted;
    });
    if (claimed_later) {
      // It got past the front entry (its `skipped` is on the way) and runs
      // a later job: alive. The jobs not claimed go elsewhere.
      auto taken = take_revoked(*w);
      requeue_front(taken);
      w->waiting_since = Clock::now();
      return;
    }
    // The jobs go back to the queue (the front one counts a loss).
    bury(w, true,
         "did not answer for " + seconds(kUnresponsiveAfter) +
             " s (stopped or stuck), so it was killed");
  }

  /// A worker that ran its `max_tasks_per_child` jobs leaves once idle.
  void retire_if_spent(Worker* w) {
    if (options_.max_tasks_per_child > 0 && w->sent >= options_.max_tasks_per_child && !w->busy()) {
      remove(w, true);  // recycled (it holds no job: killed, in case it is stopped)
    }
  }

  void dispatch() {
    bool rebalanced = false;
    for (;;) {
      // Prefer an idle worker, then start one, then pipeline.
      Worker* target = nullptr;
      for (const auto& w : workers_) {
        if (!w->busy() && can_take(*w)) {
          target = w.get();
          break;
        }
      }
      const bool can_spawn = may_spawn();
      if (target == nullptr && !can_spawn) {
        for (const auto& w : workers_) {
          if (can_take(*w) && (target == nullptr || w->jobs.size() < target->jobs.size())) {
            target = w.get();
          }
        }
      }
      std::unique_ptr<ProcessJob> job;
      {
        const MutexLock lock(mutex_);
        if (!pending_.empty()) {
          if (target == nullptr && !can_spawn) return;
          job = std::move(pending_.front());
          pending_.pop_front();
        }
      }
      if (!job) {
        // Queue empty: make sure nothing waits behind a running job while
        // a worker is free (once per call: what it requeues goes to free
        // workers first, so a second pass would find nothing to move).
        if (rebalanced || !rebalance()) return;
        rebalanced = true;
        continue;
      }
      if (job->state->done()) continue;  // cancelled while queued
      if (target == nullptr) {
        try {
          target = spawn_or_back_off();
        } catch (...) {
          // A live worker with room takes it rather than failing it (it may
          // have been taken back from one to go to the new worker).
          for (const auto& w : workers_) {
            if (can_take(*w) && (target == nullptr || w->jobs.size() < target->jobs.size())) {
              target = w.get();
            }
          }
          if (target == nullptr && !workers_.empty()) {
            // Live workers will have room again: it waits for them.
            requeue_front(std::move(job));
            return;
          }
          if (target == nullptr) {
            fail(*job, std::make_exception_ptr(BrokenProcessPool(
                           "could not start a worker process for job '" + job->name +
                           "': " + webexec::detail::what(std::current_exception()))));
            continue;
          }
        }
      }
      send(target, std::move(job));
    }
  }

  /// Acts on one frame from `w`. May remove `w`.
  void handle_frame(Worker* w, const wire::Frame& frame) {
    wire::WorkerMessage message;
    try {
      message = wire::decode_worker_message(frame);
    } catch (...) {
      bury(w, true,
           "sent a malformed message (" + webexec::detail::what(std::current_exception()) +
               "), so it was killed");
      return;
    }
    if (!w->busy() || message.id != w->jobs.front().id) {
      bury(w, true, "sent a message for no job it was running, so it was killed");
      return;
    }
    w->waiting_since = Clock::now();  // a sign of life
    Sent& front = w->jobs.front();
    switch (message.kind) {
      case wire::Kind::started: {
        if (w->started_frame_owed && front.job != nullptr) {
          w->started_frame_owed = false;  // taken as started from its slot already
          return;
        }
        if (front.job == nullptr || w->front_started) {
          bury(w, true, "started a job it had to skip or had started, so it was killed");
          return;
        }
        // The worker won the start slot: from now on the job runs.
        // Running first, then no slot: cancel() must never see a job with
        // neither (it would cancel a started job).
        ProcessJob& job = *front.job;
        static_cast<void>(job.state->set_running_or_notify_cancel());
        job.detach_slot(*job.state);
        w->front_started = true;
        w->deadline =
            job.timeout ? deadline_after(Clock::now(), *job.timeout) : Clock::time_point::max();
        return;
      }
      case wire::Kind::skipped: {
        if (w->front_started ||
            (front.job != nullptr &&
             w->slots[front.slot].load(std::memory_order_acquire) == kSlotStarted)) {
          // It claimed the slot: the job may have run; bury() fails it.
          bury(w, true, "skipped a job it had started, so it was killed");
          return;
        }
        // Revoked (the job is back in the queue: an empty entry), or
        // cancelled while it waited in the worker's socket (the canceller
        // completed its future). Either way the slot is free again.
        std::unique_ptr<ProcessJob> job = std::move(front.job);
        w->jobs.pop_front();
        if (job) {
          job->detach_slot(*job->state);  // after this a cancelled job's state says so
          if (!job->state->done()) {
            // Skipped although nobody cancelled it: it never ran, so it
            // runs elsewhere rather than being lost.
            requeue_front(std::move(job));
          }
        }
        retire_if_spent(w);
        return;
      }
      case wire::Kind::progress:
        if (w->front_started && front.job->progress) front.job->progress->set(message.progress);
        return;
      case wire::Kind::result:
      case wire::Kind::error:
      case wire::Kind::job:
        break;
    }
    if (!w->front_started) {
      bury(w, true, "sent a result for a job it had not started, so it was killed");
      return;
    }
    std::unique_ptr<ProcessJob> job = std::move(front.job);
    w->jobs.pop_front();
    w->front_started = false;
    w->started_frame_owed = false;
    w->deadline = Clock::time_point::max();
    if (message.kind == wire::Kind::result) {
      job->complete(*job->state, message.result);
    } else {
      auto error = std::make_exception_ptr(
          RemoteTaskError(std::move(message.error_type), std::move(message.error_message)));
      report_job_error(*job, error);
      fail(*job, std::move(error));
    }
    retire_if_spent(w);
  }

  [[nodiscard]] bool alive(pid_t pid) const {
    return std::any_of(workers_.begin(), workers_.end(),
                       [pid](const auto& p) { return p->pid == pid; });
  }

  void handle_readable(Worker* w) {
    const pid_t pid = w->pid;
    const auto status = w->reader.fill(w->fd, kReadBudget);
    while (auto frame = w->reader.next()) {
      handle_frame(w, *frame);
      if (!alive(pid)) return;  // handle_frame removed it
    }
    if (!w->reader.error().empty()) {
      if (w->reader.oversized() != 0 && w->front_started) {
        const std::string name = w->jobs.front().job->name;
        // A well-behaved worker reports an oversized result itself (as a
        // PayloadTooLargeError from the job): this one broke the protocol.
        bury(w, true, "sent an oversized frame",
             std::make_exception_ptr(BrokenProcessPool(
                 "worker process " + std::to_string(pid) + " sent a frame of " +
                 std::to_string(w->reader.oversized()) + " bytes for job '" + name +
                 "', over EXECUTOR_MAX_PAYLOAD = " + std::to_string(options_.max_payload) +
                 " bytes; the worker was killed and replaced")));
      } else {
        bury(w, true, "sent a malformed message (" + w->reader.error() + "), so it was killed");
      }
      return;
    }
    if (status == wire::FrameReader::Status::eof) bury(w, false, "died");
  }

  /// The worker process exited (its pidfd says so), but its socket need
  /// not reach EOF: a process its job forked may hold it open. Read what
  /// the worker wrote before it died (a result, "started"), then bury it.
  void handle_exited(Worker* w) {
    const pid_t pid = w->pid;
    handle_readable(w);  // may bury it already (EOF, a bad frame)
    if (Worker* still = find(pid)) bury(still, false, "died");
  }

  void handle_writable(Worker* w) {
    const std::size_t backlog = w->out.size();
    if (w->out.flush(w->fd) == wire::OutBuffer::Status::error) {
      mark_unreachable(w);
    } else if (w->out.size() < backlog) {
      w->waiting_since = Clock::now();  // it reads: a frame in progress is no stall
    }
  }

  void run() {
    for (;;) {
      // Nothing here may end the process: an exception that escaped the
      // handlers below is reported, and the loop goes on.
      try {
        if (!turn()) break;
      } catch (...) {
        report_error("the process pool's dispatcher", std::current_exception());
      }
    }
    stopping_workers_ = true;  // what bury() does now is no restart
    while (!workers_.empty()) {
      try {
        // Idle ones hold no job: killed too, so a stopped one cannot hang
        // the reap (SIGKILL ends a stopped process).
        bury(workers_.back().get(), true, "stopped");
      } catch (...) {
        report_error("the process pool's dispatcher", std::current_exception());
      }
    }
    {
      const MutexLock lock(mutex_);
      dispatcher_done_ = true;
    }
    cancelled_cv_.notify_all();
  }

  /// One turn of the dispatcher's loop; false once it should stop.
  bool turn() {
    {
      std::deque<std::unique_ptr<ProcessJob>> cancelled;
      bool stopping = false;
      bool cancel_queued = false;
      std::uint64_t cancel_ticket = 0;
      {
        const MutexLock lock(mutex_);
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
            const auto& job = w->jobs[i - 1].job;
            if (job != nullptr) static_cast<void>(job->state->cancel());  // null: revoked, requeued
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
          const MutexLock lock(mutex_);
          cancels_done_ = cancel_ticket;
        }
        cancelled_cv_.notify_all();
      }

      dispatch();

      bool busy = false;
      std::uint64_t running = 0;
      Clock::time_point next_deadline = Clock::time_point::max();
      for (const auto& w : workers_) {
        if (w->busy() && w->front_started) ++running;
        busy = busy || w->busy();
        next_deadline = std::min({next_deadline, w->deadline, answer_deadline(*w)});
      }
      if (!workers_.empty() && spawn_backoff_until_ > Clock::now()) {
        const MutexLock lock(mutex_);
        if (!pending_.empty()) next_deadline = std::min(next_deadline, spawn_backoff_until_);
      }
      counters_.running.store(running, std::memory_order_relaxed);
      if (stopping && !busy) {
        const MutexLock lock(mutex_);
        if (pending_.empty()) return false;
      }

      // Always POLLIN: a worker blocked writing to us must get unblocked.
      // Each worker's socket is followed by its pidfd, if it has one.
      std::vector<pollfd> fds;
      std::vector<std::pair<pid_t, bool>> owners;  // fds[i + 1]: whose, and is it a pidfd
      fds.push_back({wake_fd_, POLLIN, 0});
      for (const auto& w : workers_) {
        const short events = w->out.empty() ? POLLIN : static_cast<short>(POLLIN | POLLOUT);
        fds.push_back({w->fd, events, 0});
        owners.emplace_back(w->pid, false);
        if (w->pidfd >= 0) {
          fds.push_back({w->pidfd, POLLIN, 0});
          owners.emplace_back(w->pid, true);
        }
      }
      const int ready = ::poll(fds.data(), fds.size(), poll_timeout(next_deadline, Clock::now()));
      if (ready < 0 && errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "poll");
      }
      const auto polled = Clock::now();

      if ((fds[0].revents & POLLIN) != 0) {
        std::uint64_t drained = 0;
        while (::read(wake_fd_, &drained, sizeof drained) > 0) {
        }
      }
      // Handle events by pid: handlers may remove workers from the list.
      struct Ready {
        pid_t pid;
        short revents;  // the socket's
        bool exited;    // its pidfd is readable
      };
      std::vector<Ready> ready_workers;
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        const auto [pid, is_pidfd] = owners[i - 1];
        if (ready_workers.empty() || ready_workers.back().pid != pid) {
          ready_workers.push_back({pid, 0, false});
        }
        if (is_pidfd) {
          ready_workers.back().exited = true;
        } else {
          ready_workers.back().revents = fds[i].revents;
        }
      }
      for (const auto& [pid, revents, exited] : ready_workers) {
        try {
          Worker* w = find(pid);
          if (w != nullptr && (revents & POLLOUT) != 0) handle_writable(w);
          w = find(pid);
          if (w != nullptr && (revents & ~POLLOUT) != 0) handle_readable(w);
          w = find(pid);
          if (w != nullptr && exited) handle_exited(w);
        } catch (...) {
          if (Worker* still = find(pid)) {
            bury(still, true,
                 "could not be handled (" + webexec::detail::what(std::current_exception()) +
                     "), so it was killed");
          }
        }
      }
      // Time the dispatcher spent in the handlers (done callbacks run
      // there) is not the workers' silence: it could not listen.
      const auto busy_for = Clock::now() - polled;
      if (busy_for > std::chrono::milliseconds(10)) {
        for (const auto& w : workers_) {
          if (w->busy()) w->waiting_since = std::min(w->waiting_since + busy_for, Clock::now());
        }
      }
      std::vector<pid_t> overdue;
      for (const auto& w : workers_) {
        const auto now = Clock::now();
        if ((w->busy() && w->deadline <= now) || answer_deadline(*w) <= now) {
          overdue.push_back(w->pid);
        }
      }
      for (const pid_t pid : overdue) {
        // Judge it by what it wrote up to now: frames that arrived after
        // poll() returned (while handlers ran) are read first.
        Worker* w = find(pid);
        if (w == nullptr) continue;
        if (!w->unreachable) {
          try {
            handle_readable(w);
          } catch (...) {
            if (Worker* still = find(pid)) {
              bury(still, true,
                   "could not be handled (" + webexec::detail::what(std::current_exception()) +
                       "), so it was killed");
            }
            continue;
          }
        }
        w = find(pid);
        if (w == nullptr) continue;
        const auto now = Clock::now();
        if (!(w->busy() && w->deadline <= now)) {
          if (answer_deadline(*w) <= now) handle_unresponsive(w);
          continue;
        }
        const auto limit = w->jobs.front().job->timeout.value_or(Clock::duration::zero());
        const std::string name = w->jobs.front().job->name;
        bury(w, true, "timed out",
             std::make_exception_ptr(TimeoutError(
                 "job '" + name + "' exceeded its time limit of " + seconds(limit) +
                 " s; its worker process " + std::to_string(pid) + " was killed and replaced")));
      }
    }
    return true;
  }

  Worker* find(pid_t pid) {
    for (const auto& w : workers_) {
      if (w->pid == pid) return w.get();
    }
    return nullptr;
  }

  const ProcessPoolOptions options_;
  // Before every member that holds jobs: a job counts its outcome here
  // when it is destroyed.
  RemoteCounters counters_;
  bool stopping_workers_ = false;  // dispatcher thread only
  int wake_fd_ = -1;
  mutable Mutex mutex_;
  std::deque<std::unique_ptr<ProcessJob>> pending_ WEBEXEC_GUARDED_BY(mutex_);
  bool shutdown_ WEBEXEC_GUARDED_BY(mutex_) = false;
  bool cancel_pending_ WEBEXEC_GUARDED_BY(mutex_) = false;
  std::uint64_t cancel_requests_ WEBEXEC_GUARDED_BY(mutex_) = 0;
  std::uint64_t cancels_done_ WEBEXEC_GUARDED_BY(mutex_) = 0;
  bool dispatcher_done_ WEBEXEC_GUARDED_BY(mutex_) = false;
  std::condition_variable cancelled_cv_;
  std::vector<pid_t> pids_ WEBEXEC_GUARDED_BY(mutex_);
  std::vector<std::unique_ptr<Worker>> workers_;  // dispatcher thread only
  std::uint64_t next_id_ = 1;                     // dispatcher thread only
  // Held while joining the dispatcher, so concurrent shutdown(wait=true)
  // calls wait for the one that joins (it guards the join, not a member).
  Mutex join_mutex_;
  bool delete_when_done_ = false;  // dispatcher thread only
  // No worker start before this after one failed (see may_spawn()).
  Clock::time_point spawn_backoff_until_{};  // dispatcher thread only
  std::thread dispatcher_;
  std::thread::id dispatcher_id_;  // set once in the constructor
};

std::uint64_t process_jobs_revoked() noexcept {
  return revoked_total.load(std::memory_order_relaxed);
}

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
EngineStats ProcessPool::stats() const noexcept { return impl_->stats(); }

}  // namespace webexec::detail
