// The process engine: an Engine over a ProcessPool (worker processes from
// the fork server). submit() and check_job() run on the submitting thread;
// futures complete on the pool's dispatcher thread. Uses the jobs/ path
// (RemoteJob, the registry), never Executor.
#include <memory>
#include <string>
#include <utility>

#include "webexec/detail/engine.hpp"
#include "webexec/detail/process_pool.hpp"
#include "webexec/errors.hpp"
#include "webexec/job_registry.hpp"
#include "webexec/process/fork_server.hpp"

namespace webexec::detail {
namespace {

class ProcessEngine final : public Engine {
 public:
  explicit ProcessEngine(ProcessPoolOptions options) : pool_(std::move(options)) {}

  [[nodiscard]] EngineKind kind() const noexcept override { return EngineKind::process; }

  void check_job(const std::string& name) const override {
    const std::uint64_t sequence = JobRegistry::global().sequence(name);
    if (sequence == 0) {
      throw std::invalid_argument("no job named '" + name + "' is registered");
    }
    if (sequence > process::detail::jobs_known_to_workers()) {
      throw InvalidStateError(
          "job '" + name +
          "' was registered after the fork server started, so worker processes do not have it: "
          "register jobs at namespace scope (WEBEXEC_REGISTER_JOB or executor.job) or before "
          "webexec::process::start_fork_server()");
    }
  }

  void submit(std::unique_ptr<RemoteJob> job) override { pool_.submit(std::move(job)); }

  void shutdown(bool wait, bool cancel_futures) override { pool_.shutdown(wait, cancel_futures); }

  void close() noexcept override {
    try {
      pool_.shutdown(true, false);
    } catch (...) {  // NOLINT(bugprone-empty-catch): closed from its own callback; ~ProcessPool
    }                // lets the dispatcher finish and delete the pool
  }

  [[nodiscard]] bool is_shutdown() const override { return pool_.is_shutdown(); }
  [[nodiscard]] int max_workers() const override { return pool_.max_workers(); }
  [[nodiscard]] EngineStats stats() const override { return pool_.stats(); }
  [[nodiscard]] std::vector<pid_t> worker_pids() const override { return pool_.worker_pids(); }

 private:
  ProcessPool pool_;
};

}  // namespace

std::unique_ptr<Engine> make_process_engine(ProcessPoolOptions options) {
  if (!process::fork_server_running()) process::detail::start_fork_server_from_init_app();
  return std::make_unique<ProcessEngine>(std::move(options));
}

}  // namespace webexec::detail
