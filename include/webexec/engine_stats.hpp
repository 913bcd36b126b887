/// `EngineStats`: the counters an executor's engine reports (`Executor::stats()`,
/// `ThreadPoolExecutor::stats()`), for monitoring.
///
/// Consistency: every counter is individually monotonic (never goes down
/// between two snapshots), except the gauges `queued` and `running`. A
/// snapshot is not atomic across fields: it sums per-thread counters that
/// keep changing while they are read, so e.g. `succeeded + failed +
/// cancelled` may briefly exceed `submitted - queued - running` by the
/// tasks that finished during the read. The gauges are derived from the
/// counters and clamped at zero. The thread engine counts a task's outcome
/// before its future completes; a remote engine (process) when the job
/// leaves the engine, just after its future completes, so a reader that
/// has just seen `result()` return may briefly see the old count. After
/// `shutdown(wait=true)` every figure is exact.
///
/// Example:
/// ```
/// webexec::EngineStats s = executor.stats();
/// std::printf("%llu queued, %llu running\n", (unsigned long long)s.queued,
///             (unsigned long long)s.running);
/// ```
#pragma once

#include <cstdint>

namespace webexec {

/// A snapshot of one engine's counters. See the file comment.
struct EngineStats {
  /// Tasks accepted by submit (a submit that threw is not counted).
  std::uint64_t submitted = 0;
  /// Accepted, not yet started, not yet dropped. A task cancelled while
  /// queued counts here until the engine drops it from its queue.
  std::uint64_t queued = 0;
  /// Started and not finished.
  std::uint64_t running = 0;
  /// Finished with a value.
  std::uint64_t succeeded = 0;
  /// Finished with an exception (including a worker that died running it).
  std::uint64_t failed = 0;
  /// Cancelled before they started.
  std::uint64_t cancelled = 0;
  /// Worker engines: workers that died or were killed and replaced (not the
  /// planned recycling of EXECUTOR_MAX_TASKS_PER_CHILD). Zero for threads.
  std::uint64_t restarts = 0;
  /// Worker engines: jobs handed to another worker after the one holding
  /// them died before starting them. Zero for threads.
  std::uint64_t redeliveries = 0;
  /// Worker engines: jobs given up after too many lost deliveries (their
  /// futures failed). Zero for threads.
  std::uint64_t dead_lettered = 0;
};

}  // namespace webexec
