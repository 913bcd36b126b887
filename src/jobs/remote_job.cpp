// The registered-job path shared by the remote engines (process, redis):
// make_remote_job() runs on the submitting thread; ~RemoteJob on whichever
// thread drops the job (an engine's dispatcher, or the submitter when the
// engine refused it).
#include "webexec/detail/remote_job.hpp"

#include <utility>

#include "webexec/detail/context_json.hpp"

namespace webexec::detail {

RemoteJob::~RemoteJob() {
  if (state == nullptr) return;
  if (counters != nullptr) counters->record_outcome(*state);
  state->release();
}

void RemoteCounters::record_outcome(const StateBase& state) noexcept {
  switch (state.state()) {
    case FutureState::cancelled:
      bump(cancelled);
      break;
    case FutureState::finished:
      bump(state.error() ? failed : succeeded);
      break;
    default:  // never completed: refused at submit (counted nowhere)
      break;
  }
}

EngineStats RemoteCounters::snapshot() const noexcept {
  auto get = [](const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  EngineStats s;
  // Finished first, submitted last: a job counted finished was submitted
  // before, so the gauge below stays >= 0 but for the clamp's rare cases.
  s.succeeded = get(succeeded);
  s.failed = get(failed);
  s.cancelled = get(cancelled);
  s.running = get(running);
  s.restarts = get(restarts);
  s.redeliveries = get(redeliveries);
  s.dead_lettered = get(dead_lettered);
  s.submitted = get(submitted);
  const std::uint64_t left = s.succeeded + s.failed + s.cancelled + s.running;
  s.queued = s.submitted > left ? s.submitted - left : 0;
  return s;
}

std::unique_ptr<RemoteJob> make_remote_job(
    const std::string& name, nlohmann::json arguments, const TaskContext& ctx,
    const nlohmann::json* app_json, const std::string& label,
    std::shared_ptr<ProgressSlot> progress,
    std::optional<std::chrono::steady_clock::duration> timeout) {
  auto job = std::make_unique<RemoteJob>();
  job->name = name;
  job->timeout = timeout;
  job->request = {{"job", name},
                  {"args", std::move(arguments)},
                  {"ctx", context_to_json(ctx, app_json)},
                  {"label", label},
                  {"progress", progress != nullptr}};
  job->progress = std::move(progress);
  return job;
}

}  // namespace webexec::detail
