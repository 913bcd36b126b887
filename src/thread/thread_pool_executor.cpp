// ThreadPoolExecutor, the thread engine's pool: submit() and enqueue() run
// on the submitting threads, worker_main() on the pool's own threads,
// stats() on any thread (see docs/design.md, "Engines" and "Thread pool").
#include "webexec/thread_pool_executor.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "webexec/detail/mutex.hpp"
#include "webexec/detail/spin.hpp"
#include "webexec/errors.hpp"

// LeakSanitizer (part of ASan) would report the core a pool deliberately leaks when it
// is destroyed on one of its own threads (see PoolCore::abandon).
#if defined(__SANITIZE_ADDRESS__)
#define WEBEXEC_HAS_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEBEXEC_HAS_LSAN 1
#endif
#endif
#ifdef WEBEXEC_HAS_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace webexec {
namespace detail {
namespace {

/// Leaks the core of a pool destroyed on its own thread: its detached workers still
/// use it (see PoolCore::abandon). LeakSanitizer is told the leak is deliberate; the
/// core's pointees (queued tasks, thread list) stay reachable through it.
void leak_abandoned_core(std::unique_ptr<PoolCore>& core) noexcept {
  PoolCore* leaked = core.release();
#ifdef WEBEXEC_HAS_LSAN
  __lsan_ignore_object(leaked);
#endif
  static_cast<void>(leaked);
}

/// Intrusive multi-producer queue (D. Vyukov's MPSC design). A push is one
/// atomic exchange, wait-free; pops are serialised by the caller's lock.
class TaskQueue {
 public:
  TaskQueue() noexcept { head_.store(&stub_, std::memory_order_relaxed); }

  void push(QueueNode* node) noexcept {
    node->queue_next.store(nullptr, std::memory_order_relaxed);
    QueueNode* prev = tail_.exchange(node, std::memory_order_seq_cst);
    prev->queue_next.store(node, std::memory_order_release);
  }

  enum class Pop { item, empty, busy };

  /// Pops the oldest node. `busy` means a push has swapped the tail but not
  /// linked its node yet: the queue is not empty, retry shortly.
  /// Precondition: the caller holds the consumer lock.
  Pop pop(QueueNode*& out) noexcept {
    QueueNode* head = head_.load(std::memory_order_relaxed);
    QueueNode* next = head->queue_next.load(std::memory_order_acquire);
    if (head == &stub_) {
      if (next == nullptr) {
        return tail_.load(std::memory_order_seq_cst) == &stub_ ? Pop::empty : Pop::busy;
      }
      head_.store(next, std::memory_order_relaxed);
      head = next;
      next = next->queue_next.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      head_.store(next, std::memory_order_relaxed);
      out = head;
      return Pop::item;
    }
    if (head != tail_.load(std::memory_order_seq_cst)) return Pop::busy;
    push(&stub_);
    next = head->queue_next.load(std::memory_order_acquire);
    if (next != nullptr) {
      head_.store(next, std::memory_order_relaxed);
      out = head;
      return Pop::item;
    }
    return Pop::busy;
  }

  /// A cheap, lock-free hint that a pop may find something.
  [[nodiscard]] bool maybe_nonempty() const noexcept {
    return head_.load(std::memory_order_relaxed) != &stub_ ||
           stub_.queue_next.load(std::memory_order_relaxed) != nullptr;
  }

 private:
  alignas(64) std::atomic<QueueNode*> tail_{&stub_};
  alignas(64) std::atomic<QueueNode*> head_;
  QueueNode stub_;
};

/// Parks idle workers without losing wake-ups (an "event count"): a waiter
/// announces itself, re-checks for work, and only then sleeps until the
/// epoch moves. notify is a single load when nobody sleeps.
class EventCount {
 public:
  std::uint64_t prepare_wait() noexcept {
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    return epoch_.load(std::memory_order_seq_cst);
  }
  void cancel_wait() noexcept { waiters_.fetch_sub(1, std::memory_order_seq_cst); }
  void commit_wait(std::uint64_t key) {
    UniqueLock lock(mutex_);
    while (epoch_.load(std::memory_order_relaxed) == key) cv_.wait(lock.native());
    waiters_.fetch_sub(1, std::memory_order_seq_cst);
  }
  [[nodiscard]] bool has_waiters() const noexcept {
    return waiters_.load(std::memory_order_seq_cst) != 0;
  }
  void notify_one() noexcept { notify(false); }
  void notify_all() noexcept { notify(true); }

 private:
  void notify(bool all) noexcept {
    if (waiters_.load(std::memory_order_seq_cst) == 0) return;
    const MutexLock lock(mutex_);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    // Notifying under the lock wakes a thread that was already waiting, never
    // one that arrives after the epoch moved.
    if (all) {
      cv_.notify_all();
    } else {
      cv_.notify_one();
    }
  }

  std::atomic<std::uint32_t> waiters_{0};
  // Atomic, not guarded: prepare_wait() reads it without the lock. The lock
  // orders a waiter's re-check against notify()'s increment.
  std::atomic<std::uint64_t> epoch_{0};
  Mutex mutex_;
  std::condition_variable cv_;
};

int default_max_workers() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int cpus = 0;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  return std::min(32, cpus + 4);
}

std::atomic<int> pool_counter{0};
// Pool ids for the submitters' counter caches: never reused, unlike addresses.
std::atomic<std::uint64_t> next_pool_id{1};

/// Adds one to a counter that only the calling thread writes: a plain load
/// and store, no lock prefix (the pools' counters are per thread).
inline void bump(std::atomic<std::uint64_t>& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

/// One submitting thread's count for one pool, on its own cache line.
struct alignas(64) SubmitterSlot {
  std::atomic<std::uint64_t> submitted{0};
};

/// One worker's counts, on its own cache lines; only that worker writes them.
struct alignas(64) WorkerSlot {
  std::atomic<std::uint64_t> taken{0};  // popped by its loop
  std::atomic<std::uint64_t> succeeded{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> cancelled{0};      // popped already cancelled
  std::atomic<std::uint64_t> ran_elsewhere{0};  // popped after a worker ran it inline
  InlineRunCounters inline_runs;                // run inline by this worker (wait_until)
};

/// The submitting thread's slot for the pool it submitted to last: a
/// submit to the same pool costs a compare and a bump. Trivial, so reading
/// it needs no TLS guard.
struct SubmitterCache {
  std::uint64_t pool_id = 0;
  std::atomic<std::uint64_t>* slot = nullptr;
};
constinit thread_local SubmitterCache submit_cache{};
// The slots of the pools it submitted to before the last (most recent
// first), so that alternating between a few pools stays off the registry.
constexpr std::size_t kRecentPools = 8;
constinit thread_local SubmitterCache recent_pools[kRecentPools]{};

// How long an idle worker spins for new work before parking. Covers the gap
// between a result and the next submit of a tight submit/result loop.
constexpr auto kIdleSpin = std::chrono::microseconds(50);

}  // namespace

class PoolCore {
 public:
  explicit PoolCore(ThreadPoolOptions options)
      : max_workers_(options.max_workers ? *options.max_workers : default_max_workers()),
        prefix_(std::move(options.thread_name_prefix)),
        initializer_(std::move(options.initializer)) {
    if (max_workers_ <= 0) {
      throw std::invalid_argument("max_workers must be greater than 0, got " +
                                  std::to_string(max_workers_));
    }
    if (prefix_.empty()) prefix_ = "ThreadPoolExecutor-" + std::to_string(pool_counter++);
  }

  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  ~PoolCore() {
    // Tasks no worker took because none could be started: drop the queue's
    // references, or they leak.
    while (QueueNode* node = pop_settled()) {
      auto* task = static_cast<StateBase*>(node);
      task->cancel();
      task->release();
    }
  }

  void enqueue(StateBase* task);
  void shutdown(bool wait, bool cancel_futures);
  /// Shuts down from one of this pool's own threads, which cannot be joined
  /// from itself: see ThreadPoolExecutor::~ThreadPoolExecutor and
  /// ThreadPoolExecutor::abandon_from_worker.
  void abandon(bool cancel_queued, bool join_others) noexcept;

  [[nodiscard]] bool is_shutdown() const noexcept {
    return (gate_.load(std::memory_order_acquire) & kShutdownFlag) != 0;
  }
  [[nodiscard]] bool is_own_thread() const noexcept { return thread_role().executor == this; }

  [[nodiscard]] int max_workers() const noexcept { return max_workers_; }
  [[nodiscard]] std::size_t thread_count() const noexcept {
    return static_cast<std::size_t>(started_.load(std::memory_order_relaxed));
  }
  [[nodiscard]] std::stop_token stop_token() const noexcept { return stop_.get_token(); }

  [[nodiscard]] EngineStats stats() const noexcept;

 private:
  // gate_ = flags | number of submits in flight. shutdown and breakage set a
  // flag, then wait for in-flight submits, after which nothing is pushed;
  // shutdown then sets kDrainedFlag. A worker exits once kDrainedFlag is set
  // and the queue is empty: a condition that, once true, stays true, so a
  // worker that checks it after announcing itself to the event count can
  // never miss the wake-up (a rejected submit's transient in-flight count
  // does not enter into it).
  static constexpr std::uint64_t kShutdownFlag = std::uint64_t{1} << 63;
  static constexpr std::uint64_t kBrokenFlag = std::uint64_t{1} << 62;
  static constexpr std::uint64_t kDrainedFlag = std::uint64_t{1} << 61;
  static constexpr std::uint64_t kInFlightMask = kDrainedFlag - 1;

  void worker_main(int index, WorkerSlot* counts);
  /// Counts a submit in the calling thread's slot.
  void count_submit() {
    const SubmitterCache& cache = submit_cache;
    if (cache.pool_id == id_) [[likely]] {
      bump(*cache.slot);
      return;
    }
    count_submit_slow();
  }
  void count_submit_slow();
  /// Counts a task that shutdown or a broken pool took off the queue.
  void count_dropped(StateBase& task) noexcept;
  QueueNode* try_pop() noexcept;
  QueueNode* pop_settled() noexcept;
  /// The only way to pop queue_: pops are serialised by pop_lock_.
  TaskQueue::Pop pop_locked(QueueNode*& out) noexcept WEBEXEC_REQUIRES(pop_lock_) {
    return queue_.pop(out);
  }
  QueueNode* wait_for_work(bool& idle);
  QueueNode* spin_for_work() noexcept;
  [[nodiscard]] bool should_exit() noexcept;
  void wake_one() noexcept;
  /// Python's rule: reuse an idle worker before starting a new thread. Used
  /// by submit and by a worker that stopped counting as idle; inline, as the
  /// block it replaces was (submit's hot path). Throws what spawn_worker() does.
  void start_or_wake_worker() {
    if (started_.load(std::memory_order_relaxed) < max_workers_ &&
        idle_.load(std::memory_order_seq_cst) == 0) {
      spawn_worker();
    } else {
      wake_one();
    }
  }
  void spawn_worker();
  void wait_for_submitters() const noexcept;
  void stop_accepting(bool cancel_queued) noexcept;
  void help_with_queue() noexcept;
  void initializer_failed(std::exception_ptr error) noexcept;

  TaskQueue queue_;
  SpinLock pop_lock_;
  alignas(64) std::atomic<std::uint64_t> gate_{0};
  // Read by every submit, written only when a thread starts.
  alignas(64) std::atomic<int> started_{0};
  const int max_workers_;
  // Written by workers as they go idle or spin: kept off the lines above.
  alignas(64) std::atomic<int> spinners_{0};
  std::atomic<int> idle_{0};
  EventCount parked_;
  std::string prefix_;
  std::function<void()> initializer_;
  std::stop_source stop_;
  Mutex threads_mutex_;
  std::vector<std::thread> threads_ WEBEXEC_GUARDED_BY(threads_mutex_);
  // Held by shutdown(wait=true) while it joins, so that a concurrent one
  // returns only once every worker has been joined.
  Mutex join_mutex_ WEBEXEC_ACQUIRED_BEFORE(threads_mutex_);

  // Counters (see stats()): one slot per submitting thread and per worker,
  // registered under counters_mutex_, each written only by its thread.
  const std::uint64_t id_ = next_pool_id.fetch_add(1, std::memory_order_relaxed);
  mutable Mutex counters_mutex_;
  std::vector<std::unique_ptr<SubmitterSlot>> submitters_ WEBEXEC_GUARDED_BY(counters_mutex_);
  std::unordered_map<std::thread::id, SubmitterSlot*> submitter_of_
      WEBEXEC_GUARDED_BY(counters_mutex_);
  std::vector<std::unique_ptr<WorkerSlot>> workers_ WEBEXEC_GUARDED_BY(counters_mutex_);
  // Tasks taken off the queue by shutdown or a broken pool: slow paths,
  // any thread.
  std::atomic<std::uint64_t> dropped_cancelled_{0};
  std::atomic<std::uint64_t> dropped_failed_{0};
  std::atomic<std::uint64_t> dropped_ran_elsewhere_{0};
};

void PoolCore::count_submit_slow() {
  // Another pool than last time: look in the recent ones, else register.
  SubmitterCache found;
  std::size_t at = kRecentPools - 1;  // the slot to free (oldest) if not found
  for (std::size_t i = 0; i < kRecentPools; ++i) {
    if (recent_pools[i].pool_id == id_) {
      found = recent_pools[i];
      at = i;
      break;
    }
  }
  if (found.slot == nullptr) {
    const MutexLock lock(counters_mutex_);
    SubmitterSlot*& slot = submitter_of_[std::this_thread::get_id()];
    if (slot == nullptr) {
      submitters_.push_back(std::make_unique<SubmitterSlot>());
      slot = submitters_.back().get();
    }
    found = {id_, &slot->submitted};
  }
  // The previous front moves to the head of the recent list.
  for (std::size_t i = at; i > 0; --i) recent_pools[i] = recent_pools[i - 1];
  recent_pools[0] = submit_cache;
  submit_cache = found;
  bump(*found.slot);
}

void PoolCore::count_dropped(StateBase& task) noexcept {
  switch (task.state()) {
    case FutureState::cancelled:
      dropped_cancelled_.fetch_add(1, std::memory_order_relaxed);
      break;
    case FutureState::finished:
      if (task.error()) {
        dropped_failed_.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      [[fallthrough]];
    default:  // ran inline by a worker that waited for it (counted there)
      dropped_ran_elsewhere_.fetch_add(1, std::memory_order_relaxed);
      break;
  }
}

EngineStats PoolCore::stats() const noexcept {
  auto get = [](const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  auto minus = [](std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; };
  EngineStats s;
  std::uint64_t taken = 0;
  std::uint64_t ran_elsewhere = get(dropped_ran_elsewhere_);
  std::uint64_t ran_inline = 0;
  std::uint64_t loop_done = 0;
  const MutexLock lock(counters_mutex_);
  // Outcomes before the counts they derive from (a worker bumps `taken`
  // before the outcome), so the gauges rarely need the clamp.
  for (const auto& w : workers_) {
    const std::uint64_t succeeded = get(w->succeeded);
    const std::uint64_t failed = get(w->failed);
    const std::uint64_t cancelled = get(w->cancelled);
    const std::uint64_t elsewhere = get(w->ran_elsewhere);
    const std::uint64_t inline_succeeded = get(w->inline_runs.succeeded);
    const std::uint64_t inline_failed = get(w->inline_runs.failed);
    s.succeeded += succeeded + inline_succeeded;
    s.failed += failed + inline_failed;
    s.cancelled += cancelled;
    ran_elsewhere += elsewhere;
    ran_inline += inline_succeeded + inline_failed;
    loop_done += succeeded + failed + cancelled + elsewhere;
    taken += get(w->taken);
  }
  const std::uint64_t dropped_cancelled = get(dropped_cancelled_);
  const std::uint64_t dropped_failed = get(dropped_failed_);
  s.cancelled += dropped_cancelled;
  s.failed += dropped_failed;
  for (const auto& slot : submitters_) s.submitted += get(slot->submitted);
  s.running = minus(taken, loop_done);
  // Still queued: neither popped nor dropped, nor already run inline.
  const std::uint64_t off_queue = taken + dropped_cancelled + dropped_failed +
                                  get(dropped_ran_elsewhere_) + minus(ran_inline, ran_elsewhere);
  s.queued = minus(s.submitted, off_queue);
  return s;
}

void PoolCore::enqueue(StateBase* task) {
  const std::uint64_t gate = gate_.fetch_add(1, std::memory_order_acquire);
  if ((gate & (kShutdownFlag | kBrokenFlag)) != 0) {
    gate_.fetch_sub(1, std::memory_order_release);
    task->release();
    if ((gate & kBrokenFlag) != 0) {
      throw BrokenThreadPool("A thread initializer failed, the thread pool is not usable anymore");
    }
    throw ShutdownError("cannot schedule new futures after shutdown");
  }
  // Counted before the push, so a worker never takes a task not yet counted.
  count_submit();
  queue_.push(task);
  try {
    start_or_wake_worker();
  } catch (...) {
    // No thread could be started. If none exists, nobody would ever run the
    // task: withdraw it and report the failure. Cancelled after leaving the
    // gate: cancelling runs its done callbacks, and one may shut down.
    const bool no_thread = started_.load() == 0;
    gate_.fetch_sub(1, std::memory_order_release);
    if (no_thread && task->cancel()) {
      // Not submitted after all: the caller gets the exception.
      std::atomic<std::uint64_t>& mine = *submit_cache.slot;
      mine.store(mine.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
      throw;
    }
    return;
  }
  gate_.fetch_sub(1, std::memory_order_release);
}

void PoolCore::wake_one() noexcept {
  // Wake a parked worker unless one is spinning (it will find the task).
  // The parked count is read first: it changes only when a worker parks,
  // while the spinner count changes whenever a worker catches up with the
  // submitters, so a busy submit touches no line that workers write.
  if (parked_.has_waiters() && spinners_.load(std::memory_order_seq_cst) == 0) {
    parked_.notify_one();
  }
}

void PoolCore::spawn_worker() {
  const MutexLock lock(threads_mutex_);
  const int index = started_.load(std::memory_order_relaxed);
  // After the drain (a worker helping with the queue may get here), a new
  // thread could miss the join: shutdown takes threads_ under this mutex
  // after setting the flag.
  if (index >= max_workers_ || (gate_.load(std::memory_order_seq_cst) & kDrainedFlag) != 0) {
    wake_one();
    return;
  }
  WorkerSlot* counts = nullptr;
  {
    const MutexLock counters_lock(counters_mutex_);
    workers_.push_back(std::make_unique<WorkerSlot>());
    counts = workers_.back().get();
  }
  threads_.emplace_back([this, index, counts] { worker_main(index, counts); });
  started_.store(index + 1, std::memory_order_relaxed);
}

QueueNode* PoolCore::try_pop() noexcept {
  if (!queue_.maybe_nonempty()) return nullptr;
  QueueNode* node = nullptr;
  const SpinLockGuard lock(pop_lock_);
  return pop_locked(node) == TaskQueue::Pop::item ? node : nullptr;
}

QueueNode* PoolCore::pop_settled() noexcept {
  // Unlike try_pop, waits out a half-finished push, so "nothing" is definite.
  for (;;) {
    QueueNode* node = nullptr;
    TaskQueue::Pop result = TaskQueue::Pop::empty;
    {
      const SpinLockGuard lock(pop_lock_);
      result = pop_locked(node);
    }
    if (result != TaskQueue::Pop::busy) return node;
    std::this_thread::yield();
  }
}

QueueNode* PoolCore::spin_for_work() noexcept {
  const auto until = std::chrono::steady_clock::now() + kIdleSpin;
  for (unsigned i = 1;; ++i) {
    if (QueueNode* node = try_pop()) return node;
    cpu_relax();
    if ((i & 63U) == 0) {
      if (std::chrono::steady_clock::now() >= until) return nullptr;
      if ((gate_.load(std::memory_order_relaxed) & kShutdownFlag) != 0) return nullptr;
    }
  }
}

bool PoolCore::should_exit() noexcept {
  // Both parts only ever go from false to true once kDrainedFlag is set
  // (nothing is pushed after it), so this cannot race with a wake-up.
  if ((gate_.load(std::memory_order_seq_cst) & kDrainedFlag) == 0) return false;
  const SpinLockGuard lock(pop_lock_);
  return !queue_.maybe_nonempty();
}

QueueNode* PoolCore::wait_for_work(bool& idle) {
  if (!idle && started_.load(std::memory_order_relaxed) < max_workers_) {
    idle_.fetch_add(1, std::memory_order_seq_cst);
    idle = true;
  }
  auto found = [&](QueueNode* node) {
    if (idle) {
      idle_.fetch_sub(1, std::memory_order_seq_cst);
      idle = false;
    }
    // More work: get help. Not just a wake: a submit that counted this
    // worker as idle did not start a thread, and this worker is now busy
    // (e.g. a push still half done made its first pop miss the task it
    // then took, while the next submit saw it idle): start one if allowed.
    help_with_queue();
    return node;
  };
  for (;;) {
    // At most one worker spins at a time; on 2 cores more would starve the
    // threads that submit.
    int expected = 0;
    if (spinners_.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) {
      QueueNode* node = spin_for_work();
      spinners_.store(0, std::memory_order_seq_cst);
      if (node != nullptr) return found(node);
    }
    const std::uint64_t key = parked_.prepare_wait();
    if (QueueNode* node = pop_settled()) {
      parked_.cancel_wait();
      return found(node);
    }
    if (should_exit()) {
      parked_.cancel_wait();
      return nullptr;
    }
    parked_.commit_wait(key);
  }
}

void PoolCore::worker_main(int index, WorkerSlot* counts) {
  const std::string name = prefix_ + "_" + std::to_string(index);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  thread_role().executor = this;
  thread_role().inline_runs = &counts->inline_runs;

  if (initializer_) {
    try {
      initializer_();
    } catch (...) {
      initializer_failed(std::current_exception());
      return;
    }
  }

  bool idle = false;
  for (;;) {
    QueueNode* node = try_pop();
    if (node == nullptr) {
      node = wait_for_work(idle);
      if (node == nullptr) return;
    } else if (idle) {
      // A worker running a task is not idle, or a submit meanwhile would
      // wait behind it instead of starting a thread; one that already
      // counted on it gets a thread now.
      idle_.fetch_sub(1, std::memory_order_seq_cst);
      idle = false;
      help_with_queue();
    }
    auto* task = static_cast<StateBase*>(node);
    bump(counts->taken);
    if (task->run_task()) {
      // Read before publishing: until then this worker owns the outcome.
      bump(task->error() ? counts->failed : counts->succeeded);
      // Idle once nothing of the task is left to run. Without done
      // callbacks that is before the result is visible, so a submit that
      // follows result() reuses this thread instead of starting another;
      // with callbacks it is only after they ran (CPython's order), so work
      // submitted meanwhile does not wait behind a slow callback.
      const bool may_idle = started_.load(std::memory_order_relaxed) < max_workers_;
      if (may_idle && !task->has_callbacks()) {
        idle_.fetch_add(1, std::memory_order_seq_cst);
        idle = true;
      }
      if (!idle || !task->try_publish_without_callbacks()) {
        if (idle) {
          // A callback was added between the check and the publish.
          idle_.fetch_sub(1, std::memory_order_seq_cst);
          idle = false;
          help_with_queue();
        }
        task->publish();
        if (may_idle) {
          idle_.fetch_add(1, std::memory_order_seq_cst);
          idle = true;
        }
      }
    } else {
      // Cancelled while queued, or already run inline by a worker that
      // waited for it (counted there).
      bump(task->state() == FutureState::cancelled ? counts->cancelled : counts->ran_elsewhere);
    }
    task->release();
  }
}

void PoolCore::help_with_queue() noexcept {
  // This worker stopped counting as idle: a submit that relied on it gets
  // another thread (or a parked one) instead.
  if (!queue_.maybe_nonempty()) return;
  try {
    start_or_wake_worker();
  } catch (...) {  // NOLINT(bugprone-empty-catch): this worker runs the queue after its callbacks
  }
}

void PoolCore::wait_for_submitters() const noexcept {
  while ((gate_.load(std::memory_order_acquire) & kInFlightMask) != 0) std::this_thread::yield();
}

void PoolCore::initializer_failed(std::exception_ptr error) noexcept {
  report_error("ThreadPoolExecutor initializer", std::move(error));
  gate_.fetch_or(kBrokenFlag, std::memory_order_seq_cst);
  wait_for_submitters();
  const auto broken = std::make_exception_ptr(
      BrokenThreadPool("A thread initializer failed, the thread pool is not usable anymore"));
  while (QueueNode* node = pop_settled()) {
    auto* task = static_cast<StateBase*>(node);
    task->fail_pending(broken);
    count_dropped(*task);
    task->release();
  }
}

void PoolCore::stop_accepting(bool cancel_queued) noexcept {
  gate_.fetch_or(kShutdownFlag, std::memory_order_seq_cst);
  wait_for_submitters();
  if (cancel_queued) {
    while (QueueNode* node = pop_settled()) {
      auto* task = static_cast<StateBase*>(node);
      task->cancel();
      count_dropped(*task);
      task->release();
    }
    stop_.request_stop();
  }
  // Set before the wake-up: a worker that parks after it sees the flag.
  gate_.fetch_or(kDrainedFlag, std::memory_order_seq_cst);
  parked_.notify_all();
}

void PoolCore::shutdown(bool wait, bool cancel_futures) {
  if (wait && thread_role().executor == this) {
    throw InvalidStateError(
        "shutdown(wait=true) called from a worker of the same pool would join itself; use "
        "shutdown(wait=false)");
  }
  stop_accepting(cancel_futures);
  if (!wait) return;
  // Every waiting caller joins, or waits for the one that is joining, so
  // none returns while a task still runs. No thread starts after
  // stop_accepting(), so threads_ is complete here.
  const MutexLock join_lock(join_mutex_);
  std::vector<std::thread> threads;
  {
    const MutexLock lock(threads_mutex_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void PoolCore::abandon(bool cancel_queued, bool join_others) noexcept {
  // Called on one of this pool's own threads, which cannot join itself.
  // The workers finish the queue (or nothing, if it was cancelled) and exit
  // on their own; the core is deliberately leaked by the caller so that they
  // never touch freed memory.
  stop_accepting(cancel_queued);
  const MutexLock join_lock(join_mutex_);
  std::vector<std::thread> threads;
  {
    const MutexLock lock(threads_mutex_);
    threads.swap(threads_);
  }
  const auto self = std::this_thread::get_id();
  for (auto& t : threads) {
    if (join_others && t.get_id() != self) {
      t.join();
    } else {
      t.detach();
    }
  }
}

}  // namespace detail

ThreadPoolExecutor::ThreadPoolExecutor() : ThreadPoolExecutor(ThreadPoolOptions{}) {}

ThreadPoolExecutor::ThreadPoolExecutor(int max_workers)
    : ThreadPoolExecutor(ThreadPoolOptions{.max_workers = max_workers}) {}

ThreadPoolExecutor::ThreadPoolExecutor(ThreadPoolOptions options)
    : core_(std::make_unique<detail::PoolCore>(std::move(options))) {}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  if (!core_) return;  // abandon_from_worker() took it
  if (core_->is_own_thread()) {
    core_->abandon(/*cancel_queued=*/false, /*join_others=*/false);
    detail::leak_abandoned_core(core_);
    return;
  }
  core_->shutdown(true, false);
}

void ThreadPoolExecutor::abandon_from_worker() noexcept {
  core_->abandon(/*cancel_queued=*/true, /*join_others=*/true);
  detail::leak_abandoned_core(core_);
}

bool ThreadPoolExecutor::is_own_thread() const noexcept { return core_->is_own_thread(); }

bool ThreadPoolExecutor::is_shutdown() const noexcept { return core_->is_shutdown(); }

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  core_->shutdown(wait, cancel_futures);
}

int ThreadPoolExecutor::max_workers() const noexcept { return core_->max_workers(); }

std::size_t ThreadPoolExecutor::thread_count() const noexcept { return core_->thread_count(); }

EngineStats ThreadPoolExecutor::stats() const noexcept {
  return core_ ? core_->stats() : EngineStats{};
}

void ThreadPoolExecutor::enqueue(detail::StateBase* task) { core_->enqueue(task); }

const void* ThreadPoolExecutor::owner() const noexcept { return core_.get(); }

std::stop_token ThreadPoolExecutor::stop_token() const noexcept { return core_->stop_token(); }

}  // namespace webexec
